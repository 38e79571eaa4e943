package sip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"stox.dev/stox/mapping"
)

// fakePresence is a PresenceHandler that records what it gets and answers
// with the configured functions (200 by default).
type fakePresence struct {
	mu       sync.Mutex
	subs     []mapping.SubscribeRequest
	notifies []mapping.NotifyRequest
	pubs     []mapping.PublishRequest
	onSub    func(mapping.SubscribeRequest) mapping.SubscribeOutcome
	onNotify func(mapping.NotifyRequest) mapping.Outcome
	onPub    func(mapping.PublishRequest) mapping.PublishOutcome
}

func (f *fakePresence) Subscribe(_ context.Context, r mapping.SubscribeRequest) mapping.SubscribeOutcome {
	f.mu.Lock()
	f.subs = append(f.subs, r)
	fn := f.onSub
	f.mu.Unlock()
	if fn != nil {
		return fn(r)
	}
	return mapping.SubscribeOutcome{Status: 200, Expires: 600 * time.Second}
}

func (f *fakePresence) Notify(_ context.Context, r mapping.NotifyRequest) mapping.Outcome {
	f.mu.Lock()
	f.notifies = append(f.notifies, r)
	fn := f.onNotify
	f.mu.Unlock()
	if fn != nil {
		return fn(r)
	}
	return mapping.Outcome{Status: 200}
}

func (f *fakePresence) Publish(_ context.Context, r mapping.PublishRequest) mapping.PublishOutcome {
	f.mu.Lock()
	f.pubs = append(f.pubs, r)
	fn := f.onPub
	f.mu.Unlock()
	if fn != nil {
		return fn(r)
	}
	return mapping.PublishOutcome{Status: 200, ETag: "e1", Expires: time.Hour}
}

func (f *fakePresence) lastSub(t *testing.T) mapping.SubscribeRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) == 0 {
		t.Fatal("handler got no SUBSCRIBE")
	}
	return f.subs[len(f.subs)-1]
}

func (f *fakePresence) subCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *fakePresence) notifyCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.notifies)
}

func subscribeReq(from, to, dest string, hdrs ...string) *sip.Request {
	var ruri sip.Uri
	sip.ParseUri(to, &ruri)
	req := sip.NewRequest(sip.SUBSCRIBE, ruri)
	var furi sip.Uri
	sip.ParseUri(from, &furi)
	fh := &sip.FromHeader{Address: furi, Params: sip.NewParams()}
	fh.Params.Add("tag", "wtag1")
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: ruri, Params: sip.NewParams()})
	for _, h := range hdrs {
		name, val, _ := strings.Cut(h, ":")
		req.AppendHeader(sip.NewHeader(name, strings.TrimSpace(val)))
	}
	req.SetDestination(dest)
	return req
}

