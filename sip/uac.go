package sip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"stox.dev/stox/mapping"
)

// The UAC side of every request stox originates, whatever the method
// (MESSAGE, SUBSCRIBE, NOTIFY, INVITE, ACK, CANCEL, BYE, re-INVITE): the
// request outside a dialog (RFC 3261 §8.1.1) and inside one (§12.2.1.1),
// one choice of next hop, and sending from the listener. What a method adds
// (Event, Subscription-State, Subject, …) is its caller's.

// ErrNotRunning is returned by the senders before Run has bound the listeners.
var ErrNotRunning = errors.New("sip: stack not running")

// udpMTULimit is RFC 3261 §18.1.1: a UDP request within 200 bytes of the
// path MTU (1500) SHOULD go over a congestion-controlled transport. stox
// sends a larger in-dialog request over UDP anyway (the dialog's transport
// is the peer's choice) and logs it at debug.
const udpMTULimit = 1300

func init() {
	// sipgo refuses to write a UDP message within 200 bytes of UDPMTUSize
	// (ErrUDPMTUCongestion). A PIDF with several tuples outgrows 1300 bytes,
	// so allow what sipgo's own UDP reader takes (TransportBufferReadSize);
	// MESSAGE keeps its 1300-byte limit (RFC 3428 §6) in SendMessage. Set
	// in init, before any goroutine reads it.
	sip.UDPMTUSize = int(sip.TransportBufferReadSize) + 200
}

func badRequest(text string) *mapping.Failure {
	return &mapping.Failure{Condition: mapping.BadRequest, Status: 400, Text: text}
}

// field is a value bound for a header, named for the error.
type field struct{ name, value string }

// checkHeaders refuses values that could inject header lines: CR, LF and
// NUL (RFC 3261 §7.3.1 folding is never produced either).
func checkHeaders(fs ...field) error {
	for _, f := range fs {
		if strings.ContainsAny(f.value, "\r\n\x00") {
			return badRequest("illegal character in " + f.name)
		}
	}
	return nil
}

// hop says where and how a request goes.
type hop struct {
	network string // "udp", "tcp", …
	dest    string // host:port; sipgo resolves a host name (RFC 3263)
	l       listener
}

// nextHop is the one choice of next hop for every request stox originates,
// in or out of a dialog:
//
//  1. destination, when the caller knows the peer's address
//     ("transport:host:port": a REGISTER's or SUBSCRIBE's source, a trunk);
//  2. else the first URI of the route set (RFC 3261 §8.1.2, §12.2.1.1),
//     before strict routing moves it into the Request-URI: the router's
//     address either way;
//  3. else the outbound proxy (RFC 3261 §8.1.2);
//  4. else the Request-URI (RFC 3263 §4: its transport parameter, udp by
//     default).
//
// It also picks the listener the request leaves from.
func (s *Stack) nextHop(destination string, ruri sip.Uri, routes []sip.Uri) (hop, error) {
	var h hop
	switch {
	case destination != "":
		h.network, h.dest = splitDest(destination)
	case len(routes) > 0:
		h.network, h.dest = uriHop(routes[0])
	case s.cfg.OutboundProxy != "":
		h.network, h.dest = splitDest(s.cfg.OutboundProxy)
	default:
		h.network, h.dest = uriHop(ruri)
	}
	l, ok := s.listenerFor(h.network)
	if !ok {
		if s.context() == nil {
			return hop{}, ErrNotRunning
		}
		return hop{}, fmt.Errorf("sip: no %s listener", h.network)
	}
	h.l = l
	return h, nil
}

// splitDest splits "udp:1.2.3.4:5060" or "1.2.3.4:5060" into network and
// host:port.
func splitDest(d string) (network, hostport string) {
	if i := strings.IndexByte(d, ':'); i > 0 {
		switch t := strings.ToLower(d[:i]); t {
		case "udp", "tcp", "tls", "ws", "wss":
			return t, d[i+1:]
		}
	}
	return "udp", d
}

// uriHop is the network and host:port to reach u: its transport parameter
// (tls for sips), udp otherwise; its port, else the transport's default
// (RFC 3261 §19.1.2). sipgo resolves a host name (RFC 3263).
func uriHop(u sip.Uri) (network, dest string) {
	network = "udp"
	if strings.EqualFold(u.Scheme, "sips") {
		network = "tls"
	}
	if t, ok := u.UriParams.Get("transport"); ok && t != "" {
		network = strings.ToLower(t)
	}
	port := u.Port
	if port <= 0 {
		port = sip.DefaultPort(network)
	}
	return network, net.JoinHostPort(strings.Trim(u.Host, "[]"), strconv.Itoa(port))
}

