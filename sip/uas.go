package sip

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// The UAS side shared by the handlers of MESSAGE, SUBSCRIBE, NOTIFY,
// PUBLISH and INVITE: body checks, admission, sender authorization,
// header readers, the handler's context and the final
// response. What a method checks beyond this (Event, Subscription-State,
// SIP-If-Match, …) stays in its handler.

const (
	maxBody        = 64 << 10
	handlerTimeout = 30 * time.Second // under Timer F (64·T1 = 32 s, RFC 3261 §17.1.2.2)
)

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

// uris converts up to three URIs of req (Request-URI, From, To, in the
// caller's order) to the neutral model. On failure it answers 416 when one
// has a scheme stox does not know (RFC 3261 §21.4.17), else 400, and
// returns false.
func (s *Stack) uris(req *sip.Request, tx *rtx, toTag string, log flowLog, us ...*sip.Uri) (out [3]mapping.URI, ok bool) {
	for i, u := range us {
		var err error
		if out[i], err = toURI(u); err == nil {
			continue
		}
		log.Info(strings.ToLower(string(req.Method))+": bad URI", zap.Error(err))
		for _, u := range us {
			if !knownScheme(u.Scheme) {
				s.respondTag(req, tx, 416, "Unsupported URI Scheme", toTag, nil)
				return out, false
			}
		}
		s.respondTag(req, tx, 400, "Bad Request URI", toTag, nil)
		return out, false
	}
	return out, true
}

func knownScheme(s string) bool {
	switch strings.ToLower(s) {
	case "sip", "sips", "im", "pres":
		return true
	}
	return false
}

// askHandler calls a capability's handler with Run's context bounded by
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

func validFinal(status int) bool { return status >= 200 && status <= 699 }

// answer sends the final response to a handler's outcome: its reason, or
// the status's own when empty or unsafe; Retry-After when retry is set
// (RFC 3261 §20.33); then hdrs. The To tag is toTag when set.
func (s *Stack) answer(req *sip.Request, tx *rtx, status int, reason string, retry time.Duration, toTag string, hdrs []sip.Header) {
	if retry > 0 {
		hdrs = append(hdrs, retryAfter(retry))
	}
	s.respondTag(req, tx, status, finalReason(status, reason), toTag, hdrs)
}

// respondTag sends a final response whose To tag is toTag when set (the
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

func finalReason(status int, reason string) string {
	if reason == "" || strings.ContainsAny(reason, "\r\n\x00") {
		return defaultReason(status)
	}
	return reason
}

func defaultReason(code int) string {
	switch code {
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 413:
		return "Request Entity Too Large"
	case 415:
		return "Unsupported Media Type"
	case 410:
		return "Gone"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Server Time-out"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	case 606:
		return "Not Acceptable"
	}
	switch {
	case code < 300:
		return "OK"
	case code < 400:
		return "Redirect"
	case code < 500:
		return "Client Error"
	case code < 600:
		return "Server Error"
	}
	return "Global Failure"
}

// uasDialog is the dialog a UAS creates with its 2xx to req (RFC 3261
// §12.1.1): our tag localTag, the peer's From tag, our URI from To, the
// route set from Record-Route in order, target as the remote target, and
// the transport and source req came from as the next hop of requests in
// the dialog. The method fills in what is its own (Event for SUBSCRIBE).
func uasDialog(req *sip.Request, localTag, target string) mapping.Dialog {
	from, to := req.From(), req.To()
	d := mapping.Dialog{
		CallID:       callID(req),
		LocalTag:     localTag,
		RemoteTag:    tagOf(from.Params),
		LocalURI:     to.Address.String(),
		RemoteURI:    from.Address.String(),
		RouteSet:     recordRoutes(req),
		RemoteTarget: target,
		Destination:  strings.ToLower(req.Transport()) + ":" + req.Source(),
	}
	if cseq := req.CSeq(); cseq != nil {
		d.RemoteCSeq = cseq.SeqNo
	}
	return d
}

func tagOf(p sip.HeaderParams) string {
	if p == nil {
		return ""
	}
	t, _ := p.Get("tag")
	return t
}

func firstHeader(req *sip.Request, names ...string) sip.Header {
	for _, n := range names {
		if h := req.GetHeader(n); h != nil {
			return h
		}
	}
	return nil
}

// headerDelta reads a delta-seconds header such as Expires or Min-Expires
// (RFC 3261 §20.19, §20.23): negative when absent, ok false when malformed.
func headerDelta(m interface{ GetHeader(string) sip.Header }, name string) (time.Duration, bool) {
	h := m.GetHeader(name)
	if h == nil {
		return -1, true
	}
	v, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil {
		return 0, false
	}
	return time.Duration(v) * time.Second, true
}

// headerExpires reads the Expires header (see headerDelta).
func headerExpires(m interface{ GetHeader(string) sip.Header }) (time.Duration, bool) {
	return headerDelta(m, "Expires")
}

// seconds formats d as delta-seconds, rounded up.
func seconds(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
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
