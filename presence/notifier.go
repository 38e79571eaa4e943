package presence

// SIP watcher of an XMPP presentity: stox is the notifier (RFC 8048 §5.3,
// §6.2; RFC 6665 §4.2; RFC 3856).

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

const (
	maxExpires     = 3600 * time.Second // RFC 3856 §6.4 default, also stox's cap
	minExpires     = 60 * time.Second   // RFC 6665 §4.2.1.1: 423 below it
	pidfType       = "application/pidf+xml"
	cseqHeadroom   = 1000 // see persistCSeq
	maxClosedTuple = 8    // closed tuples kept per presentity for departed resources
)

// Subscribe handles a SUBSCRIBE whose Request-URI is an XMPP address
// (RFC 8048 §5.3). The SIP stack has authenticated the watcher.
func (s *Service) Subscribe(ctx context.Context, r mapping.SubscribeRequest) mapping.SubscribeOutcome {
	if !s.isReady() {
		return mapping.SubscribeOutcome{Status: 503, Reason: "Service Unavailable", RetryAfter: 5 * time.Second}
	}
	if !strings.EqualFold(r.Event, "presence") { // RFC 6665 §4.2.1.1; presence.winfo is not served
		return mapping.SubscribeOutcome{Status: 489, Reason: "Bad Event"}
	}
	pres, err := s.d.XMPPTarget(r.Presentity) // 404 not an XMPP address, 403 sips (RFC 7247 §8)
	if err != nil {
		var f *mapping.Failure
		if errors.As(err, &f) {
			return mapping.SubscribeOutcome{Status: f.Status, Reason: f.Text}
		}
		return mapping.SubscribeOutcome{Status: 404, Reason: "Not Found"}
	}
	if len(r.Accept) > 0 && !acceptsPIDF(r.Accept) { // RFC 3856 §6.6: PIDF is mandatory
		return mapping.SubscribeOutcome{Status: 406, Reason: "Not Acceptable"}
	}
	exp := r.Expires
	switch {
	case exp < 0:
		exp = maxExpires // RFC 3856 §6.4: no Expires means 3600 s
	case exp > maxExpires:
		exp = maxExpires
	case exp > 0 && exp < minExpires:
		return mapping.SubscribeOutcome{Status: 423, Reason: "Interval Too Brief", MinExpires: minExpires}
	}
	exp = exp.Truncate(time.Second)
	presBare := pres.Bare()
	watcher := noGR(r.Watcher)
	aor := watcher.AOR()
	key := subKey{kind: mapping.SIPWatcher, jid: presBare.String(), aor: aor}
	now := s.clk.Now()
	ok := mapping.SubscribeOutcome{Status: 200, Reason: "OK", Expires: exp}

	s.mu.Lock()
	defer s.mu.Unlock()
	if !r.Initial {
		sb := s.subs[key]
		if sb == nil || sb.s.Dialog.CallID != r.Dialog.CallID || sb.s.Dialog.LocalTag != r.Dialog.LocalTag {
			return mapping.SubscribeOutcome{Status: 481, Reason: "Subscription Does Not Exist"}
		}
		d := &sb.s.Dialog
		d.RemoteCSeq = r.Dialog.RemoteCSeq
		if r.Dialog.RemoteTarget != "" {
			d.RemoteTarget = r.Dialog.RemoteTarget // RFC 6665 §4.1.2.1: target refresh
		}
		if r.Dialog.Destination != "" {
			d.Destination = r.Dialog.Destination
		}
		if exp == 0 {
			// RFC 8048 §5.3.3: NOTIFY closed + terminated;reason=timeout,
			// XMPP unavailable to the contact, forget the dialog.
			s.endSIPWatcher(sb, "timeout")
			return ok
		}
		// RFC 8048 §5.3.2: a refresh gets a NOTIFY with the current state
		// if known, otherwise an empty one (MUST).
		d.Expires = now.Add(exp)
		sb.s.Updated = now
		s.persist(sb)
		s.armExpiry(sb)
		s.markDue(sb, bodyCurrent, true)
		return ok
	}

	wj := s.d.XMPPFrom(watcher)
	dlg := r.Dialog
	if dlg.Event == "" {
		dlg.Event = "presence"
	}
	if exp == 0 {
		// RFC 8048 §7.2 poll: one NOTIFY terminated;reason=timeout with the
		// current state; probe the contact when nothing is known. No
		// subscription is stored. Presence goes only to an authorized
		// watcher (§8.2).
		sb := &sub{s: mapping.Subscription{Kind: mapping.SIPWatcher, JID: presBare, AOR: aor, State: mapping.SubPending, Dialog: dlg}, key: key, gone: true}
		body := bodyNone
		if s.authz[pairKey{key.jid, aor}] {
			sb.s.State = mapping.SubActive
			body = bodyCurrent
		}
		if len(s.pres[key.jid]) == 0 {
			s.sendXMPP(mapping.Presence{From: wj, To: presBare, Type: "probe"})
		}
		sb.term, sb.due, sb.dueNow, sb.dueBody = "timeout", true, true, body
		s.schedule(sb)
		return ok
	}
	if old := s.subs[key]; old != nil {
		// One subscription per (presentity, watcher AOR): the Store keys
		// them so. A new dialog from the same AOR replaces the old one,
		// which is dropped silently (its watcher re-subscribes on 481).
		s.drop(old)
	}
	dlg.Expires = now.Add(exp)
	state := mapping.SubPending
	if s.authz[pairKey{key.jid, aor}] {
		state = mapping.SubActive // RFC 6665 §4.2.1.2: already authorized
	}
	sb := &sub{key: key, s: mapping.Subscription{
		Kind: mapping.SIPWatcher, JID: presBare, AOR: aor, State: state, Dialog: dlg, Updated: now,
	}}
	s.add(sb)
	s.persist(sb)
	s.armExpiry(sb)
	// RFC 8048 §5.3.1: ask the XMPP contact for authorization; its server
	// answers subscribed at once when the authorization exists.
	req := mapping.Presence{From: wj, To: presBare, Type: "subscribe"}
	if state == mapping.SubPending {
		s.ask(sb, req) // asked again if lost or unanswered (reask.go)
	} else {
		s.sendXMPP(req)
	}
	// RFC 6665 §4.2.1.2: NOTIFY right after the 2xx (queued now; the
	// subscriber must accept a NOTIFY racing the 2xx, §4.1.2.4).
	body := bodyNone
	if state == mapping.SubActive {
		body = bodyCurrent
	}
	s.markDue(sb, body, true)
	return ok
}