// uacRequest is what a request stox originates is made of (RFC 3261
// §8.1.1); headers that belong to the method are added by the caller.
type uacRequest struct {
	method      sip.RequestMethod
	ruri        sip.Uri   // the remote target, or the To URI outside a dialog
	routes      []sip.Uri // route set in order (RFC 3261 §12.1.2)
	from        *sip.FromHeader
	to          *sip.ToHeader
	callID      string
	cseq        uint32
	destination string // "transport:host:port" of the next hop when known
}

// newRequest builds r with Via, Route, From, To, Call-ID, CSeq,
// Max-Forwards and, for a target refresh request, our Contact; a first
// route without ;lr is a strict router (RFC 3261 §12.2.1.1): it goes into
// the Request-URI and the remote target to the end of the Route set.
func (s *Stack) newRequest(r uacRequest) (*sip.Request, hop, error) {
	h, err := s.nextHop(r.destination, r.ruri, r.routes)
	if err != nil {
		return nil, hop{}, err
	}
	ruri, routes := r.ruri, r.routes
	if len(routes) > 0 && !routes[0].UriParams.Has("lr") {
		ruri = stripForRURI(routes[0])
		routes = append(routes[1:len(routes):len(routes)], r.ruri)
	}
	req := sip.NewRequest(r.method, ruri)
	req.AppendHeader(s.newVia(h.network, h.l))
	for i := range routes {
		req.AppendHeader(&sip.RouteHeader{Address: routes[i]})
	}
	req.AppendHeader(r.from)
	req.AppendHeader(r.to)
	cid := sip.CallIDHeader(r.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: r.cseq, MethodName: r.method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	if targetRefresh(r.method) {
		req.AppendHeader(sip.NewHeader("Contact", s.ourContact(h.network)))
	}
	return req, h, nil
}

// targetRefresh reports whether method carries the Contact that sets the
// remote target of a dialog (RFC 3261 §12.2: INVITE and re-INVITE; RFC
// 6665 §4.1.2, §4.2.2: SUBSCRIBE, NOTIFY; RFC 3311 §5.1: UPDATE; RFC 3515
// §2.4.1: REFER).
func targetRefresh(method sip.RequestMethod) bool {
	switch method {
	case sip.INVITE, sip.SUBSCRIBE, sip.NOTIFY, sip.UPDATE, sip.REFER:
		return true
	}
	return false
}

// dialogRequest builds a request of method for dialog d: inside it when d
// has a remote tag (RFC 3261 §12.2.1.1: Request-URI d.RemoteTarget, Route
// from d.RouteSet, To with d.RemoteTag, CSeq d.LocalCSeq), else the
// dialog-creating request (§8.1.1: Request-URI and To d.RemoteURI, no To
// tag). hdrs follow the common headers in order: the method's own headers
// (Event for SUBSCRIBE and NOTIFY, …) are the caller's, so INVITE, BYE and
// re-INVITE use the same code. Every dialog value is checked for CR, LF
// and NUL first.
func (s *Stack) dialogRequest(method sip.RequestMethod, d mapping.Dialog, hdrs ...sip.Header) (*sip.Request, hop, error) {
	fields := []field{
		{"Call-ID", d.CallID}, {"From tag", d.LocalTag}, {"To tag", d.RemoteTag},
		{"From", d.LocalURI}, {"To", d.RemoteURI}, {"remote target", d.RemoteTarget},
		{"Destination", d.Destination},
	}
	for _, r := range d.RouteSet {
		fields = append(fields, field{"Route", r})
	}
	if err := checkHeaders(fields...); err != nil {
		return nil, hop{}, err
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
	local, err1 := s.dialogURIs.parse(d.LocalURI)
	remote, err2 := s.dialogURIs.parse(d.RemoteURI)
	if err := firstErr(err1, err2); err != nil {
		return nil, hop{}, badRequest("bad URI: " + err.Error())
	}
	ruri := remote
	if d.RemoteTag != "" {
		t, err := s.dialogURIs.parse(d.RemoteTarget)
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
	from := &sip.FromHeader{Address: local, Params: sip.HeaderParams{{K: "tag", V: d.LocalTag}}}
	to := &sip.ToHeader{Address: remote}
	if d.RemoteTag != "" {
		to.Params = sip.HeaderParams{{K: "tag", V: d.RemoteTag}}
	} else {
		to.Params = sip.NewParams()
	}
	req, h, err := s.newRequest(uacRequest{method: method, ruri: ruri, routes: routes, from: from, to: to,
		callID: d.CallID, cseq: d.LocalCSeq, destination: d.Destination})
	if err != nil {
		return nil, hop{}, err
	}
	for _, hd := range hdrs {
		req.AppendHeader(hd)
	}
	return req, h, nil
}

// dialogDo sends a request of method in dialog d with hdrs and, when body
// is not empty, the body with its Content-Type, and returns the final
// response (see dialogRequest).
func (s *Stack) dialogDo(ctx context.Context, method sip.RequestMethod, d mapping.Dialog, hdrs []sip.Header, contentType string, body []byte) (*sip.Response, error) {
	if len(body) > 0 && strings.TrimSpace(contentType) == "" {
		return nil, badRequest("missing Content-Type")
	}
	if err := checkHeaders(field{"Content-Type", contentType}); err != nil {
		return nil, err
	}
	req, h, err := s.dialogRequest(method, d, hdrs...)
	if err != nil {
		return nil, err
	}
	setBody(req, strings.TrimSpace(contentType), body)
	return s.sendRequest(ctx, req, h, s.flow(zap.String("call_id", d.CallID)))
}

// updateDialog applies a 2xx to the dialog of the request it answers
// (RFC 3261 §12.1.2 for the UAC): the first 2xx with a To tag sets the
// remote tag and the route set (Record-Route reversed); a Contact is the
// new remote target (§12.2.1.2, target refresh).
func updateDialog(d mapping.Dialog, res *sip.Response) mapping.Dialog {
	if tag := tagOf(toParams(res)); tag != "" && d.RemoteTag == "" {
		d.RemoteTag = tag
		rr := recordRoutes(res)
		for i, j := 0, len(rr)-1; i < j; i, j = i+1, j-1 {
			rr[i], rr[j] = rr[j], rr[i]
		}
		d.RouteSet = rr
	}
	if c := res.Contact(); c != nil && !c.Address.Wildcard && c.Address.Host != "" {
		d.RemoteTarget = c.Address.String()
	}
	return d
}

func toParams(res *sip.Response) sip.HeaderParams {
	if to := res.To(); to != nil {
		return to.Params
	}
	return nil
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

// setBody appends Content-Type when body is not empty, and sets the body
// (and with it Content-Length).
func setBody(req *sip.Request, contentType string, body []byte) {
	if len(body) > 0 {
		ct := sip.ContentTypeHeader(contentType)
		req.AppendHeader(&ct)
	}
	req.SetBody(body)
}

// sendRequest sends req to its hop and waits for the final response; log
// carries the flow's fields.
func (s *Stack) sendRequest(ctx context.Context, req *sip.Request, h hop, log flowLog) (*sip.Response, error) {
	s.setHop(req, h)
	method := string(req.Method)
	// Serialising the request only to measure it costs 7 % of a NOTIFY
	// fan-out's CPU (docs/perf.md): do it when the line will be written.
	if h.network == "udp" && log.l.Core().Enabled(zapcore.DebugLevel) {
		if n := len(req.String()); n > udpMTULimit {
			log.Debug("request over UDP exceeds 1300 bytes (RFC 3261 §18.1.1 prefers TCP); sending anyway",
				zap.String("method", method), zap.Int("len", n))
		}
	}
	log.Debug("request out", zap.String("method", method), zap.Stringer("ruri", &req.Recipient), zap.String("dest", h.dest))
	res, err := s.client.Do(ctx, req, noBuild)
	if err != nil {
		log.Info("request out failed", zap.String("method", method), zap.Error(err))
		return nil, err
	}
	return res, nil
}

// noBuild is a request option that leaves the request as built: passing any
// option stops sipgo from adding its own headers.
func noBuild(*sipgo.Client, *sip.Request) error { return nil }

func newCallID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
func (s *Stack) setHop(req *sip.Request, h hop) {
	req.SetTransport(strings.ToUpper(h.network))
	if h.dest != "" {
		req.SetDestination(h.dest)
	}
	if h.network == "udp" {
		req.Laddr = sip.Addr{IP: net.ParseIP(h.l.host), Port: h.l.port, Hostname: h.l.host}
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

// uriMemoMax bounds uriMemo (about 170 bytes an entry): the From, To and
// remote target of 1,000 watchers of one presentity fit.
const uriMemoMax = 2048

// uriMemo is parseNameAddr with memory (Stack.dialogURIs): a presence change
// sends one NOTIFY per watcher (RFC 3856 §6.10), each of which would parse
// its dialog's From, To and remote target again (docs/perf.md, presence
// fan-out). Only a URI without parameters or
// headers is kept: every other field of sip.Uri is a value, so a copy
// handed out shares nothing with the next.
type uriMemo struct {
	mu sync.Mutex
	m  map[string]sip.Uri
}

func (c *uriMemo) parse(s string) (sip.Uri, error) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]sip.Uri)
	}
	u, ok := c.m[s]
	c.mu.Unlock()
	if ok {
		return u, nil
	}
	u, err := parseNameAddr(s)
	if err != nil || u.UriParams != nil || u.Headers != nil {
		return u, err
	}
	c.mu.Lock()
	if len(c.m) >= uriMemoMax {
		clear(c.m)
	}
	c.m[s] = u
	c.mu.Unlock()
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

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