func hdr(m interface{ GetHeader(string) sip.Header }, name string) string {
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

func TestSubscribeIn(t *testing.T) {
	fp := &fakePresence{}
	env := startStack(t, nil, nil, withPresence(fp))
	c := newClient(t)

	req := subscribeReq("sip:bob@"+testDomain, "sip:juliet@xmpp.test", env.udp,
		"Event: presence;id=7", "Accept: application/pidf+xml;q=1, application/xpidf+xml",
		"Contact: <sip:bob@127.0.0.1:5099;transport=udp>",
		"Record-Route: <sip:p1.test;lr>, <sip:p2.test;lr>")
	// Unauthenticated: 407 (as for MESSAGE).
	res, err := c.Do(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 407 || res.GetHeader("Proxy-Authenticate") == nil {
		t.Fatalf("status %d, want 407 with a challenge", res.StatusCode)
	}
	res = doAuth(t, c, req, "bob", "secret")
	if res.StatusCode != 200 {
		t.Fatalf("status %d %s", res.StatusCode, res.Reason)
	}
	r := fp.lastSub(t)
	d := r.Dialog
	if !r.Initial || r.Event != "presence" || r.Expires >= 0 {
		t.Errorf("request %+v", r)
	}
	if d.CallID != callIDOf(req) || d.RemoteTag != "wtag1" || d.LocalTag == "" || d.RemoteCSeq != req.CSeq().SeqNo {
		t.Errorf("dialog ids %+v (cseq %d)", d, req.CSeq().SeqNo)
	}
	if tag := tagOf(res.To().Params); tag != d.LocalTag {
		t.Errorf("To tag %q, LocalTag %q", tag, d.LocalTag)
	}
	if fmt.Sprint(d.RouteSet) != "[<sip:p1.test;lr> <sip:p2.test;lr>]" {
		t.Errorf("route set %q", d.RouteSet)
	}
	if d.RemoteTarget != "sip:bob@127.0.0.1:5099;transport=udp" || !strings.HasPrefix(d.Destination, "udp:127.0.0.1:") {
		t.Errorf("target %q destination %q", d.RemoteTarget, d.Destination)
	}
	if d.LocalURI != "sip:juliet@xmpp.test" || d.RemoteURI != "sip:bob@"+testDomain || d.Event != "presence" || d.EventID != "7" {
		t.Errorf("dialog uris/event %+v", d)
	}
	if r.Watcher.AOR() != "sip:bob@"+testDomain || r.Presentity.AOR() != "sip:juliet@xmpp.test" {
		t.Errorf("watcher %v presentity %v", r.Watcher, r.Presentity)
	}
	if fmt.Sprint(r.Accept) != "[application/pidf+xml application/xpidf+xml]" {
		t.Errorf("accept %q", r.Accept)
	}
	if hdr(res, "Expires") != "600" || !strings.Contains(hdr(res, "Contact"), strings.TrimPrefix(env.udp, "")) {
		t.Errorf("200: Expires %q Contact %q (listener %s)", hdr(res, "Expires"), hdr(res, "Contact"), env.udp)
	}

	// Refresh inside the dialog: Initial false, our tag kept, Expires read.
	ref := subscribeReq("sip:bob@"+testDomain, "sip:juliet@xmpp.test", env.udp, "Event: presence", "Expires: 300")
	ref.To().Params.Add("tag", d.LocalTag)
	ref.ReplaceHeader(req.CallID())
	res = doAuth(t, c, ref, "bob", "secret")
	if res.StatusCode != 200 {
		t.Fatalf("refresh: %d", res.StatusCode)
	}
	r = fp.lastSub(t)
	if r.Initial || r.Dialog.LocalTag != d.LocalTag || r.Expires != 300*time.Second || r.Dialog.RemoteTarget != "" {
		t.Errorf("refresh %+v", r)
	}
	if tag := tagOf(res.To().Params); tag != d.LocalTag {
		t.Errorf("refresh To tag %q", tag)
	}

	// 423 with Min-Expires, Retry-After passed through.
	fp.mu.Lock()
	fp.onSub = func(mapping.SubscribeRequest) mapping.SubscribeOutcome {
		return mapping.SubscribeOutcome{Status: 423, MinExpires: 60 * time.Second, RetryAfter: 5 * time.Second}
	}
	fp.mu.Unlock()
	res = doAuth(t, c, subscribeReq("sip:bob@"+testDomain, "sip:juliet@xmpp.test", env.udp,
		"Event: presence", "Expires: 10", "Contact: <sip:bob@127.0.0.1:5099>"), "bob", "secret")
	if res.StatusCode != 423 || hdr(res, "Min-Expires") != "60" || hdr(res, "Retry-After") != "5" {
		t.Errorf("423: %d Min-Expires %q Retry-After %q", res.StatusCode, hdr(res, "Min-Expires"), hdr(res, "Retry-After"))
	}
}

func callIDOf(req *sip.Request) string { return string(*req.CallID()) }

func TestSubscribeInRefused(t *testing.T) {
	fp := &fakePresence{}
	env := startStack(t, nil, nil, withPresence(fp))
	c := newClient(t)
	ctx := ctxT(t)
	contact := "Contact: <sip:x@127.0.0.1:5099>"
	for _, tc := range []struct {
		name   string
		req    *sip.Request
		status int
		check  func(*sip.Response) string
	}{
		{"foreign", subscribeReq("sip:eve@evil.test", "sip:juliet@xmpp.test", env.udp, "Event: presence", contact), 403, nil},
		{"dialog package", subscribeReq("sip:bob@"+testDomain, "sip:juliet@xmpp.test", env.udp, "Event: dialog", contact), 489,
			func(res *sip.Response) string {
				if hdr(res, "Allow-Events") != "presence" {
					return "Allow-Events " + hdr(res, "Allow-Events")
				}
				return ""
			}},
		{"no Event", subscribeReq("sip:bob@"+testDomain, "sip:juliet@xmpp.test", env.udp, contact), 489, nil},
		{"bad Event", subscribeReq("sip:bob@"+testDomain, "sip:juliet@xmpp.test", env.udp, "Event: pres ence", contact), 400, nil},
		{"no Contact", subscribeReq("sip:bob@"+testDomain, "sip:juliet@xmpp.test", env.udp, "Event: presence"), 400, nil},
		{"bad Expires", subscribeReq("sip:bob@"+testDomain, "sip:juliet@xmpp.test", env.udp, "Event: presence", "Expires: soon", contact), 400, nil},
	} {
		res, err := c.Do(ctx, tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, res.StatusCode, tc.status)
		}
		if tc.check != nil {
			if msg := tc.check(res); msg != "" {
				t.Errorf("%s: %s", tc.name, msg)
			}
		}
	}
	if n := fp.subCount(); n != 0 {
		t.Errorf("handler called %d times", n)
	}
	// OPTIONS now lists the presence methods and package.
	opt := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: testDomain})
	opt.SetDestination(env.udp)
	res, err := c.Do(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hdr(res, "Allow"), "SUBSCRIBE") || hdr(res, "Allow-Events") != "presence" {
		t.Errorf("OPTIONS Allow %q Allow-Events %q", hdr(res, "Allow"), hdr(res, "Allow-Events"))
	}
}