func acceptsPIDF(accept []string) bool {
	for _, a := range accept {
		a = strings.ToLower(strings.TrimSpace(a))
		if i := strings.IndexByte(a, ';'); i >= 0 {
			a = strings.TrimSpace(a[:i])
		}
		if a == pidfType || a == "application/*" || a == "*/*" {
			return true
		}
	}
	return false
}

func noGR(u mapping.URI) mapping.URI {
	return mapping.URI{Scheme: u.Scheme, User: u.User, Host: u.Host}
}

// watcherJID is the JID at D standing for a SIP AOR.
func (s *Service) watcherJID(aor string) (mapping.JID, bool) {
	u, err := mapping.ParseURI(aor)
	if err != nil {
		return mapping.JID{}, false
	}
	return s.d.XMPPFrom(noGR(u)), true
}

// endSIPWatcher terminates a SIP watcher subscription: NOTIFY with a
// closed PIDF (only an authorized watcher sees a body, §8.2) and
// terminated;reason, XMPP unavailable from the watcher to the contact
// (RFC 8048 §5.3.3; the long-lived authorization model: no unsubscribe).
func (s *Service) endSIPWatcher(sb *sub, reason string) {
	body := bodyNone
	if sb.s.State == mapping.SubActive {
		body = bodyClosed
	}
	if wj, ok := s.watcherJID(sb.s.AOR); ok {
		s.sendXMPP(mapping.Presence{From: wj, To: sb.s.JID, Type: "unavailable"})
	}
	s.terminate(sb, reason, body)
}

