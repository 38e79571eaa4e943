package sip

import (
	"context"
	"errors"
	"net"
	"strconv"
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

// admit takes a slot of the inbound admission limit (Config.MaxInFlight,
// shared by MESSAGE, SUBSCRIBE, NOTIFY and PUBLISH). When the limit is
// reached it answers 503 with Retry-After and returns false; otherwise the
// caller must call the returned release.
func (s *Stack) admit(req *sip.Request, tx *rtx, log flowLog) (release func(), ok bool) {
	if n := s.inflight.Add(1); n > int64(s.cfg.MaxInFlight) {
		s.inflight.Add(-1)
		s.met.admission.WithLabelValues("rejected").Inc()
		log.Warn(strings.ToLower(string(req.Method)) + ": overload, 503")
		s.respond(req, tx, 503, "Service Unavailable", []sip.Header{retryAfter(time.Second)})
		return nil, false
	}
	s.met.admission.WithLabelValues("accepted").Inc()
	s.met.inflight.Inc()
	return func() {
		s.inflight.Add(-1)
		s.met.inflight.Dec()
	}, true
}

// authorizeSender decides who may send req: trusted peers; users of our
// domain after digest with 407 (RFC 3261 §22.3); nobody else, with 403
// (stox is not an open relay; RFC 3428 §9 for MESSAGE, RFC 6665 §5.2 and
// RFC 3903 §13 for SUBSCRIBE and PUBLISH). It returns true when req may
// go on; otherwise it has answered.
func (s *Stack) authorizeSender(req *sip.Request, tx *rtx, from *sip.FromHeader, log flowLog) bool {
	source := req.Source()
	switch {
	case s.trusted(source):
		return true
	case strings.EqualFold(from.Address.Host, s.cfg.Domain):
		return s.authenticate(req, tx, pctDecode(from.Address.User), true)
	}
	log.Info(strings.ToLower(string(req.Method))+": foreign sender from untrusted source", zap.String("source", source))
	s.respond(req, tx, 403, "Forbidden", nil)
	return false
}

// respondHdrs sends a final response whose To tag is toTag when set (the
// dialog's local tag, RFC 3261 §8.2.6.2, §12.1.1).
func (s *Stack) respondTag(req *sip.Request, tx *rtx, code int, reason, toTag string, hdrs []sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if to := res.To(); to != nil && toTag != "" {
		if to.Params == nil {
			to.Params = sip.NewParams()
		}
		to.Params.Add("tag", toTag)
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		s.log.Debug("sip respond failed", zap.Int("status", code), zap.String("call_id", callID(req)), zap.Error(err))
	}
}

// ourContact is the Contact URI of the listener for network (the first
// listener when there is none of that transport), in angle brackets.
func (s *Stack) ourContact(network string) string {
	l, ok := s.listenerFor(network)
	if !ok {
		s.mu.Lock()
		if len(s.addrs) > 0 { // bound: Run no longer writes lns
			l = s.lns[0]
		}
		s.mu.Unlock()
	}
	host := l.host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = s.clientIP
	}
	u := "sip:" + net.JoinHostPort(host, strconv.Itoa(l.port))
	if l.network != "" && l.network != "udp" {
		u += ";transport=" + l.network
	}
	return "<" + u + ">"
}