// TestSubscribeInTrusted: a trusted peer skips digest; the handler's
// missing status becomes 500.
func TestSubscribeInTrusted(t *testing.T) {
	fp := &fakePresence{onSub: func(mapping.SubscribeRequest) mapping.SubscribeOutcome { return mapping.SubscribeOutcome{} }}
	env := startStack(t, func(c *Config) { c.TrustedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }, nil, withPresence(fp))
	res, err := newClient(t).Do(ctxT(t), subscribeReq("sip:carol@trunk.test", "sip:juliet@xmpp.test", env.udp,
		"Event: presence", "Contact: <sip:carol@127.0.0.1:5099>"))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 500 || fp.subCount() != 1 {
		t.Fatalf("status %d, handler calls %d", res.StatusCode, fp.subCount())
	}
}

// testDialog is a notifier-side dialog towards a raw peer.
func testDialog(route string) mapping.Dialog {
	return mapping.Dialog{
		CallID: "cid-1@test", LocalTag: "ltag", RemoteTag: "rtag",
		LocalURI: "sip:juliet@xmpp.test", RemoteURI: "sip:bob@" + testDomain,
		LocalCSeq: 5, RouteSet: []string{route, "<sip:p2.test;lr>"},
		RemoteTarget: "sip:bob@192.0.2.9:5070", Event: "presence", EventID: "7",
	}
}

func TestNotifyOut(t *testing.T) {
	env := startStack(t, nil, nil)
	uas := newRawUAS(t, "200 OK")
	d := testDialog("<sip:" + uas.addr() + ";lr>") // no Destination: the first route is the next hop
	body := []byte("<?xml version='1.0'?><presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:juliet@xmpp.test'>" +
		strings.Repeat("<tuple id='t'><status><basic>open</basic></status></tuple>", 40) + "</presence>")
	if len(body) < 1500 {
		t.Fatalf("body only %d bytes", len(body))
	}
	res, err := env.stack.Notify(ctxT(t), d, "active;expires=600", pidfType, body)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || res.Reason != "OK" {
		t.Fatalf("response %+v", res)
	}
	got := <-uas.got
	h := headerLines(got.data)
	want := map[string]string{
		"":                   "NOTIFY sip:bob@192.0.2.9:5070 SIP/2.0",
		"route":              "<sip:" + uas.addr() + ";lr>",
		"from":               "<sip:juliet@xmpp.test>;tag=ltag",
		"to":                 "<sip:bob@" + testDomain + ">;tag=rtag",
		"call-id":            "cid-1@test",
		"cseq":               "5 NOTIFY",
		"max-forwards":       "70",
		"event":              "presence;id=7",
		"subscription-state": "active;expires=600",
		"content-type":       pidfType,
		"contact":            "<sip:" + env.udp + ">",
		"content-length":     strconv.Itoa(len(body)),
	}
	for k, v := range want {
		if len(h[k]) == 0 || h[k][0] != v {
			t.Errorf("%s: %q, want %q", k, h[k], v)
		}
	}
	if len(h["route"]) != 2 || h["route"][1] != "<sip:p2.test;lr>" {
		t.Errorf("routes %q", h["route"])
	}
	if _, b, _ := strings.Cut(got.data, "\r\n\r\n"); b != string(body) {
		t.Errorf("body %q", b)
	}

	// Injection attempts and a dialog without a remote tag are refused.
	bad := d
	bad.RemoteTarget = "sip:x@y\r\nX-Evil: 1"
	if _, err := env.stack.Notify(ctxT(t), bad, "active", "", nil); err == nil {
		t.Error("CRLF in target accepted")
	}
	if _, err := env.stack.Notify(ctxT(t), d, "active\r\nX: y", "", nil); err == nil {
		t.Error("CRLF in state accepted")
	}
	bad = d
	bad.RemoteTag = ""
	if _, err := env.stack.Notify(ctxT(t), bad, "active", "", nil); err == nil {
		t.Error("NOTIFY without remote tag accepted")
	}
	// 481 from the peer is returned as is.
	uas = newRawUAS(t, "481 Call/Transaction Does Not Exist")
	d.Destination = "udp:" + uas.addr()
	d.RouteSet = nil
	d.LocalCSeq++
	res, err = env.stack.Notify(ctxT(t), d, "terminated;reason=timeout", "", nil)
	if err != nil || res.Status != 481 {
		t.Fatalf("481: %+v %v", res, err)
	}
	h = headerLines((<-uas.got).data)
	if h[""][0] != "NOTIFY sip:bob@192.0.2.9:5070 SIP/2.0" || len(h["route"]) != 0 || h["content-type"] != nil || h["cseq"][0] != "6 NOTIFY" {
		t.Errorf("second NOTIFY %q", h)
	}
}

