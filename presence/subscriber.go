package presence

// XMPP watcher of a SIP presentity: stox is the subscriber of a
// notification dialog (RFC 8048 §5.2, §6.3; RFC 6665 §4.1), or the
// presence agent of a user of its own registrar (agent.go).

import (
	"context"
	"strings"
	"time"

	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

func (s *Service) xmppWatcher(p mapping.Presence) (*sub, subKey, mapping.URI, bool) {
	u, err := s.d.SIPTarget(p.To.Bare())
	if err != nil {
		return nil, subKey{}, mapping.URI{}, false
	}
	k := subKey{kind: mapping.XMPPWatcher, jid: p.From.Bare().String(), aor: u.AOR()}
	return s.subs[k], k, u, true
}

// isLocal reports whether u is a user of stox's own registrar, for whom
// stox is the presence agent. It may touch the database: never call it
// with s.mu held.
func (s *Service) isLocal(ctx context.Context, u mapping.URI) bool {
	if s.loc == nil || !strings.EqualFold(u.Host, s.d.SIP) {
		return false
	}
	ok, err := s.loc.AccountExists(ctx, u.User)
	if err != nil {
		s.log.Warn("account lookup", zap.String("user", u.User), zap.Error(err))
	}
	return ok
}

// xmppSubscribe: <presence type='subscribe'> from alice to bob@D (RFC 8048
// §5.2.1).
func (s *Service) xmppSubscribe(p mapping.Presence, local bool) {
	sb, k, u, ok := s.xmppWatcher(p)
	if !ok {
		return
	}
	alice, bobD := p.From.Bare(), p.To.Bare()
	if sb != nil {
		sb.online = true
		if sb.s.Authorize {
			// RFC 6121 §3.1.3: already subscribed: confirm again.
			s.sendXMPP(mapping.Presence{From: bobD, To: alice, Type: "subscribed"})
			s.sendWatcher(sb, s.lastKnown(sb))
		}
		return // otherwise the authorization is under way
	}
	now := s.clk.Now()
	if local {
		if !s.autoAuthorize() {
			s.sendXMPP(mapping.Presence{From: bobD, To: alice, Type: "unsubscribed"})
			return
		}
		sb = &sub{key: k, online: true, bob: noGR(u), s: mapping.Subscription{
			Kind: mapping.XMPPWatcher, JID: alice, AOR: k.aor, State: mapping.SubActive, Authorize: true, Updated: now,
		}}
		s.add(sb)
		s.persist(sb)
		s.sendXMPP(mapping.Presence{From: bobD, To: alice, Type: "subscribed"})
		s.sendWatcher(sb, s.localPresence(sb))
		return
	}
	// RFC 8048 §5.2.1: SUBSCRIBE Event: presence, Expires 3600; the state
	// is neutral until the first NOTIFY.
	sb = &sub{key: k, online: true, bob: noGR(u), s: mapping.Subscription{
		Kind: mapping.XMPPWatcher, JID: alice, AOR: k.aor, State: mapping.SubNeutral, Updated: now,
		Dialog: s.newDialog(alice, u),
	}}
	s.add(sb)
	s.persist(sb)
	s.startSubscribe(sb, maxExpires)
}

func (s *Service) newDialog(alice mapping.JID, bob mapping.URI) mapping.Dialog {
	return mapping.Dialog{
		CallID:    newID() + "@" + s.d.XMPP,
		LocalTag:  newID()[:16],
		LocalURI:  s.d.SIPFrom(alice.Bare()).String(),
		RemoteURI: noGR(bob).AOR(),
		Event:     "presence",
	}
}

// renewDialog replaces a dead dialog with a fresh one (RFC 6665 §4.1.2.4:
// 481 or terminated: a new SUBSCRIBE creates a new dialog). The CSeq
// continues, which is harmless in a new dialog and keeps the headroom rule.
func (s *Service) renewDialog(sb *sub) {
	s.unindexDialog(sb)
	u, err := mapping.ParseURI(sb.s.AOR)
	if err != nil {
		return
	}
	d := s.newDialog(sb.s.JID, u)
	d.LocalCSeq = sb.s.Dialog.LocalCSeq
	sb.s.Dialog = d
	s.byDialog[dialogKey{d.CallID, d.LocalTag}] = sb
}

func (s *Service) dialogLive(sb *sub) bool {
	return sb.s.Dialog.RemoteTag != "" && sb.s.Dialog.Expires.After(s.clk.Now())
}

// startSubscribe sends SUBSCRIBE (refresh when the dialog is established)
// on a goroutine owned by Run; at most cfg.Transactions run at once.
func (s *Service) startSubscribe(sb *sub, exp time.Duration) {
	if sb.txn {
		if exp > 0 {
			sb.again, sb.asked = true, exp
		}
		return
	}
	sb.txn = true
	sb.s.Dialog.LocalCSeq++
	d := sb.s.Dialog
	wait := s.cseqWaitSub(sb)
	s.goOwned(func(ctx context.Context) {
		if wait != nil {
			select {
			case <-wait:
			case <-ctx.Done():
				return
			}
		}
		select {
		case s.txSem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		tctx, cancel := context.WithTimeout(ctx, s.cfg.NotifyTimeout)
		resp, nd, err := s.sip.Subscribe(tctx, d, exp)
		cancel()
		<-s.txSem
		if ctx.Err() != nil {
			return
		}
		s.subscribeDone(sb, d, exp, resp, nd, err)
	})
}

func (s *Service) cseqWaitSub(sb *sub) <-chan struct{} {
	if sb.gone || sb.s.Dialog.LocalCSeq < sb.durableCSeq+cseqHeadroom {
		return nil
	}
	ch := make(chan struct{})
	s.persistDone(sb, func(error) { close(ch) })
	return ch
}

// subscribeDone handles the final response to a SUBSCRIBE (RFC 8048
// §5.2.1, RFC 6665 §4.1.2).
func (s *Service) subscribeDone(sb *sub, sent mapping.Dialog, exp time.Duration, resp mapping.Response, nd mapping.Dialog, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb.txn = false
	ok2xx := err == nil && resp.Status >= 200 && resp.Status < 300
	if exp == 0 {
		// Unsubscribe (RFC 8048 §5.2.1): after the answer, tell the watcher.
		if sb.unsub {
			s.sendXMPP(mapping.Presence{From: s.d.XMPPFrom(sb.bob), To: sb.s.JID, Type: "unsubscribed"})
		}
		return
	}
	if sb.gone {
		if ok2xx { // the watcher left while the SUBSCRIBE was under way: close it
			cl := *sb
			cl.s.Dialog = mergeDialog(sent, nd)
			cl.unsub, cl.txn = false, false
			s.startSubscribe(&cl, 0)
		}
		return
	}
	if sent.CallID != sb.s.Dialog.CallID {
		return // answer for a dialog since replaced
	}
	now := s.clk.Now()
	status := resp.Status
	switch {
	case ok2xx:
		sb.s.Dialog = mergeDialog(sb.s.Dialog, nd)
		if sb.s.Dialog.Expires.IsZero() || !sb.s.Dialog.Expires.After(now) {
			sb.s.Dialog.Expires = now.Add(exp)
		}
		sb.s.Attempts = 0
		sb.s.RetryAt = refreshAt(now, sb.s.Dialog.Expires)
		s.persist(sb)
		s.armRefresh(sb, sb.s.RetryAt)
		if sb.again {
			sb.again = false
			s.startSubscribe(sb, sb.asked)
		}
	case err == nil && (status == 403 || status == 489 || status == 603 || status == 404 || status == 410 || status == 604):
		// RFC 8048 §5.2.1: 403, 489, 603 (and stox adds: the user does not
		// exist) cancel the authorization permanently (MUST tell the user).
		s.sendXMPP(mapping.Presence{From: s.d.XMPPFrom(sb.bob), To: sb.s.JID, Type: "unsubscribed"})
		s.drop(sb)
	case err == nil && status == 423 && exp < maxExpires:
		// Transient (RFC 8048 §5.2.1): honour Min-Expires. The contract's
		// Response carries no Min-Expires, so stox doubles the interval,
		// capped at 3600 s, and retries at once.
		s.startSubscribe(sb, min(2*exp, maxExpires))
	case err == nil && status == 481:
		// Transient: the dialog is gone; a new one (RFC 6665 §4.1.2.4).
		s.renewDialog(sb)
		s.persist(sb)
		s.backoff(sb, sb.s.Attempts == 0)
	default:
		// 408, 5xx, timeouts and the rest: retry with backoff.
		s.backoff(sb, false)
	}
}

func mergeDialog(d, nd mapping.Dialog) mapping.Dialog {
	if nd.RemoteTag != "" && d.RemoteTag == "" {
		d.RemoteTag = nd.RemoteTag
	}
	if d.RouteSet == nil && nd.RouteSet != nil {
		// RFC 3261 §12.1.2: fixed at dialog creation (the 2xx may come
		// after the first NOTIFY, which set the remote tag).
		d.RouteSet = nd.RouteSet
	}
	if nd.RemoteTarget != "" {
		d.RemoteTarget = nd.RemoteTarget
	}
	if !nd.Expires.IsZero() {
		d.Expires = nd.Expires
	}
	if d.Destination == "" {
		d.Destination = nd.Destination
	}
	return d
}

// refreshAt is ~80 % of the way to expiry (RFC 8048 §5.2.1 "sufficiently
// in advance").
func refreshAt(now, exp time.Time) time.Time {
	return now.Add(exp.Sub(now) * 4 / 5)
}

// backoff schedules a retry: 1 s doubling to 5 min (RetryBase/RetryMax).
func (s *Service) backoff(sb *sub, immediate bool) {
	sb.s.Attempts++
	delay := time.Duration(0)
	if !immediate {
		delay = s.cfg.RetryBase
		for i := 1; i < sb.s.Attempts && delay < s.cfg.RetryMax; i++ {
			delay *= 2
		}
		delay = min(delay, s.cfg.RetryMax)
	}
	sb.s.RetryAt = s.clk.Now().Add(delay)
	s.persist(sb)
	s.armRetry(sb, sb.s.RetryAt)
}

func (s *Service) armRetry(sb *sub, at time.Time) {
	sb.refGen++
	gen := sb.refGen
	s.tm.at(at, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if sb.gone || sb.refGen != gen {
			return
		}
		if !s.dialogLive(sb) && sb.s.Dialog.RemoteTag != "" {
			s.renewDialog(sb)
		}
		s.startSubscribe(sb, maxExpires)
	})
}

// armRefresh arms the refresh of a long-lived authorization. Before each
// refresh stox probes the watcher's bare JID (RFC 8048 §8.1) and refreshes
// only if her server answers within ProbeWait; otherwise the dialog is let
// expire until she is back (probe or presence from her).
func (s *Service) armRefresh(sb *sub, at time.Time) {
	sb.refGen++
	gen := sb.refGen
	s.tm.at(at, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if sb.gone || sb.refGen != gen {
			return
		}
		if !sb.online {
			return // offline: let the dialog expire
		}
		sb.probing = true
		s.sendXMPP(mapping.Presence{From: s.d.XMPPFrom(sb.bob), To: sb.s.JID, Type: "probe"})
		sb.refGen++
		gen2 := sb.refGen
		s.tm.at(s.clk.Now().Add(s.cfg.ProbeWait), func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if sb.gone || sb.refGen != gen2 || !sb.probing {
				return
			}
			sb.probing, sb.online = false, false // no answer: stop refreshing
		})
	})
}