// terminate removes the subscription now and queues its final NOTIFY.
func (s *Service) terminate(sb *sub, reason string, body int) {
	if sb.gone {
		return
	}
	s.drop(sb)
	sb.term, sb.due, sb.dueNow, sb.dueBody = reason, true, true, body
	s.schedule(sb)
}

func (s *Service) armExpiry(sb *sub) {
	sb.expGen++
	gen := sb.expGen
	s.tm.at(sb.s.Dialog.Expires, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if sb.gone || sb.expGen != gen {
			return
		}
		// RFC 8048 §5.3.3 (long-lived model): expiry without refresh ends
		// the dialog as Expires 0 does.
		s.endSIPWatcher(sb, "timeout")
	})
}

// markDue merges a change into the subscription's pending slot (RFC 3856
// §6.10 coalescing: the last state wins, the slot never grows).
func (s *Service) markDue(sb *sub, body int, now bool) {
	if sb.gone {
		return
	}
	sb.due = true
	sb.dueNow = sb.dueNow || now
	sb.dueBody = max(sb.dueBody, body)
	s.schedule(sb)
}

// schedule puts a due subscription on the NOTIFY queue now, or arms the
// end of its coalescing window. One NOTIFY per subscription is in flight
// at a time, so CSeqs go out in order.
func (s *Service) schedule(sb *sub) {
	if !sb.due || sb.queued || sb.inflight {
		return
	}
	if sb.dueNow || sb.term != "" || s.clk.Now().Sub(sb.lastPres) >= s.cfg.Coalesce {
		sb.queued = true
		s.work = append(s.work, sb)
		select {
		case s.workKick <- struct{}{}:
		default:
		}
		return
	}
	if sb.window {
		return
	}
	sb.window = true
	s.tm.at(sb.lastPres.Add(s.cfg.Coalesce), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		sb.window = false
		s.schedule(sb)
	})
}

func (s *Service) worker(ctx context.Context) {
	for {
		s.mu.Lock()
		var sb *sub
		if len(s.work) > 0 {
			sb = s.work[0]
			s.work[0] = nil
			s.work = s.work[1:]
			if len(s.work) > 0 {
				select {
				case s.workKick <- struct{}{}:
				default:
				}
			}
		}
		s.mu.Unlock()
		if sb == nil {
			select {
			case <-ctx.Done():
				return
			case <-s.workKick:
			}
			continue
		}
		s.sendNotify(ctx, sb)
	}
}