// TestNotifyOutStrictRoute: a first route without ;lr goes into the
// Request-URI and the remote target to the end of the Route set (RFC 3261
// §12.2.1.1).
func TestNotifyOutStrictRoute(t *testing.T) {
	env := startStack(t, nil, nil)
	uas := newRawUAS(t, "200 OK")
	d := testDialog("<sip:" + uas.addr() + ">")
	if res, err := env.stack.Notify(ctxT(t), d, "active", "", nil); err != nil || res.Status != 200 {
		t.Fatalf("%+v %v", res, err)
	}
	h := headerLines((<-uas.got).data)
	if h[""][0] != "NOTIFY sip:"+uas.addr()+" SIP/2.0" || fmt.Sprint(h["route"]) != "[<sip:p2.test;lr> <sip:bob@192.0.2.9:5070>]" {
		t.Errorf("strict: %q %q", h[""], h["route"])
	}
}

// peer is a scripted raw UDP SIP peer.
type peer struct {
	t    *testing.T
	conn *net.UDPConn
}

func newPeer(t *testing.T) *peer {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &peer{t: t, conn: conn}
}

func (p *peer) addr() string { return p.conn.LocalAddr().String() }

// read returns the next message for which keep is true (retransmissions
// and others are skipped) and its source.
func (p *peer) read(keep func(sip.Message) bool) (sip.Message, *net.UDPAddr) {
	p.t.Helper()
	buf := make([]byte, 65535)
	p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, from, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			p.t.Fatalf("peer read: %v", err)
		}
		m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			p.t.Fatalf("peer parse: %v\n%s", err, buf[:n])
		}
		if keep(m) {
			return m, from
		}
	}
}

func (p *peer) send(msg string, to *net.UDPAddr) {
	p.t.Helper()
	if !strings.Contains(msg, "\r\n") {
		msg = strings.ReplaceAll(msg, "\n", "\r\n")
	}
	if _, err := p.conn.WriteToUDP([]byte(msg), to); err != nil {
		p.t.Fatal(err)
	}
}

func isRequest(method sip.RequestMethod) func(sip.Message) bool {
	return func(m sip.Message) bool { r, ok := m.(*sip.Request); return ok && r.Method == method }
}

func isResponseTo(cseq uint32, method sip.RequestMethod) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.CSeq().SeqNo == cseq && r.CSeq().MethodName == method
	}
}

func notifyMsg(ruri, peerAddr, callID, fromTag, toTag, state, body string, cseq int) string {
	ct := ""
	if body != "" {
		ct = "Content-Type: application/pidf+xml\n"
	}
	return fmt.Sprintf("NOTIFY %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-n%d-%s\nFrom: <sip:alice@pres.test>;tag=%s\n"+
		"To: <sip:juliet@xmpp.test>;tag=%s\nCall-ID: %s\nCSeq: %d NOTIFY\nMax-Forwards: 70\nContact: <sip:alice@%s>\n"+
		"Event: presence\nSubscription-State: %s\n%sContent-Length: %d\n\n%s",
		ruri, peerAddr, cseq, toTag, fromTag, toTag, callID, cseq, peerAddr, state, ct, len(body), body)
}