// resubscribe refreshes the dialog when it is live, else opens a new one.
func (s *Service) resubscribe(sb *sub) {
	if sb.s.Dialog.CallID == "" {
		return // local presentity
	}
	sb.refGen++ // cancels a pending refresh/retry/probe timer
	if !s.dialogLive(sb) && sb.s.Dialog.RemoteTag != "" {
		s.renewDialog(sb)
	}
	s.startSubscribe(sb, maxExpires)
}

// watcherPresence: presence from alice to bob@D tells stox whether alice
// is online (RFC 8048 §5.2.1, §8.1).
func (s *Service) watcherPresence(p mapping.Presence) {
	sb, _, _, ok := s.xmppWatcher(p)
	if !ok || sb == nil {
		return
	}
	if p.Type == "unavailable" {
		sb.online, sb.probing = false, false
		return
	}
	wasOnline := sb.online
	sb.online = true
	if sb.probing {
		sb.probing = false
		s.resubscribe(sb)
	} else if sb.s.Authorize && !wasOnline && !s.dialogLive(sb) && !sb.txn {
		s.resubscribe(sb) // she is back: initial presence → refresh (§5.2.1 SHOULD)
	}
}

// watcherGone: an error from alice's server (for a probe) means offline.
func (s *Service) watcherGone(p mapping.Presence) {
	if sb, _, _, ok := s.xmppWatcher(p); ok && sb != nil && sb.probing {
		sb.probing, sb.online = false, false
	}
}

