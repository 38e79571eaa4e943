package sip

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// udpMTULimit is RFC 3261 §18.1.1: a UDP request within 200 bytes of the
// path MTU (1500) SHOULD go over a congestion-controlled transport. stox
// sends a larger NOTIFY over UDP anyway (the dialog's transport is the
// peer's choice) and logs it at debug.
const udpMTULimit = 1300

func init() {
	// sipgo refuses to write a UDP message within 200 bytes of UDPMTUSize
	// (ErrUDPMTUCongestion). A PIDF with several tuples outgrows 1300 bytes,
	// so allow what sipgo's own UDP reader takes (TransportBufferReadSize);
	// MESSAGE keeps its 1300-byte limit (RFC 3428 §6) in SendMessage. Set
	// in init, before any goroutine reads it.
	sip.UDPMTUSize = int(sip.TransportBufferReadSize) + 200
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
	if len(body) > 0 && strings.TrimSpace(contentType) == "" {
		return mapping.Response{}, badRequest("missing Content-Type")
	}
	for _, f := range []struct{ n, v string }{{"Subscription-State", state}, {"Content-Type", contentType}} {
		if err := checkHeader(f.n, f.v); err != nil {
			return mapping.Response{}, err
		}
	}
	req, out, err := s.dialogRequest(sip.NOTIFY, d)
	if err != nil {
		return mapping.Response{}, err
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", strings.TrimSpace(state)))
	if len(body) > 0 {
		ct := sip.ContentTypeHeader(strings.TrimSpace(contentType))
		req.AppendHeader(&ct)
	}
	req.SetBody(body)
	res, err := s.sendDialog(ctx, req, out, d)
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
		req, out, err := s.dialogRequest(sip.SUBSCRIBE, d)
		if err != nil {
			return mapping.Response{}, d, err
		}
		req.AppendHeader(sip.NewHeader("Expires", seconds(expires)))
		req.AppendHeader(sip.NewHeader("Accept", pidfType))
		sent := time.Now()
		res, err := s.sendDialog(ctx, req, out, d)
		if err != nil {
			return mapping.Response{}, d, err
		}
		resp := mapping.Response{Status: res.StatusCode, Reason: res.Reason}
		if res.StatusCode == 423 && attempt == 0 {
			if h := res.GetHeader("Min-Expires"); h != nil {
				n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
				if min := time.Duration(n) * time.Second; err == nil && min > expires && min <= 24*time.Hour && d.LocalCSeq < 1<<31-1 {
					expires = min
					d.LocalCSeq++
					continue
				}
			}
		}
		if !res.IsSuccess() {
			return resp, d, nil
		}
		nd := d
		if tag := tagOf(toParams(res)); tag != "" && d.RemoteTag == "" {
			nd.RemoteTag = tag
			rr := recordRoutes(res)
			for i, j := 0, len(rr)-1; i < j; i, j = i+1, j-1 {
				rr[i], rr[j] = rr[j], rr[i]
			}
			nd.RouteSet = rr
		}
		if c := res.Contact(); c != nil && !c.Address.Wildcard && c.Address.Host != "" {
			nd.RemoteTarget = c.Address.String()
		}
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

func toParams(res *sip.Response) sip.HeaderParams {
	if to := res.To(); to != nil {
		return to.Params
	}
	return nil
}

// hop says where and how a dialog request goes.
type hop struct {
	network string // "udp", "tcp", …
	dest    string // host:port; empty: sipgo resolves the Request-URI
	l       listener
}

// dialogRequest builds a SUBSCRIBE or NOTIFY for d (RFC 3261 §12.2.1.1):
// initial (SUBSCRIBE without remote tag: Request-URI d.RemoteURI) or in
// the dialog (Request-URI d.RemoteTarget), with the route set, tags,
// Call-ID, CSeq, Max-Forwards, Contact and Event. Every value is checked
// for CR, LF and NUL first.
func (s *Stack) dialogRequest(method sip.RequestMethod, d mapping.Dialog) (*sip.Request, hop, error) {
	fields := []struct{ n, v string }{
		{"Call-ID", d.CallID}, {"From tag", d.LocalTag}, {"To tag", d.RemoteTag},
		{"From", d.LocalURI}, {"To", d.RemoteURI}, {"remote target", d.RemoteTarget},
		{"Destination", d.Destination}, {"Event", d.Event}, {"Event id", d.EventID},
	}
	for _, r := range d.RouteSet {
		fields = append(fields, struct{ n, v string }{"Route", r})
	}
	for _, f := range fields {
		if err := checkHeader(f.n, f.v); err != nil {
			return nil, hop{}, err
		}
	}
	if d.CallID == "" || strings.ContainsAny(d.CallID, " \t") {
		return nil, hop{}, badRequest("bad Call-ID")
	}
	if !isToken(d.LocalTag) || (d.RemoteTag != "" && !isToken(d.RemoteTag)) {
		return nil, hop{}, badRequest("bad tag")
	}
	if d.LocalCSeq == 0 || d.LocalCSeq > 1<<31-1 { // RFC 3261 §8.1.1.5
		return nil, hop{}, badRequest("CSeq out of range")
	}
	event := presenceEvent
	if d.Event != "" {
		event = d.Event
	}
	if !isToken(event) || (d.EventID != "" && !isToken(d.EventID)) {
		return nil, hop{}, badRequest("bad Event")
	}
	local, err1 := parseNameAddr(d.LocalURI)
	remote, err2 := parseNameAddr(d.RemoteURI)
	if err := firstErr(err1, err2); err != nil {
		return nil, hop{}, badRequest("bad URI: " + err.Error())
	}
	ruri := remote
	if d.RemoteTag != "" || method != sip.SUBSCRIBE {
		t, err := parseNameAddr(d.RemoteTarget)
		if err != nil {
			return nil, hop{}, badRequest("bad remote target: " + err.Error())
		}
		ruri = t
	}
	var routes []sip.Uri
	for _, r := range d.RouteSet {
		u, err := parseNameAddr(r)
		if err != nil {
			return nil, hop{}, badRequest("bad route: " + err.Error())
		}
		routes = append(routes, u)
	}
	strict := len(routes) > 0 && !routes[0].UriParams.Has("lr")
	if strict {
		// Strict router (RFC 3261 §12.2.1.1): it goes into the Request-URI,
		// the remote target to the end of the Route set.
		first := routes[0]
		routes = append(routes[1:], ruri)
		ruri = stripForRURI(first)
	}

	// Where to (like MESSAGE's Target.Destination): d.Destination; else the
	// first Route (the strict router in the Request-URI); else the outbound
	// proxy; else the Request-URI (RFC 3263 via sipgo).
	var h hop
	switch {
	case d.Destination != "":
		h.network, h.dest = splitDest(d.Destination)
	case strict:
		h.network, h.dest = uriHop(ruri)
	case len(routes) > 0:
		h.network, h.dest = uriHop(routes[0])
	case s.cfg.OutboundProxy != "":
		h.network, h.dest = splitDest(s.cfg.OutboundProxy)
	default:
		h.network, _ = uriHop(ruri)
	}
	l, ok := s.listenerFor(h.network)
	if !ok {
		if s.context() == nil {
			return nil, hop{}, ErrNotRunning
		}
		return nil, hop{}, fmt.Errorf("sip: no %s listener", h.network)
	}
	h.l = l

	req := sip.NewRequest(method, ruri)
	req.AppendHeader(s.newVia(h.network, l))
	for i := range routes {
		req.AppendHeader(&sip.RouteHeader{Address: routes[i]})
	}
	from := &sip.FromHeader{Address: local, Params: sip.NewParams()}
	from.Params.Add("tag", d.LocalTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{Address: remote, Params: sip.NewParams()}
	if d.RemoteTag != "" {
		to.Params.Add("tag", d.RemoteTag)
	}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(d.CallID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: d.LocalCSeq, MethodName: method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("Contact", s.ourContact(h.network)))
	ev := event
	if d.EventID != "" {
		ev += ";id=" + d.EventID
	}
	req.AppendHeader(sip.NewHeader("Event", ev))
	return req, h, nil
}

// sendDialog sends req from the listener and waits for the final response.
func (s *Stack) sendDialog(ctx context.Context, req *sip.Request, h hop, d mapping.Dialog) (*sip.Response, error) {
	s.setHop(req, h.network, h.dest, h.l)
	log := s.flow(zap.String("call_id", d.CallID), zap.String("method", string(req.Method)))
	if h.network == "udp" {
		if n := len(req.String()); n > udpMTULimit {
			log.Debug("request over UDP exceeds 1300 bytes (RFC 3261 §18.1.1 prefers TCP); sending anyway", zap.Int("len", n))
		}
	}
	log.Debug("dialog request out", zap.Stringer("ruri", &req.Recipient), zap.String("dest", h.dest))
	res, err := s.client.Do(ctx, req, noBuild)
	if err != nil {
		log.Info("dialog request failed", zap.Error(err))
		return nil, err
	}
	return res, nil
}

// newVia is the Via of a request stox sends from listener l.
func (s *Stack) newVia(network string, l listener) *sip.ViaHeader {
	via := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0",
		Transport: strings.ToUpper(network), Host: s.clientIP, Port: l.port,
		Params: sip.NewParams(),
	}
	if l.host != "" && l.host != "0.0.0.0" && l.host != "::" {
		via.Host = l.host
	}
	via.Params.Add("branch", sip.GenerateBranch())
	via.Params.Add("rport", "")
	return via
}

// setHop sets the transport and destination of req, and for UDP sends it
// from the listener's socket so that replies and later requests reach the
// port we advertise (connection reuse; sipgo issue #165).
func (s *Stack) setHop(req *sip.Request, network, dest string, l listener) {
	req.SetTransport(strings.ToUpper(network))
	if dest != "" {
		req.SetDestination(dest)
	}
	if network == "udp" {
		req.Laddr = sip.Addr{IP: net.ParseIP(l.host), Port: l.port, Hostname: l.host}
	}
}

// parseNameAddr parses a URI given bare ("sip:a@b;lr") or as a name-addr
// ("<sip:a@b;lr>", `"A" <sip:a@b>`); header parameters after '>' are dropped.
func parseNameAddr(s string) (sip.Uri, error) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			return sip.Uri{}, fmt.Errorf("unclosed '<' in %.80q", s)
		}
		s = s[i+1 : i+j]
	}
	if s == "" {
		return sip.Uri{}, fmt.Errorf("empty URI")
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return sip.Uri{}, err
	}
	if u.Host == "" || u.Wildcard {
		return sip.Uri{}, fmt.Errorf("no host in %.80q", s)
	}
	return u, nil
}

// stripForRURI is a strict router's URI for the Request-URI without the
// parameters a Request-URI may not carry (RFC 3261 §19.1.1 table: method,
// maddr is kept, ttl, headers).
func stripForRURI(u sip.Uri) sip.Uri {
	if u.UriParams != nil {
		u.UriParams = u.UriParams.Clone()
		u.UriParams.Remove("method")
		u.UriParams.Remove("ttl")
	}
	u.Headers = nil
	return u
}

// uriHop is the network and host:port to reach u: its transport parameter
// (tls for sips), udp otherwise; the port when given, else empty dest so
// that sipgo resolves the host (RFC 3263).
func uriHop(u sip.Uri) (network, dest string) {
	network = "udp"
	if strings.EqualFold(u.Scheme, "sips") {
		network = "tls"
	}
	if t, ok := u.UriParams.Get("transport"); ok && t != "" {
		network = strings.ToLower(t)
	}
	if u.Port > 0 {
		dest = net.JoinHostPort(strings.Trim(u.Host, "[]"), strconv.Itoa(u.Port))
	}
	return network, dest
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