func TestSubscribeOutAndNotifyIn(t *testing.T) {
	fp := &fakePresence{}
	env := startStack(t, nil, nil, withPresence(fp))
	p := newPeer(t)
	d := mapping.Dialog{CallID: "sub-1@stox", LocalTag: "stoxtag", LocalURI: "sip:juliet@xmpp.test",
		RemoteURI: "sip:alice@pres.test", LocalCSeq: 1, Destination: "udp:" + p.addr(), Event: "presence"}
	fp.onNotify = func(r mapping.NotifyRequest) mapping.Outcome {
		if r.CallID == d.CallID && r.LocalTag == d.LocalTag {
			return mapping.Outcome{Status: 200}
		}
		return mapping.Outcome{Status: 481}
	}
	type result struct {
		res mapping.Response
		d   mapping.Dialog
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, nd, err := env.stack.Subscribe(ctxT(t), d, time.Hour)
		done <- result{res, nd, err}
	}()
	m, from := p.read(isRequest(sip.SUBSCRIBE))
	sub := m.(*sip.Request)
	if sub.Recipient.String() != "sip:alice@pres.test" || tagOf(sub.From().Params) != "stoxtag" || tagOf(sub.To().Params) != "" ||
		hdr(sub, "Event") != "presence" || hdr(sub, "Accept") != pidfType || hdr(sub, "Expires") != "3600" ||
		sub.CSeq().Value() != "1 SUBSCRIBE" || callIDOf(sub) != d.CallID || hdr(sub, "Contact") != "<sip:"+env.udp+">" {
		t.Fatalf("SUBSCRIBE:\n%s", sub)
	}
	// RFC 6665 §4.1.2.4: the NOTIFY may come before the 2xx.
	stackAddr := from
	p.send(notifyMsg("sip:"+env.udp, p.addr(), d.CallID, "uas1", "stoxtag", "pending;expires=3600", "", 1), stackAddr)
	m, _ = p.read(isResponseTo(1, sip.NOTIFY))
	if m.(*sip.Response).StatusCode != 200 {
		t.Fatalf("early NOTIFY: %d", m.(*sip.Response).StatusCode)
	}
	// Now the 200 with tag, Record-Route and Contact.
	res := sip.NewResponseFromRequest(sub, 200, "OK", nil)
	res.To().Params.Add("tag", "uas1")
	res.AppendHeader(sip.NewHeader("Record-Route", "<sip:p1.test;lr>, <sip:p2.test;lr>"))
	res.AppendHeader(sip.NewHeader("Contact", "<sip:alice@"+p.addr()+">"))
	res.AppendHeader(sip.NewHeader("Expires", "1800"))
	p.send(res.String(), from)
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Subscribe did not return")
	}
	if r.err != nil || r.res.Status != 200 {
		t.Fatalf("Subscribe: %+v %v", r.res, r.err)
	}
	nd := r.d
	if nd.RemoteTag != "uas1" || fmt.Sprint(nd.RouteSet) != "[<sip:p2.test;lr> <sip:p1.test;lr>]" ||
		nd.RemoteTarget != "sip:alice@"+p.addr() || nd.LocalCSeq != 1 {
		t.Errorf("dialog %+v", nd)
	}
	if left := time.Until(nd.Expires); left < 1790*time.Second || left > 1800*time.Second {
		t.Errorf("expires in %v", left)
	}

	// A NOTIFY with state, reason, retry-after and a body.
	body := "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:alice@pres.test'/>"
	p.send(notifyMsg("sip:"+env.udp, p.addr(), d.CallID, "uas1", "stoxtag", "terminated;reason=timeout;retry-after=30", body, 2), stackAddr)
	m, _ = p.read(isResponseTo(2, sip.NOTIFY))
	if m.(*sip.Response).StatusCode != 200 {
		t.Fatalf("NOTIFY: %d", m.(*sip.Response).StatusCode)
	}
	fp.mu.Lock()
	got := fp.notifies[len(fp.notifies)-1]
	first := fp.notifies[0]
	fp.mu.Unlock()
	if first.State != "pending" || first.Expires != time.Hour || first.LocalTag != "stoxtag" || first.RemoteTag != "uas1" {
		t.Errorf("early notify %+v", first)
	}
	if got.State != "terminated" || got.Reason != "timeout" || got.RetryAfter != 30*time.Second || got.CSeq != 2 ||
		got.ContentType != pidfType || string(got.Body) != body || got.Contact != "sip:alice@"+p.addr() || got.Event != "presence" {
		t.Errorf("notify %+v", got)
	}
	// Unknown dialog: the handler's 481.
	p.send(notifyMsg("sip:"+env.udp, p.addr(), "other@x", "uas1", "stoxtag", "active", "", 3), stackAddr)
	if m, _ = p.read(isResponseTo(3, sip.NOTIFY)); m.(*sip.Response).StatusCode != 481 {
		t.Errorf("unknown dialog: %d", m.(*sip.Response).StatusCode)
	}
	// No To tag: 481 without asking the handler; other package: 489.
	n := fp.notifyCount()
	p.send(strings.Replace(notifyMsg("sip:"+env.udp, p.addr(), d.CallID, "uas1", "stoxtag", "active", "", 4), ";tag=stoxtag", "", 1), stackAddr)
	if m, _ = p.read(isResponseTo(4, sip.NOTIFY)); m.(*sip.Response).StatusCode != 481 {
		t.Errorf("no To tag: %d", m.(*sip.Response).StatusCode)
	}
	p.send(strings.Replace(notifyMsg("sip:"+env.udp, p.addr(), d.CallID, "uas1", "stoxtag", "active", "", 5), "Event: presence", "Event: dialog", 1), stackAddr)
	if m, _ = p.read(isResponseTo(5, sip.NOTIFY)); m.(*sip.Response).StatusCode != 489 {
		t.Errorf("dialog package: %d", m.(*sip.Response).StatusCode)
	}
	p.send(notifyMsg("sip:"+env.udp, p.addr(), d.CallID, "uas1", "stoxtag", "active;expires=soon", "", 6), stackAddr)
	if m, _ = p.read(isResponseTo(6, sip.NOTIFY)); m.(*sip.Response).StatusCode != 400 {
		t.Errorf("bad Subscription-State: %d", m.(*sip.Response).StatusCode)
	}
	if fp.notifyCount() != n {
		t.Errorf("handler called for refused NOTIFYs")
	}

	// Refresh in the dialog: Request-URI the remote target, Route reversed
	// Record-Route, To tag; Destination still wins as next hop.
	nd.LocalCSeq++
	go func() {
		res, nd2, err := env.stack.Subscribe(ctxT(t), nd, 0)
		done <- result{res, nd2, err}
	}()
	m, from = p.read(isRequest(sip.SUBSCRIBE))
	sub = m.(*sip.Request)
	var routes []string
	for _, h := range sub.GetHeaders("Route") {
		routes = append(routes, h.Value())
	}
	if sub.Recipient.String() != "sip:alice@"+p.addr() || fmt.Sprint(routes) != "[<sip:p2.test;lr> <sip:p1.test;lr>]" ||
		tagOf(sub.To().Params) != "uas1" || sub.CSeq().SeqNo != 2 || hdr(sub, "Expires") != "0" {
		t.Fatalf("refresh:\n%s", sub)
	}
	res = sip.NewResponseFromRequest(sub, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Expires", "0"))
	p.send(res.String(), from)
	r = <-done
	if r.err != nil || r.res.Status != 200 || r.d.RemoteTag != "uas1" || len(r.d.RouteSet) != 2 || r.d.RemoteTarget != nd.RemoteTarget {
		t.Errorf("refresh result %+v", r)
	}
}