// xmppProbe: alice's server probes bob@D (at her login, RFC 6121 §4.3).
// An authorized watcher gets bob's last known presence (or unavailable)
// and, for a remote bob, a refresh of the dialog (RFC 8048 §5.2.1: initial
// presence SHOULD refresh; a refresh yields a full-state NOTIFY, RFC 6665
// §4.2.1.2, so stox needs no §7.1 one-shot poll for a subscriber). Without
// a subscription the answer is unsubscribed and no SIP request is sent
// (RFC 6121 §4.3.2, RFC 8048 §8.2: privacy first).
func (s *Service) xmppProbe(p mapping.Presence) {
	sb, _, _, ok := s.xmppWatcher(p)
	if !ok {
		return
	}
	if sb == nil {
		s.sendXMPP(mapping.Presence{From: p.To.Bare(), To: p.From.Bare(), Type: "unsubscribed"})
		return
	}
	sb.online = true
	if !sb.s.Authorize {
		return // authorization under way: nothing to reveal yet
	}
	s.sendWatcher(sb, s.lastKnown(sb))
	if sb.s.Dialog.CallID != "" && !sb.txn {
		sb.probing = false
		s.resubscribe(sb)
	} else {
		sb.probing = false
	}
}

// xmppUnsubscribe: alice no longer wants bob's presence (RFC 8048 §5.2.1):
// SUBSCRIBE Expires 0 in the dialog, then unsubscribed to her.
func (s *Service) xmppUnsubscribe(p mapping.Presence) {
	sb, _, _, ok := s.xmppWatcher(p)
	if !ok || sb == nil {
		return
	}
	s.drop(sb)
	if sb.s.Dialog.CallID == "" || sb.s.Dialog.RemoteTag == "" || !sb.s.Dialog.Expires.After(s.clk.Now()) {
		// Local presentity, or no established dialog (a SUBSCRIBE under
		// way is closed when it answers): nothing to end on the SIP side.
		s.sendXMPP(mapping.Presence{From: p.To.Bare(), To: p.From.Bare(), Type: "unsubscribed"})
		return
	}
	sb.unsub = true
	sb.txn = false // a refresh under way is superseded
	s.startSubscribe(sb, 0)
}