// sendNotify sends the subscription's pending NOTIFY and handles the answer
// (RFC 6665 §4.2.2).
func (s *Service) sendNotify(ctx context.Context, sb *sub) {
	s.mu.Lock()
	sb.queued = false
	if !sb.due || (sb.gone && sb.term == "") {
		sb.due = false
		s.mu.Unlock()
		return
	}
	now := s.clk.Now()
	term, bodyKind := sb.term, sb.dueBody
	var state string
	remaining := max(sb.s.Dialog.Expires.Sub(now).Round(time.Second), 0)
	expires := strconv.Itoa(int(remaining / time.Second))
	switch {
	case term != "":
		state = "terminated;reason=" + term
	case sb.s.State == mapping.SubActive:
		state = "active;expires=" + expires
	default:
		state = "pending;expires=" + expires
		bodyKind = bodyNone // nothing is sent to an unauthorized watcher (§8.2)
	}
	var body []byte
	switch bodyKind {
	case bodyCurrent:
		if sb.s.State == mapping.SubActive {
			body = s.currentPIDF(sb.s.JID)
		}
	case bodyClosed:
		body = s.closedPIDF(sb.s.JID)
	}
	if bodyKind == bodyCurrent {
		sb.lastPres = now
	}
	if body != nil {
		sb.s.LastBody = body
	}
	sb.due, sb.dueNow, sb.dueBody = false, false, bodyNone
	sb.inflight = true
	sb.s.Dialog.LocalCSeq++ // the caller increments first (contract)
	d := sb.s.Dialog
	wait := s.cseqWait(sb)
	s.mu.Unlock()

	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}
	ct := ""
	if len(body) > 0 {
		ct = pidfType
	}
	tctx, cancel := context.WithTimeout(ctx, s.cfg.NotifyTimeout)
	resp, err := s.sip.Notify(tctx, d, state, ct, body)
	cancel()

	s.mu.Lock()
	defer s.mu.Unlock()
	sb.inflight = false
	if ctx.Err() != nil {
		return
	}
	outcome := "ok"
	switch {
	case err != nil || resp.Status == 408:
		outcome = "timeout"
		sb.timeouts++
		if sb.timeouts >= 2 && term == "" {
			// RFC 6665 §4.2.2: Timer F → SHOULD remove (stox tolerates one).
			s.lostWatcher(sb)
		} else if term == "" {
			s.markDue(sb, bodyKind, true) // resend the state
		}
	case removeOnNotify(resp.Status):
		outcome = "gone"
		if term == "" {
			s.lostWatcher(sb) // RFC 6665 §4.2.2: MUST remove
		}
	case resp.Status >= 300:
		outcome = "failed"
	default:
		sb.timeouts = 0
	}
	s.met.Notify(outcome)
	if sb.due {
		s.schedule(sb)
	}
}

// removeOnNotify lists the NOTIFY failures that end a subscription
// (RFC 6665 §4.2.2).
func removeOnNotify(code int) bool {
	switch code {
	case 404, 405, 410, 416, 489, 501, 604:
		return true
	}
	return code >= 480 && code <= 485
}

// lostWatcher drops a subscription whose watcher is gone and tells the
// XMPP contact the watcher is unavailable (RFC 8048 §5.3.3).
func (s *Service) lostWatcher(sb *sub) {
	if sb.gone {
		return
	}
	if wj, ok := s.watcherJID(sb.s.AOR); ok {
		s.sendXMPP(mapping.Presence{From: wj, To: sb.s.JID, Type: "unavailable"})
	}
	s.drop(sb)
}

// cseqWait implements the CSeq rule across restarts: Run resumes every
// dialog at the stored LocalCSeq + cseqHeadroom, so a NOTIFY may go out
// with CSeq c only while c < stored + cseqHeadroom. State changes write the
// subscription anyway (write-behind); when the counter reaches the end of
// the headroom, the NOTIFY waits for a write of the current value. That is
// one Store write per 1000 NOTIFYs of a dialog, never one per NOTIFY.
func (s *Service) cseqWait(sb *sub) <-chan struct{} {
	if sb.gone && sb.term != "" {
		// The final NOTIFY of a deleted subscription: nothing to resume.
		return nil
	}
	if sb.s.Dialog.LocalCSeq < sb.durableCSeq+cseqHeadroom {
		return nil
	}
	ch := make(chan struct{})
	s.persistDone(sb, func(error) { close(ch) })
	return ch
}