// TestSubscribeOut423 retries once with Min-Expires (RFC 6665 §4.1.2.1).
func TestSubscribeOut423(t *testing.T) {
	env := startStack(t, nil, nil)
	p := newPeer(t)
	d := mapping.Dialog{CallID: "sub-2@stox", LocalTag: "stoxtag", LocalURI: "sip:juliet@xmpp.test",
		RemoteURI: "sip:alice@pres.test", LocalCSeq: 7, Destination: "udp:" + p.addr()}
	type result struct {
		res mapping.Response
		d   mapping.Dialog
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, nd, err := env.stack.Subscribe(ctxT(t), d, 30*time.Second)
		done <- result{res, nd, err}
	}()
	m, from := p.read(isRequest(sip.SUBSCRIBE))
	res := sip.NewResponseFromRequest(m.(*sip.Request), 423, "Interval Too Brief", nil)
	res.AppendHeader(sip.NewHeader("Min-Expires", "120"))
	p.send(res.String(), from)
	m, from = p.read(isResponseOr(sip.SUBSCRIBE, 8))
	sub := m.(*sip.Request)
	if hdr(sub, "Expires") != "120" {
		t.Fatalf("retry Expires %q", hdr(sub, "Expires"))
	}
	res = sip.NewResponseFromRequest(sub, 202, "Accepted", nil)
	res.AppendHeader(sip.NewHeader("Contact", "<sip:alice@"+p.addr()+">"))
	p.send(res.String(), from)
	r := <-done
	if r.err != nil || r.res.Status != 202 || r.d.LocalCSeq != 8 || r.d.RemoteTag == "" {
		t.Fatalf("%+v", r)
	}
	if left := time.Until(r.d.Expires); left < 110*time.Second || left > 120*time.Second {
		t.Errorf("expires in %v (no Expires in the 2xx: the requested interval)", left)
	}
}

func isResponseOr(method sip.RequestMethod, cseq uint32) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == method && r.CSeq().SeqNo == cseq
	}
}

func TestPublishIn(t *testing.T) {
	fp := &fakePresence{}
	fp.onPub = func(r mapping.PublishRequest) mapping.PublishOutcome {
		switch {
		case r.ETag == "" && len(r.Body) > 0:
			return mapping.PublishOutcome{Status: 200, ETag: "e1", Expires: time.Hour}
		case r.ETag == "e1":
			if r.Expires == 10*time.Second {
				return mapping.PublishOutcome{Status: 423, MinExpires: time.Minute}
			}
			return mapping.PublishOutcome{Status: 200, ETag: "e2", Expires: 30 * time.Minute}
		}
		return mapping.PublishOutcome{Status: 412}
	}
	env := startStack(t, nil, nil, withPresence(fp))
	c := newClient(t)
	pub := func(event, ifMatch, expires, body string) *sip.Request {
		req := sip.NewRequest(sip.PUBLISH, sip.Uri{Scheme: "sip", User: "bob", Host: testDomain})
		from := &sip.FromHeader{Address: req.Recipient, Params: sip.NewParams()}
		from.Params.Add("tag", "p1")
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: req.Recipient})
		if event != "" {
			req.AppendHeader(sip.NewHeader("Event", event))
		}
		if ifMatch != "" {
			req.AppendHeader(sip.NewHeader("SIP-If-Match", ifMatch))
		}
		if expires != "" {
			req.AppendHeader(sip.NewHeader("Expires", expires))
		}
		if body != "" {
			ct := sip.ContentTypeHeader(pidfType)
			req.AppendHeader(&ct)
			req.SetBody([]byte(body))
		}
		req.SetDestination(env.udp)
		return req
	}
	body := "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:bob@stox.test'/>"
	res := doAuth(t, c, pub("presence", "", "", body), "bob", "secret")
	if res.StatusCode != 200 || hdr(res, "SIP-ETag") != "e1" || hdr(res, "Expires") != "3600" {
		t.Fatalf("initial: %d ETag %q Expires %q", res.StatusCode, hdr(res, "SIP-ETag"), hdr(res, "Expires"))
	}
	fp.mu.Lock()
	r := fp.pubs[0]
	fp.mu.Unlock()
	if r.Presentity.AOR() != "sip:bob@"+testDomain || r.Expires >= 0 || r.ContentType != pidfType || string(r.Body) != body {
		t.Errorf("publish %+v", r)
	}
	res = doAuth(t, c, pub("presence", "e1", "1800", ""), "bob", "secret")
	if res.StatusCode != 200 || hdr(res, "SIP-ETag") != "e2" || hdr(res, "Expires") != "1800" {
		t.Fatalf("refresh: %d ETag %q Expires %q", res.StatusCode, hdr(res, "SIP-ETag"), hdr(res, "Expires"))
	}
	res = doAuth(t, c, pub("presence", "e1", "10", ""), "bob", "secret")
	if res.StatusCode != 423 || hdr(res, "Min-Expires") != "60" {
		t.Fatalf("423: %d Min-Expires %q", res.StatusCode, hdr(res, "Min-Expires"))
	}
	for _, tc := range []struct {
		req    *sip.Request
		status int
	}{
		{pub("dialog", "", "", body), 489},
		{pub("", "", "", body), 489},
		{pub("presence", "", "", ""), 400}, // initial without state
	} {
		res, err := c.Do(ctxT(t), tc.req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", hdr(tc.req, "Event"), res.StatusCode, tc.status)
		}
		if tc.status == 489 && hdr(res, "Allow-Events") != "presence" {
			t.Errorf("489 without Allow-Events: presence")
		}
	}
	// Someone else's presentity.
	req := pub("presence", "", "", body)
	req.Recipient.User = "alice"
	if res := doAuth(t, c, req, "bob", "secret"); res.StatusCode != 403 {
		t.Errorf("other presentity: %d", res.StatusCode)
	}
	// Foreign publisher.
	req = pub("presence", "", "", body)
	req.From().Address.Host = "evil.test"
	if res, err := c.Do(ctxT(t), req); err != nil || res.StatusCode != 403 {
		t.Errorf("foreign: %v %v", res, err)
	}
}