// lastKnown is bob's presence for alice: local users from PUBLISH or
// registration, remote ones from the last NOTIFY body, else unavailable.
func (s *Service) lastKnown(sb *sub) []mapping.Presence {
	if sb.s.Dialog.CallID == "" {
		return s.localPresence(sb)
	}
	bob := sb.bob
	if len(sb.s.LastBody) > 0 {
		if doc, err := parsePIDF(sb.s.LastBody); err == nil {
			if ps := pidfToPresence(s.d, doc, bob, sb.s.JID); len(ps) > 0 {
				return ps
			}
		}
	}
	return []mapping.Presence{{From: s.d.XMPPFrom(bob), To: sb.s.JID, Type: "unavailable"}}
}

// sendWatcher sends presence stanzas to an authorized XMPP watcher (never
// to anyone else, §8.2), plus unavailable for resources sent before and
// now absent from the document.
func (s *Service) sendWatcher(sb *sub, ps []mapping.Presence) {
	if !sb.s.Authorize {
		return
	}
	now := make(map[string]bool, len(ps))
	var from mapping.JID
	for _, p := range ps {
		p.To = sb.s.JID
		s.sendXMPP(p)
		from = p.From.Bare()
		if p.Type == "" {
			now[p.From.Resource] = true
		}
	}
	for r := range sb.sent {
		if !now[r] && !from.IsZero() {
			f := from
			f.Resource = r
			s.sendXMPP(mapping.Presence{From: f, To: sb.s.JID, Type: "unavailable"})
		}
	}
	sb.sent = now
}

// Notify handles a NOTIFY in a dialog stox created as subscriber (RFC 6665
// §4.1.3, RFC 8048 §5.2.1). The dialog checks are made here; translation
// and stanzas happen on the event loop, after the 200.
func (s *Service) Notify(ctx context.Context, r mapping.NotifyRequest) mapping.Outcome {
	if !s.isReady() {
		return mapping.Outcome{Status: 500, Reason: "Server Starting", RetryAfter: 5 * time.Second}
	}
	s.mu.Lock()
	dk := dialogKey{r.CallID, r.LocalTag}
	sb := s.byDialog[dk]
	if sb == nil {
		_, closing := s.closing[dk]
		s.mu.Unlock()
		if closing {
			return mapping.Outcome{Status: 200, Reason: "OK"} // final NOTIFY of a dialog stox ended
		}
		return mapping.Outcome{Status: 481, Reason: "Subscription Does Not Exist"}
	}
	if !strings.EqualFold(r.Event, "presence") {
		s.mu.Unlock()
		return mapping.Outcome{Status: 489, Reason: "Bad Event"}
	}
	d := &sb.s.Dialog
	if d.RemoteCSeq != 0 && r.CSeq <= d.RemoteCSeq { // RFC 3261 §12.2.2
		s.mu.Unlock()
		return mapping.Outcome{Status: 500, Reason: "CSeq Out Of Order"}
	}
	if len(r.Body) > 0 && !isPIDF(r.ContentType) {
		s.mu.Unlock()
		return mapping.Outcome{Status: 415, Reason: "Unsupported Media Type"}
	}
	d.RemoteCSeq = r.CSeq
	if d.RemoteTag == "" {
		d.RemoteTag = r.RemoteTag
	}
	if r.Contact != "" {
		d.RemoteTarget = r.Contact // RFC 6665 §4.1.3: target refresh
	}
	s.mu.Unlock()
	select {
	case s.events <- &event{n: &r}:
		return mapping.Outcome{Status: 200, Reason: "OK"}
	default:
		return mapping.Outcome{Status: 500, Reason: "Overloaded", RetryAfter: 5 * time.Second}
	}
}