func seconds(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// headerExpires reads the Expires header: negative when absent, ok false
// when malformed (RFC 3261 §20.19 delta-seconds).
func headerExpires(m interface{ GetHeader(string) sip.Header }) (time.Duration, bool) {
	h := m.GetHeader("Expires")
	if h == nil {
		return -1, true
	}
	v, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil {
		return 0, false
	}
	return time.Duration(v) * time.Second, true
}

// eventOf returns the Event header (compact form "o", RFC 6665 §8.2.1).
func eventOf(req *sip.Request) sip.Header { return firstHeader(req, "Event", "o") }

func tagOf(p sip.HeaderParams) string {
	if p == nil {
		return ""
	}
	t, _ := p.Get("tag")
	return t
}

// acceptList collects the media types of every Accept header, lower-cased
// and without parameters.
func acceptList(req *sip.Request) []string {
	var out []string
	for _, h := range req.GetHeaders("Accept") {
		for _, v := range strings.Split(h.Value(), ",") {
			v, _, _ = strings.Cut(v, ";")
			if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// recordRoutes returns the Record-Route URIs of m in header order, each in
// angle brackets.
func recordRoutes(m interface{ GetHeaders(string) []sip.Header }) []string {
	var out []string
	for _, h := range m.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			out = append(out, "<"+rr.Address.String()+">")
		}
	}
	return out
}

// bodyAndType checks the size of the body and the presence of its
// Content-Type (RFC 3261 §20.15); it answers and returns false on failure.
func (s *Stack) bodyAndType(req *sip.Request, tx *rtx, toTag string) (ctype string, body []byte, ok bool) {
	body = req.Body()
	if len(body) > maxBody {
		s.respondTag(req, tx, 413, "Request Entity Too Large", toTag, nil)
		return "", nil, false
	}
	if ct := req.ContentType(); ct != nil {
		ctype = strings.TrimSpace(ct.Value())
	}
	if len(body) > 0 && ctype == "" {
		s.respondTag(req, tx, 400, "Missing Content-Type", toTag, nil)
		return "", nil, false
	}
	return ctype, body, true
}

// uris converts the Request-URI and From URI; on failure it answers 416 or
// 400 like MESSAGE does.
func (s *Stack) uris(req *sip.Request, tx *rtx, from *sip.FromHeader, toTag string, log flowLog) (ruri, furi mapping.URI, ok bool) {
	ruri, err1 := toURI(&req.Recipient)
	furi, err2 := toURI(&from.Address)
	if err := errors.Join(err1, err2); err != nil {
		log.Info("bad URI", zap.Error(err))
		if !knownScheme(req.Recipient.Scheme) || !knownScheme(from.Address.Scheme) {
			s.respondTag(req, tx, 416, "Unsupported URI Scheme", toTag, nil)
		} else {
			s.respondTag(req, tx, 400, "Bad Request URI", toTag, nil)
		}
		return ruri, furi, false
	}
	return ruri, furi, true
}

func finalReason(status int, reason string) string {
	if reason == "" || strings.ContainsAny(reason, "\r\n\x00") {
		return defaultReason(status)
	}
	return reason
}

func validFinal(status int) bool { return status >= 200 && status <= 699 }

// askHandler calls the presence handler with Run's context bounded by
// handlerTimeout (under Timer F); an outcome without a final status
// becomes internal (500).
func askHandler[O any](s *Stack, log flowLog, what string, call func(context.Context) (O, int), internal O) O {
	ctx, cancel := context.WithTimeout(s.context(), handlerTimeout)
	defer cancel()
	out, status := call(ctx)
	if !validFinal(status) {
		log.Error(what+": handler gave no final status", zap.Int("status", status))
		return internal
	}
	return out
}

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
	ruri, furi, ok := s.uris(req, tx, from, localTag, log)
	if !ok {
		return
	}
	local := to.Address // our address as notifier: the To URI (RFC 3261 §12.1.1)
	if !initial {
		// Inside the dialog the Request-URI is our Contact (RFC 3261
		// §12.2.1.1); the presentity is the dialog's local URI.
		if u, err := toURI(&to.Address); err == nil {
			ruri = u
		}
	}
	r := mapping.SubscribeRequest{
		Dialog: mapping.Dialog{
			CallID:       callID(req),
			LocalTag:     localTag,
			RemoteTag:    fromTag,
			LocalURI:     local.String(),
			RemoteURI:    from.Address.String(),
			RemoteCSeq:   cseq.SeqNo,
			RouteSet:     recordRoutes(req), // UAS: in order (RFC 3261 §12.1.1)
			RemoteTarget: target,
			Destination:  strings.ToLower(req.Transport()) + ":" + req.Source(),
			Event:        pkg,
			EventID:      evID,
		},
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
	if out.RetryAfter > 0 {
		hdrs = append(hdrs, retryAfter(out.RetryAfter))
	}
	s.respondTag(req, tx, out.Status, finalReason(out.Status, out.Reason), localTag, hdrs)
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
	if out.RetryAfter > 0 {
		hdrs = append(hdrs, retryAfter(out.RetryAfter))
	}
	if out.Status == 415 {
		hdrs = append(hdrs, sip.NewHeader("Accept", pidfType))
	}
	s.respond(req, tx, out.Status, finalReason(out.Status, out.Reason), hdrs)
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
	ruri, furi, ok := s.uris(req, tx, from, "", log)
	if !ok {
		return
	}
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
	s.respond(req, tx, out.Status, finalReason(out.Status, out.Reason), hdrs)
}