// observer is a fakePresence that is also a RegistrationObserver.
type observer struct {
	fakePresence
	ch chan string
}

func (o *observer) BindingsChanged(ctx context.Context, aor string, live int) {
	select { // a test that failed stops reading: let the stack stop anyway
	case o.ch <- fmt.Sprintf("%s=%d", aor, live):
	case <-ctx.Done():
	}
}

func TestBindingsChanged(t *testing.T) {
	o := &observer{ch: make(chan string, 16)}
	env := startStack(t, nil, nil, observing(o))
	c := newClient(t)
	aor := "sip:bob@" + testDomain
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-o.ch:
			if got != want {
				t.Fatalf("BindingsChanged %s, want %s", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no BindingsChanged, want %s", want)
		}
	}
	register := func(contact, expires string) {
		t.Helper()
		if res := doAuth(t, c, registerReq("bob", env.udp, []string{contact}, expires), "bob", "secret"); res.StatusCode != 200 {
			t.Fatalf("REGISTER %d", res.StatusCode)
		}
	}
	register("<sip:bob@127.0.0.1:5999>", "600")
	expect(aor + "=1")
	register("<sip:bob@127.0.0.1:6000>", "600")
	expect(aor + "=2")
	register("<sip:bob@127.0.0.1:6000>", "300") // refresh: same count
	register("<sip:bob@127.0.0.1:6000>", "0")
	expect(aor + "=1") // the refresh gave no call
	register("*", "0")
	expect(aor + "=0")

	// Expiry found by the sweep.
	register("<sip:bob@127.0.0.1:5999>", "600")
	expect(aor + "=1")
	env.stack.reg.sweep(time.Now().Add(time.Hour))
	expect(aor + "=0")
	select {
	case got := <-o.ch:
		t.Fatalf("extra call %s", got)
	case <-time.After(100 * time.Millisecond):
	}
}

// A blocked observer does not block REGISTER; changes coalesce per AOR.
func TestBindingsChangedSlowObserver(t *testing.T) {
	o := &observer{ch: make(chan string)} // unbuffered: blocks until read
	env := startStack(t, nil, nil, observing(o))
	c := newClient(t)
	for _, exp := range []string{"600", "0", "600", "0", "600"} {
		res := doAuth(t, c, registerReq("bob", env.udp, []string{"<sip:bob@127.0.0.1:5999>"}, exp), "bob", "secret")
		if res.StatusCode != 200 {
			t.Fatalf("REGISTER %d", res.StatusCode)
		}
	}
	var got []string
	deadline := time.After(5 * time.Second)
	for len(got) == 0 || got[len(got)-1] != "sip:bob@"+testDomain+"=1" {
		select {
		case s := <-o.ch:
			got = append(got, s)
		case <-deadline:
			t.Fatalf("calls %v", got)
		}
	}
	if len(got) > 3 {
		t.Errorf("not coalesced: %v", got)
	}
}