func isPIDF(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), pidfType)
}

// notifyEvent applies an accepted NOTIFY (event loop).
func (s *Service) notifyEvent(r mapping.NotifyRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb := s.byDialog[dialogKey{r.CallID, r.LocalTag}]
	if sb == nil {
		return
	}
	now := s.clk.Now()
	bob := sb.bob
	bobD := s.d.XMPPFrom(bob)
	switch strings.ToLower(r.State) {
	case "pending": // RFC 8048 §5.2.1: silent
		if sb.s.State != mapping.SubPending {
			sb.s.State, sb.s.Updated = mapping.SubPending, now
			s.persist(sb)
		}
	case "active":
		changed := false
		if !sb.s.Authorize {
			// First active: the authorization was granted.
			sb.s.Authorize, changed = true, true
			s.sendXMPP(mapping.Presence{From: bobD, To: sb.s.JID, Type: "subscribed"})
		}
		if sb.s.State != mapping.SubActive {
			sb.s.State, sb.s.Updated, changed = mapping.SubActive, now, true
		}
		if r.Expires > 0 {
			exp := now.Add(r.Expires)
			if exp.Before(sb.s.Dialog.Expires) || sb.s.Dialog.Expires.IsZero() {
				sb.s.Dialog.Expires = exp
				sb.s.RetryAt = refreshAt(now, exp)
				s.armRefresh(sb, sb.s.RetryAt)
				changed = true
			}
		}
		// A body-less NOTIFY means the state is unknown (RFC 8048 §5.2.1):
		// nothing is sent beyond subscribed.
		if len(r.Body) > 0 {
			s.deliverBody(sb, bob, r.Body)
		}
		if changed {
			s.persist(sb)
		}
	case "terminated":
		if len(r.Body) > 0 && sb.s.Authorize {
			s.deliverBody(sb, bob, r.Body)
		}
		switch strings.ToLower(r.Reason) {
		case "rejected", "noresource", "invariant":
			// RFC 6665 §4.1.3: do not retry: the authorization is gone.
			s.sendXMPP(mapping.Presence{From: bobD, To: sb.s.JID, Type: "unsubscribed"})
			s.drop(sb)
		default: // timeout, deactivated, probation, giveup, none
			s.renewDialog(sb)
			sb.s.State, sb.s.Updated = mapping.SubNeutral, now
			s.persist(sb)
			if !sb.online && sb.s.Authorize {
				return // she is offline: resubscribe when she is back
			}
			switch {
			case r.RetryAfter > 0:
				sb.s.RetryAt = now.Add(r.RetryAfter)
				s.armRetry(sb, sb.s.RetryAt)
			case strings.EqualFold(r.Reason, "probation") || strings.EqualFold(r.Reason, "giveup"):
				s.backoff(sb, false)
			default:
				s.startSubscribe(sb, maxExpires)
			}
		}
	}
}

func (s *Service) deliverBody(sb *sub, bob mapping.URI, body []byte) {
	doc, err := parsePIDF(body)
	if err != nil {
		s.log.Info("bad PIDF in NOTIFY", zap.String("aor", sb.s.AOR), zap.Error(err))
		return
	}
	sb.s.LastBody = append([]byte(nil), body...)
	ps := pidfToPresence(s.d, doc, bob, sb.s.JID)
	if len(ps) == 0 {
		ps = []mapping.Presence{{From: s.d.XMPPFrom(bob), To: sb.s.JID, Type: "unavailable"}}
	}
	s.sendWatcher(sb, ps)
}