// handlePresence dispatches a stanza from the XMPP server (event loop).
func (s *Service) handlePresence(p mapping.Presence) {
	if !strings.EqualFold(p.To.Domain, s.d.XMPP) || p.To.Local == "" || p.From.Local == "" && p.From.Domain == "" {
		return
	}
	local := false
	if p.Type == "subscribe" {
		if u, err := s.d.SIPTarget(p.To.Bare()); err == nil {
			local = s.isLocal(s.ctx, u) // outside the lock: may touch the database
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch p.Type {
	case "", "unavailable":
		s.contactPresence(p)
		s.watcherPresence(p)
	case "subscribed":
		s.contactSubscribed(p)
	case "unsubscribed":
		s.contactUnsubscribed(p, "rejected")
	case "subscribe":
		s.xmppSubscribe(p, local)
	case "unsubscribe":
		s.xmppUnsubscribe(p)
	case "probe":
		s.xmppProbe(p)
	case "error":
		s.presenceError(p)
	}
}

func (s *Service) pairOf(p mapping.Presence) (pairKey, bool) {
	u, err := s.d.SIPTarget(p.To.Bare())
	if err != nil {
		return pairKey{}, false
	}
	return pairKey{jid: p.From.Bare().String(), aor: u.AOR()}, true
}

func (s *Service) sipWatcher(pk pairKey) *sub {
	return s.subs[subKey{kind: mapping.SIPWatcher, jid: pk.jid, aor: pk.aor}]
}

// contactSubscribed: the XMPP contact approved the SIP watcher (RFC 8048
// §5.3.1, Example 14): empty NOTIFY active;expires=remaining, presence
// NOTIFYs follow as the XMPP server sends the contact's presence.
func (s *Service) contactSubscribed(p mapping.Presence) {
	pk, ok := s.pairOf(p)
	if !ok {
		return
	}
	s.authz[pk] = true
	sb := s.sipWatcher(pk)
	if sb == nil || sb.s.State == mapping.SubActive {
		return
	}
	sb.s.State = mapping.SubActive
	sb.s.Updated = s.clk.Now()
	s.persist(sb)
	s.markDue(sb, bodyNone, true)
}

// contactUnsubscribed: the XMPP contact declined or revoked the SIP
// watcher (RFC 8048 §5.3.1, Example 16): empty NOTIFY
// terminated;reason=rejected and forget the subscription.
func (s *Service) contactUnsubscribed(p mapping.Presence, reason string) {
	pk, ok := s.pairOf(p)
	if !ok {
		return
	}
	delete(s.authz, pk)
	if sb := s.sipWatcher(pk); sb != nil {
		s.terminate(sb, reason, bodyNone)
	}
}

// presenceError: an error bounce for the subscribe stox sent on behalf of
// a SIP watcher (e.g. no such contact) ends a pending subscription with
// terminated;reason=noresource (RFC 6665 §4.1.3: do not retry). An active
// one is left alone: errors to probes or directed presence are transient.
func (s *Service) presenceError(p mapping.Presence) {
	if pk, ok := s.pairOf(p); ok {
		if sb := s.sipWatcher(pk); sb != nil && sb.s.State == mapping.SubPending {
			s.terminate(sb, "noresource", bodyNone)
		}
	}
	s.watcherGone(p)
}

// contactPresence: available or unavailable presence of an XMPP contact
// addressed to a watcher at D (RFC 8048 §6.2). The last known state per
// resource is cached (and written behind to the Store); the watcher's
// subscription, if active, gets a coalesced NOTIFY. Only the addressed
// watcher is notified (§8.2), even though the cache is per contact.
func (s *Service) contactPresence(p mapping.Presence) {
	pk, ok := s.pairOf(p)
	if !ok {
		return
	}
	s.authz[pk] = true // the XMPP server sends presence only to authorized subscribers
	// Not skipped when the contact's state is unchanged: the server sends
	// one copy per watcher at D, and each copy is that watcher's news.
	s.cachePresence(p)
	if sb := s.sipWatcher(pk); sb != nil && sb.s.State == mapping.SubActive {
		s.markDue(sb, bodyCurrent, false)
	}
}

func samePresence(a, b mapping.Presence) bool {
	return a.Type == b.Type && a.Show == b.Show && a.Priority == b.Priority && a.Lang == b.Lang &&
		slices.Equal(a.Status, b.Status)
}

// cachePresence records p and reports whether the contact's state changed.
func (s *Service) cachePresence(p mapping.Presence) bool {
	bare := p.From.Bare().String()
	rs := s.pres[bare]
	if rs == nil {
		rs = make(map[string]*cached)
		s.pres[bare] = rs
	}
	p.To, p.ID, p.Error = mapping.JID{}, "", nil
	if old := rs[p.From.Resource]; old != nil && samePresence(old.p, p) {
		return false // the same change reaches stox once per watcher at D: write once
	}
	if p.From.Resource == "" && p.Type == "unavailable" && len(rs) > 0 {
		// Unavailable from the bare JID (a server's answer to a probe, RFC
		// 6121 §4.3.2) means no resource is online: close them all rather
		// than add a tuple for a resource that does not exist.
		for r, c := range rs {
			if c.p.Type != "unavailable" {
				q := c.p
				q.Type, q.Show, q.Status = "unavailable", "", nil
				rs[r] = &cached{p: q, when: s.clk.Now()}
			}
		}
		delete(s.pdoc, bare)
		return true
	}
	if p.From.Resource != "" && rs[""] != nil {
		delete(rs, "") // a real resource supersedes the bare-JID placeholder
	}
	rs[p.From.Resource] = &cached{p: p, when: s.clk.Now()}
	delete(s.pdoc, bare)
	from := p.From
	if p.Type == "unavailable" {
		s.wr.put("p\x00"+from.String(), &writeOp{delPres: &from})
		s.pruneClosed(rs)
	} else {
		pc := p
		s.wr.put("p\x00"+from.String(), &writeOp{pres: &pc})
	}
	return true
}

// pruneClosed keeps at most maxClosedTuple departed resources: their closed
// tuples tell watchers the resource went away (RFC 8048 §6.2).
func (s *Service) pruneClosed(rs map[string]*cached) {
	var closed []string
	for r, c := range rs {
		if c.p.Type == "unavailable" {
			closed = append(closed, r)
		}
	}
	if len(closed) <= maxClosedTuple {
		return
	}
	slices.SortFunc(closed, func(a, b string) int { return rs[a].when.Compare(rs[b].when) })
	for _, r := range closed[:len(closed)-maxClosedTuple] {
		delete(rs, r)
	}
}

func (s *Service) entity(bare mapping.JID) mapping.URI {
	u := mapping.JIDToURI(bare)
	u.Scheme = "pres"
	return u
}

// currentPIDF is the contact's state, one tuple per known resource (closed
// for one that went unavailable); nil when nothing is known, which makes
// the NOTIFY empty (RFC 8048 §5.3.2).
func (s *Service) currentPIDF(bare mapping.JID) []byte {
	key := bare.String()
	rs := s.pres[key]
	if len(rs) == 0 {
		return nil
	}
	if b, ok := s.pdoc[key]; ok {
		return b // one marshal per change, not one per watcher
	}
	ps := make([]mapping.Presence, 0, len(rs))
	for _, c := range rs {
		ps = append(ps, c.p)
	}
	// Open tuples first: RFC 8048 §6.2 lets the SIP UA pick the most
	// available tuple, and simple UAs (baresip 1.0) read only the first.
	slices.SortFunc(ps, func(a, b mapping.Presence) int {
		if ca, cb := a.Type == "unavailable", b.Type == "unavailable"; ca != cb {
			if ca {
				return 1
			}
			return -1
		}
		return strings.Compare(a.From.Resource, b.From.Resource)
	})
	b, err := marshalPIDF(presenceToPIDF(s.d, ps, s.entity(bare)))
	if err != nil {
		s.log.Error("marshal PIDF", zap.Error(err))
		return nil
	}
	s.pdoc[key] = b
	return b
}

// closedPIDF has every known tuple closed (RFC 8048 §5.3.3); with nothing
// known, one closed tuple.
func (s *Service) closedPIDF(bare mapping.JID) []byte {
	var ps []mapping.Presence
	for _, c := range s.pres[bare.String()] {
		p := c.p
		p.Type, p.Show, p.Status = "unavailable", "", nil
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b mapping.Presence) int { return strings.Compare(a.From.Resource, b.From.Resource) })
	doc := presenceToPIDF(s.d, ps, s.entity(bare))
	if len(doc.Tuples) == 0 {
		doc.Tuples = []mapping.Tuple{{ID: "ID-closed", Basic: "closed", Priority: -1}}
	}
	b, err := marshalPIDF(doc)
	if err != nil {
		return nil
	}
	return b
}