func FuzzParseSubscriptionState(f *testing.F) {
	for _, s := range []string{"active;expires=3600", "terminated;reason=timeout;retry-after=30", "pending", `active;x="a;b"`, "TERMINATED ; Reason = Noresource"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		st, err := parseSubState(v)
		if err != nil {
			return
		}
		if !isToken(st.State) || st.Expires < 0 || st.RetryAfter < 0 || st.State != strings.ToLower(st.State) {
			t.Fatalf("%q → %+v", v, st)
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{"presence", "presence;id=7", "Presence ; id = \"x y\"", "presence.winfo", "o;x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		pkg, id, err := parseEvent(v)
		if err != nil {
			return
		}
		if !isToken(pkg) || pkg != strings.ToLower(pkg) || !strings.Contains(v, id) {
			t.Fatalf("%q → %q %q", v, pkg, id)
		}
		// What stox would send again parses to the same package and id.
		out := pkg
		if isToken(id) {
			out += ";id=" + id
		}
		if p2, id2, err := parseEvent(out); err != nil || p2 != pkg || isToken(id) && id2 != id {
			t.Fatalf("%q → %q → %q %q %v", v, out, p2, id2, err)
		}
	})
}

func TestParseHeaders(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want subState
		ok   bool
	}{
		{"active;expires=3600", subState{State: "active", Expires: time.Hour}, true},
		{"terminated;reason=timeout;retry-after=30", subState{State: "terminated", Reason: "timeout", RetryAfter: 30 * time.Second}, true},
		{" Pending ;foo", subState{State: "pending"}, true},
		{"active;expires=-1", subState{}, false},
		{"", subState{}, false},
		{"act ive", subState{}, false},
		{"active;=x", subState{}, false},
	} {
		got, err := parseSubState(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q: %+v %v", tc.in, got, err)
		}
	}
	if p, id, err := parseEvent(`presence;id="a;b"`); err != nil || p != "presence" || id != "a;b" {
		t.Errorf("event: %q %q %v", p, id, err)
	}
}

// TestSubscribeOutProxyAndTimeout: an initial SUBSCRIBE without Destination
// goes to the outbound proxy with the presentity as Request-URI; a silent
// peer gives an error, not a response.
func TestSubscribeOutProxyAndTimeout(t *testing.T) {
	uas := newRawUAS(t, "")
	env := startStack(t, func(c *Config) { c.OutboundProxy = "udp:" + uas.addr() }, nil)
	d := mapping.Dialog{CallID: "sub-3@stox", LocalTag: "stoxtag", LocalURI: "sip:juliet@xmpp.test",
		RemoteURI: "sip:+15551234@trunk.test", LocalCSeq: 1}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, nd, err := env.stack.Subscribe(ctx, d, time.Hour)
	if err == nil {
		t.Fatal("no error from a silent peer")
	}
	if nd.RemoteTag != "" {
		t.Errorf("dialog changed: %+v", nd)
	}
	h := headerLines((<-uas.got).data)
	if h[""][0] != "SUBSCRIBE sip:+15551234@trunk.test SIP/2.0" || h["to"][0] != "<sip:+15551234@trunk.test>" {
		t.Errorf("SUBSCRIBE %q", h)
	}
	// NOTIFY needs a dialog; bad CSeq and tags are refused before sending.
	if _, _, err := env.stack.Subscribe(ctxT(t), mapping.Dialog{CallID: "x", LocalTag: "a b", RemoteURI: "sip:a@b", LocalURI: "sip:c@d", LocalCSeq: 1}, 0); err == nil {
		t.Error("bad tag accepted")
	}
	if _, _, err := env.stack.Subscribe(ctxT(t), mapping.Dialog{CallID: "x", LocalTag: "a", RemoteURI: "sip:a@b", LocalURI: "sip:c@d"}, 0); err == nil {
		t.Error("CSeq 0 accepted")
	}
}

// TestSubscribeInNotifyOutTCP: a watcher on TCP gets the NOTIFY over the
// connection its SUBSCRIBE came on (Destination "tcp:ip:port").
func TestSubscribeInNotifyOutTCP(t *testing.T) {
	fp := &fakePresence{}
	env := startStack(t, func(c *Config) { c.TrustedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }, nil, withPresence(fp))
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("watcher"), sipgo.WithUserAgentHostname("client.test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *sip.Request, 1)
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		got <- req
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	c, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	req := subscribeReq("sip:carol@trunk.test", "sip:juliet@xmpp.test", env.tcp, "Event: presence",
		"Contact: <sip:carol@127.0.0.1:1;transport=tcp>")
	req.SetTransport("TCP")
	res, err := c.Do(ctxT(t), req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %v %v", res, err)
	}
	d := fp.lastSub(t).Dialog
	if !strings.HasPrefix(d.Destination, "tcp:127.0.0.1:") || !strings.Contains(hdr(res, "Contact"), ";transport=tcp") {
		t.Fatalf("destination %q contact %q", d.Destination, hdr(res, "Contact"))
	}
	d.LocalCSeq = 1
	r, err := env.stack.Notify(ctxT(t), d, "active;expires=600", "", nil)
	if err != nil || r.Status != 200 {
		t.Fatalf("Notify: %+v %v", r, err)
	}
	n := <-got
	if tagOf(n.From().Params) != d.LocalTag || tagOf(n.To().Params) != "wtag1" || hdr(n, "Subscription-State") != "active;expires=600" {
		t.Errorf("NOTIFY\n%s", n)
	}
}
