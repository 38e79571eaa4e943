package sip

import (
	"context"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// presenceEvent is the only event package stox serves (RFC 3856).
const presenceEvent = "presence"

// pidfType is the body type stox asks for and accepts (RFC 3863, RFC 3856 §6.6).
const pidfType = "application/pidf+xml"

// allowEvents is the Allow-Events header (RFC 6665 §8.2.2): empty without
// a presence handler, as before presence existed.
func (s *Stack) allowEvents() sip.Header {
	if s.presence != nil {
		return sip.NewHeader("Allow-Events", presenceEvent)
	}
	return sip.NewHeader("Allow-Events", "")
}

// eventOf returns the Event header (compact form "o", RFC 6665 §8.2.1).
func eventOf(req *sip.Request) sip.Header { return firstHeader(req, "Event", "o") }

// handleSubscribe is the SUBSCRIBE UAS with stox as notifier (RFC 6665
// §4.2.1, RFC 3856 §6).
func (s *Stack) handleSubscribe(req *sip.Request, tx *rtx) {
	h := s.presence
	if h == nil {
		// No event package without the presence service (RFC 6665 §8.3.1).
		s.respond(req, tx, 489, "Bad Event", []sip.Header{s.allowEvents()})
		return
	}
	from, to, cseq := req.From(), req.To(), req.CSeq()
	if from == nil || to == nil || cseq == nil || req.CallID() == nil || req.Via() == nil {
		s.respond(req, tx, 400, "Bad Request", nil)
		return
	}
	fromTag, toTag := tagOf(from.Params), tagOf(to.Params)
	if fromTag == "" { // RFC 3261 §8.1.1.3: MUST
		s.respond(req, tx, 400, "Missing From tag", nil)
		return
	}
	initial := toTag == ""
	localTag := toTag
	if initial {
		localTag = sip.GenerateTagN(16)
	}
	log := s.flow(zap.String("call_id", callID(req)),
		zap.Stringer("from", &from.Address), zap.Stringer("to", &to.Address))

	// Event: mandatory; without one (PINT, RFC 6665 §4.2.3) or with another
	// package (§4.2.1.1): 489 with Allow-Events.
	eh := eventOf(req)
	if eh == nil {
		s.respondTag(req, tx, 489, "Bad Event", localTag, []sip.Header{s.allowEvents()})
		return
	}
	pkg, evID, err := parseEvent(eh.Value())
	if err != nil {
		s.respondTag(req, tx, 400, "Bad Event Header", localTag, nil)
		return
	}
	if pkg != presenceEvent {
		s.respondTag(req, tx, 489, "Bad Event", localTag, []sip.Header{s.allowEvents()})
		return
	}
	expires, ok := headerExpires(req)
	if !ok {
		s.respondTag(req, tx, 400, "Bad Expires", localTag, nil)
		return
	}
	// Contact is mandatory in SUBSCRIBE (RFC 6665 §4.1.2.1, RFC 3261
	// §8.1.1.8); a refresh without one keeps the old remote target.
	target := ""
	if c := req.Contact(); c != nil {
		if c.Address.Wildcard || c.Address.Host == "" {
			s.respondTag(req, tx, 400, "Bad Contact", localTag, nil)
			return
		}
		target = c.Address.String()
	} else if initial {
		s.respondTag(req, tx, 400, "Missing Contact", localTag, nil)
		return
	}
	if _, _, ok := s.bodyAndType(req, tx, localTag); !ok { // filters (RFC 4661) are not supported; the body is ignored
		return
	}
	release, ok := s.admit(req, tx, log)
	if !ok {
		return
	}
	defer release()
	if !s.authorizeSender(req, tx, from, log) {
		return
	}
	u, ok := s.uris(req, tx, localTag, log, &req.Recipient, &from.Address)
	if !ok {
		return
	}
	ruri, furi := u[0], u[1]
	if !initial {
		// Inside the dialog the Request-URI is our Contact (RFC 3261
		// §12.2.1.1); the presentity is the dialog's local URI, our
		// address as notifier (the To URI, §12.1.1).
		if u, err := toURI(&to.Address); err == nil {
			ruri = u
		}
	}
	d := uasDialog(req, localTag, target)
	d.Event, d.EventID = pkg, evID
	r := mapping.SubscribeRequest{
		Dialog:     d,
		Watcher:    furi,
		Presentity: ruri,
		Event:      pkg,
		Expires:    expires,
		Accept:     acceptList(req),
		Initial:    initial,
	}
	log.Debug("subscribe in", zap.Bool("initial", initial), zap.Duration("expires", expires))
	out := askHandler(s, log, "subscribe", func(ctx context.Context) (mapping.SubscribeOutcome, int) {
		o := h.Subscribe(ctx, r)
		return o, o.Status
	}, mapping.SubscribeOutcome{Status: 500})
	var hdrs []sip.Header
	switch {
	case out.Status < 300:
		hdrs = append(hdrs, sip.NewHeader("Expires", seconds(out.Expires)),
			sip.NewHeader("Contact", s.ourContact(strings.ToLower(req.Transport()))))
	case out.Status == 423:
		hdrs = append(hdrs, sip.NewHeader("Min-Expires", seconds(out.MinExpires)))
	case out.Status == 489:
		hdrs = append(hdrs, s.allowEvents())
	}
	s.answer(req, tx, out.Status, out.Reason, out.RetryAfter, localTag, hdrs)
}

// handleNotify is the NOTIFY UAS with stox as subscriber (RFC 6665
// §4.1.3). Only NOTIFYs inside a dialog stox created are meaningful; the
// handler matches them by Call-ID and our tag (the To tag here, the From
// tag of our SUBSCRIBE), also before the SUBSCRIBE's 2xx arrived
// (§4.1.2.4). There is no digest: the unguessable dialog identifiers are
// the credential, as for any in-dialog request.
func (s *Stack) handleNotify(req *sip.Request, tx *rtx) {
	h := s.presence
	if h == nil {
		s.respond(req, tx, 481, "Subscription Does Not Exist", nil)
		return
	}
	from, to, cseq := req.From(), req.To(), req.CSeq()
	if from == nil || to == nil || cseq == nil || req.CallID() == nil {
		s.respond(req, tx, 400, "Bad Request", nil)
		return
	}
	localTag, remoteTag := tagOf(to.Params), tagOf(from.Params)
	if localTag == "" { // stox creates no subscription implicitly
		s.respond(req, tx, 481, "Subscription Does Not Exist", nil)
		return
	}
	if remoteTag == "" {
		s.respond(req, tx, 400, "Missing From tag", nil)
		return
	}
	log := s.flow(zap.String("call_id", callID(req)), zap.Stringer("from", &from.Address))
	eh := eventOf(req)
	if eh == nil {
		s.respond(req, tx, 489, "Bad Event", []sip.Header{s.allowEvents()})
		return
	}
	pkg, _, err := parseEvent(eh.Value())
	if err != nil {
		s.respond(req, tx, 400, "Bad Event Header", nil)
		return
	}
	if pkg != presenceEvent {
		s.respond(req, tx, 489, "Bad Event", []sip.Header{s.allowEvents()})
		return
	}
	ssh := req.GetHeader("Subscription-State")
	if ssh == nil { // RFC 6665 §4.1.3: MUST be present
		s.respond(req, tx, 400, "Missing Subscription-State", nil)
		return
	}
	st, err := parseSubState(ssh.Value())
	if err != nil {
		s.respond(req, tx, 400, "Bad Subscription-State", nil)
		return
	}
	ctype, body, ok := s.bodyAndType(req, tx, "")
	if !ok {
		return
	}
	contact := ""
	if c := req.Contact(); c != nil && !c.Address.Wildcard && c.Address.Host != "" {
		contact = c.Address.String()
	}
	release, ok := s.admit(req, tx, log)
	if !ok {
		return
	}
	defer release()
	r := mapping.NotifyRequest{
		CallID:      callID(req),
		LocalTag:    localTag,
		RemoteTag:   remoteTag,
		CSeq:        cseq.SeqNo,
		Event:       pkg,
		State:       st.State,
		Reason:      st.Reason,
		Expires:     st.Expires,
		RetryAfter:  st.RetryAfter,
		ContentType: ctype,
		Body:        body,
		Contact:     contact,
	}
	log.Debug("notify in", zap.String("state", st.State), zap.Int("len", len(body)))
	out := askHandler(s, log, "notify", func(ctx context.Context) (mapping.Outcome, int) {
		o := h.Notify(ctx, r)
		return o, o.Status
	}, mapping.Outcome{Status: 500})
	var hdrs []sip.Header
	if out.Status == 415 {
		hdrs = append(hdrs, sip.NewHeader("Accept", pidfType))
	}
	s.answer(req, tx, out.Status, out.Reason, out.RetryAfter, "", hdrs)
}

// handlePublish is the PUBLISH UAS (RFC 3903 §6) for users of stox's own
// domain: stox is their presence agent.
func (s *Stack) handlePublish(req *sip.Request, tx *rtx) {
	h := s.presence
	if h == nil {
		// As before presence existed: PUBLISH is not in Allow, so 405
		// (RFC 3261 §21.4.6) rather than 489.
		s.respond(req, tx, 405, "Method Not Allowed", []sip.Header{s.allowHeader()})
		return
	}
	from, to := req.From(), req.To()
	if from == nil || to == nil || req.CallID() == nil || req.CSeq() == nil {
		s.respond(req, tx, 400, "Bad Request", nil)
		return
	}
	log := s.flow(zap.String("call_id", callID(req)),
		zap.Stringer("from", &from.Address), zap.Stringer("to", &to.Address))
	// RFC 3903 §6 step 2: missing or unsupported Event → 489.
	eh := eventOf(req)
	pkg := ""
	if eh != nil {
		var err error
		if pkg, _, err = parseEvent(eh.Value()); err != nil {
			s.respond(req, tx, 400, "Bad Event Header", nil)
			return
		}
	}
	if pkg != presenceEvent {
		s.respond(req, tx, 489, "Bad Event", []sip.Header{s.allowEvents()})
		return
	}
	expires, ok := headerExpires(req)
	if !ok {
		s.respond(req, tx, 400, "Bad Expires", nil)
		return
	}
	etag := ""
	if h := req.GetHeader("SIP-If-Match"); h != nil {
		etag = strings.TrimSpace(h.Value())
	}
	ctype, body, ok := s.bodyAndType(req, tx, "")
	if !ok {
		return
	}
	if etag == "" && len(body) == 0 {
		// RFC 3903 §4.1 / §6 step 4: an initial publication carries state.
		s.respond(req, tx, 400, "Initial PUBLISH Without Body", nil)
		return
	}
	release, ok := s.admit(req, tx, log)
	if !ok {
		return
	}
	defer release()
	if !s.authorizeSender(req, tx, from, log) {
		return
	}
	u, ok := s.uris(req, tx, "", log, &req.Recipient, &from.Address)
	if !ok {
		return
	}
	ruri, furi := u[0], u[1]
	if ruri.AOR() != furi.AOR() && !s.trusted(req.Source()) {
		// PublishRequest carries no publisher: a user publishes only their
		// own state (RFC 3903 §13, RFC 3856 §6.5 authorization by the PA).
		log.Info("publish: for another presentity", zap.String("presentity", ruri.AOR()))
		s.respond(req, tx, 403, "Forbidden", nil)
		return
	}
	r := mapping.PublishRequest{Presentity: ruri, ETag: etag, Expires: expires, ContentType: ctype, Body: body}
	log.Debug("publish in", zap.String("etag", etag), zap.Int("len", len(body)))
	out := askHandler(s, log, "publish", func(ctx context.Context) (mapping.PublishOutcome, int) {
		o := h.Publish(ctx, r)
		return o, o.Status
	}, mapping.PublishOutcome{Status: 500})
	var hdrs []sip.Header
	switch {
	case out.Status < 300:
		if out.ETag != "" && !strings.ContainsAny(out.ETag, "\r\n\x00 \t") {
			hdrs = append(hdrs, sip.NewHeader("SIP-ETag", out.ETag))
		}
		hdrs = append(hdrs, sip.NewHeader("Expires", seconds(out.Expires)))
	case out.Status == 423:
		hdrs = append(hdrs, sip.NewHeader("Min-Expires", seconds(out.MinExpires)))
	case out.Status == 489:
		hdrs = append(hdrs, s.allowEvents())
	case out.Status == 415:
		hdrs = append(hdrs, sip.NewHeader("Accept", pidfType))
	}
	s.answer(req, tx, out.Status, out.Reason, 0, "", hdrs)
}

// eventHeader is the Event header of a SUBSCRIBE or NOTIFY in d (RFC 6665
// §8.2.1): d.Event, presence when empty, with ;id=d.EventID when set.
func eventHeader(d mapping.Dialog) (sip.Header, error) {
	event := presenceEvent
	if d.Event != "" {
		event = d.Event
	}
	if !isToken(event) || (d.EventID != "" && !isToken(d.EventID)) {
		return nil, badRequest("bad Event")
	}
	if d.EventID != "" {
		event += ";id=" + d.EventID
	}
	return sip.NewHeader("Event", event), nil
}

// Notify sends an in-dialog NOTIFY with stox as notifier (RFC 6665 §4.2.2,
// presence.SIPLink): Request-URI d.RemoteTarget, Route from d.RouteSet, From
// d.LocalURI;tag=d.LocalTag, To d.RemoteURI;tag=d.RemoteTag, CSeq
// d.LocalCSeq, Event d.Event (;id=d.EventID), Subscription-State state, and
// the body with contentType when body is non-empty. It returns the final
// response; a value that would break the header syntax gives a
// *mapping.Failure with Status 400, a transaction timeout an error.
func (s *Stack) Notify(ctx context.Context, d mapping.Dialog, state, contentType string, body []byte) (mapping.Response, error) {
	if d.RemoteTag == "" || d.RemoteTarget == "" {
		return mapping.Response{}, badRequest("NOTIFY needs an established dialog (remote tag and target)")
	}
	if strings.TrimSpace(state) == "" {
		return mapping.Response{}, badRequest("missing Subscription-State")
	}
	if err := checkHeaders(field{"Subscription-State", state}); err != nil {
		return mapping.Response{}, err
	}
	ev, err := eventHeader(d)
	if err != nil {
		return mapping.Response{}, err
	}
	hdrs := []sip.Header{ev, sip.NewHeader("Subscription-State", strings.TrimSpace(state))}
	res, err := s.dialogDo(ctx, sip.NOTIFY, d, hdrs, contentType, body)
	if err != nil {
		return mapping.Response{}, err
	}
	return mapping.Response{Status: res.StatusCode, Reason: res.Reason}, nil
}

// Subscribe sends a SUBSCRIBE with stox as subscriber (RFC 6665 §4.1.2,
// RFC 3856 §5; presence.SIPLink): Event d.Event or presence, Accept
// application/pidf+xml, Expires expires. It is initial when d.RemoteTag is
// empty (Request-URI and To d.RemoteURI), else a refresh inside the dialog.
// On a 2xx the returned Dialog has RemoteTag from To, RemoteTarget from
// Contact (a target refresh, §4.1.2.2), Expires from the response (the
// requested interval when it has none) and, for an initial SUBSCRIBE,
// RouteSet from Record-Route reversed (RFC 3261 §12.1.2). A 423 is retried
// once with the Min-Expires interval (RFC 6665 §4.1.2.1); the returned
// Dialog then carries the incremented LocalCSeq.
func (s *Stack) Subscribe(ctx context.Context, d mapping.Dialog, expires time.Duration) (mapping.Response, mapping.Dialog, error) {
	if expires < 0 {
		expires = 0
	}
	for attempt := 0; ; attempt++ {
		ev, err := eventHeader(d)
		if err != nil {
			return mapping.Response{}, d, err
		}
		hdrs := []sip.Header{ev, sip.NewHeader("Expires", seconds(expires)), sip.NewHeader("Accept", pidfType)}
		sent := time.Now()
		res, err := s.dialogDo(ctx, sip.SUBSCRIBE, d, hdrs, "", nil)
		if err != nil {
			return mapping.Response{}, d, err
		}
		resp := mapping.Response{Status: res.StatusCode, Reason: res.Reason}
		if res.StatusCode == 423 && attempt == 0 {
			if min, ok := headerDelta(res, "Min-Expires"); ok && min > expires && min <= 24*time.Hour && d.LocalCSeq < 1<<31-1 {
				expires = min
				d.LocalCSeq++
				continue
			}
		}
		if !res.IsSuccess() {
			return resp, d, nil
		}
		nd := updateDialog(d, res)
		granted := expires
		if e, ok := headerExpires(res); ok && e >= 0 {
			granted = e
		}
		nd.Expires = sent.Add(granted)
		if nd.Event == "" {
			nd.Event = presenceEvent
		}
		return resp, nd, nil
	}
}
