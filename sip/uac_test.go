package sip

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"stox.dev/stox/mapping"
)

// sipgoUAS is a sipgo server on a UDP socket of its own that answers BYE
// and INFO with 200 and hands over what it received.
func sipgoUAS(t *testing.T) (addr string, got <-chan *sip.Request) {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("callee"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *sip.Request, 4)
	answer := func(req *sip.Request, tx sip.ServerTransaction) {
		ch <- req
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	}
	srv.OnBye(answer)
	srv.OnRequest(sip.INFO, answer)
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeUDP(conn) }()
	t.Cleanup(func() { ua.Close(); conn.Close(); <-done })
	return conn.LocalAddr().String(), ch
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received")
	}
	panic("unreachable")
}

// TestDialogRequestBye: the in-dialog plumbing that sends NOTIFY sends a
// BYE of an INVITE dialog (RFC 3261 §15.1.1, §12.2.1.1): Request-URI the
// remote target, Route the route set, the dialog's tags, Call-ID and CSeq;
// no Event although the dialog carries one (Event belongs to SUBSCRIBE and
// NOTIFY), and no Contact (RFC 3261 Table 3: not applicable to BYE). An
// INFO carries the caller's headers and body.
func TestDialogRequestBye(t *testing.T) {
	env := startStack(t, nil, nil)
	uas, got := sipgoUAS(t)
	d := mapping.Dialog{
		CallID: "call-1@stox", LocalTag: "stox1", RemoteTag: "callee1",
		LocalURI: "sip:juliet@xmpp.test", RemoteURI: "sip:bob@" + testDomain,
		LocalCSeq: 3, RouteSet: []string{"<sip:" + uas + ";lr>", "<sip:p2.test;lr>"},
		RemoteTarget: "sip:bob@192.0.2.9:5070", Event: "presence", EventID: "7",
	}
	res, err := env.stack.dialogDo(ctxT(t), sip.BYE, d, nil, "", nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("BYE: %v %v", res, err)
	}
	req := recv(t, got)
	t.Logf("wire:\n%s", req)
	var routes []string
	for _, h := range req.GetHeaders("Route") {
		routes = append(routes, h.Value())
	}
	for _, c := range []struct{ what, got, want string }{
		{"method", string(req.Method), "BYE"},
		{"Request-URI", req.Recipient.String(), "sip:bob@192.0.2.9:5070"},
		{"Route", fmt.Sprint(routes), "[<sip:" + uas + ";lr> <sip:p2.test;lr>]"},
		{"From", req.From().Address.String(), "sip:juliet@xmpp.test"},
		{"From tag", tagOf(req.From().Params), "stox1"},
		{"To", req.To().Address.String(), "sip:bob@" + testDomain},
		{"To tag", tagOf(req.To().Params), "callee1"},
		{"Call-ID", callID(req), "call-1@stox"},
		{"CSeq", req.CSeq().Value(), "3 BYE"},
		{"Max-Forwards", hdr(req, "Max-Forwards"), "70"},
		{"Via sent-by", req.Via().Host + ":" + strconv.Itoa(req.Via().Port), env.udp},
		{"Event", hdr(req, "Event"), ""},
		{"Contact", hdr(req, "Contact"), ""},
	} {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.what, c.got, c.want)
		}
	}

	d.LocalCSeq++
	info := []sip.Header{sip.NewHeader("Info-Package", "x-test")}
	res, err = env.stack.dialogDo(ctxT(t), sip.INFO, d, info, "application/x-test", []byte("hello"))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("INFO: %v %v", res, err)
	}
	req = recv(t, got)
	if req.Method != sip.INFO || req.CSeq().Value() != "4 INFO" || hdr(req, "Info-Package") != "x-test" ||
		hdr(req, "Content-Type") != "application/x-test" || string(req.Body()) != "hello" || hdr(req, "Event") != "" {
		t.Errorf("INFO\n%s", req)
	}
	if _, err := env.stack.dialogDo(ctxT(t), sip.INFO, d, nil, "", []byte("no type")); err == nil {
		t.Error("body without Content-Type accepted")
	}
}

// TestNextHopSameForMessageAndDialog: MESSAGE and an in-dialog request
// choose their next hop alike (nextHop): the Destination the caller knows,
// else the route set (in-dialog only), else the outbound proxy, else the
// Request-URI's host and port.
func TestNextHopSameForMessageAndDialog(t *testing.T) {
	dest, proxy, route, target := newRawUAS(t, "200 OK"), newRawUAS(t, "200 OK"), newRawUAS(t, "200 OK"), newRawUAS(t, "200 OK")
	peers := map[*rawUAS]string{dest: "destination", proxy: "outbound proxy", route: "route", target: "target"}
	withProxy := startStack(t, func(c *Config) { c.OutboundProxy = "udp:" + proxy.addr() }, nil)
	direct := startStack(t, nil, nil)

	host, portS, _ := net.SplitHostPort(target.addr())
	port, _ := strconv.Atoi(portS)
	m := testMsg()
	m.CallID = ""
	tgt := mapping.URI{Scheme: "sip", User: "bob", Host: host, Port: port}
	dialog := func(cseq uint32) mapping.Dialog {
		return mapping.Dialog{CallID: "hop-" + strconv.Itoa(int(cseq)) + "@stox", LocalTag: "l", RemoteTag: "r",
			LocalURI: "sip:juliet@xmpp.test", RemoteURI: "sip:bob@" + testDomain, LocalCSeq: cseq,
			RemoteTarget: "sip:bob@" + target.addr()}
	}
	withRoute := func(d mapping.Dialog) mapping.Dialog {
		d.RouteSet = []string{"<sip:" + route.addr() + ";lr>"}
		return d
	}
	withDest := func(d mapping.Dialog) mapping.Dialog { d.Destination = "udp:" + dest.addr(); return d }

	cases := []struct {
		name  string
		env   *testEnv
		msg   *mapping.Target // nil: no MESSAGE for this case (MESSAGE has no route set)
		d     mapping.Dialog
		where *rawUAS
	}{
		{"destination", withProxy, &mapping.Target{URI: tgt, Destination: "udp:" + dest.addr()}, withDest(withRoute(dialog(1))), dest},
		{"route", withProxy, nil, withRoute(dialog(2)), route},
		{"outbound proxy", withProxy, &mapping.Target{URI: tgt}, dialog(3), proxy},
		{"target", direct, &mapping.Target{URI: tgt}, dialog(4), target},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.msg != nil {
				res, err := c.env.stack.SendMessage(ctxT(t), m, *c.msg)
				if err != nil || res.Status != 200 {
					t.Fatalf("MESSAGE: %+v %v", res, err)
				}
				checkOnly(t, "MESSAGE", peers, c.where)
			}
			res, err := c.env.stack.dialogDo(ctxT(t), sip.BYE, c.d, nil, "", nil)
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("BYE: %v %v", res, err)
			}
			checkOnly(t, "BYE", peers, c.where)
		})
	}
}

// checkOnly says that want, and none of the other peers, got the request.
func checkOnly(t *testing.T, what string, peers map[*rawUAS]string, want *rawUAS) {
	t.Helper()
	r := recv(t, want.got)
	if got := headerLines(r.data)[""][0]; len(got) < len(what) || got[:len(what)] != what {
		t.Errorf("%s went to the %s as %q", what, peers[want], got)
	}
	for p, name := range peers {
		if p == want {
			continue
		}
		select {
		case r := <-p.got:
			t.Errorf("%s: the %s got %q too", what, name, headerLines(r.data)[""][0])
		default:
		}
	}
}

// TestStrictRouterWithoutPort: a strict router without a port is the next
// hop on the transport's default port (RFC 3261 §12.2.1.1, §19.1.2), not
// the second route that sipgo would take from the first Route header when
// no destination is set.
func TestStrictRouterWithoutPort(t *testing.T) {
	env := startStack(t, nil, nil)
	d := testDialog("<sip:p1.test>")
	req, h, err := env.stack.dialogRequest(sip.BYE, d)
	if err != nil {
		t.Fatal(err)
	}
	env.stack.setHop(req, h)
	if req.Recipient.String() != "sip:p1.test" || req.Destination() != "p1.test:5060" || req.Transport() != "UDP" {
		t.Errorf("Request-URI %s, destination %s over %s; want sip:p1.test, p1.test:5060 over UDP",
			&req.Recipient, req.Destination(), req.Transport())
	}
}

func TestURIMemo(t *testing.T) {
	c := uriMemo{m: make(map[string]sip.Uri)}
	for _, s := range []string{"sip:w1@127.0.0.1:5060", "<sip:w1@127.0.0.1:5060>", "sip:w1@127.0.0.1:5060", "sip:p@proxy;lr", "sip:p@proxy;lr", "<sip:a@b?subject=x>", "bad"} {
		got, err := c.parse(s)
		want, wantErr := parseNameAddr(s)
		if got.String() != want.String() || (err == nil) != (wantErr == nil) {
			t.Fatalf("parse(%q) = %s, %v; parseNameAddr: %s, %v", s, got.String(), err, want.String(), wantErr)
		}
	}
	if len(c.m) != 2 { // the two spellings of sip:w1@…; not the ones with parameters or headers, nor "bad"
		t.Fatalf("kept %d URIs: %v", len(c.m), c.m)
	}
	// A copy handed out shares no parameters with the next one.
	u, _ := c.parse("sip:w1@127.0.0.1:5060")
	u.UriParams.Add("transport", "tcp")
	if v, _ := c.parse("sip:w1@127.0.0.1:5060"); v.String() != "sip:w1@127.0.0.1:5060" {
		t.Fatalf("memo changed by a caller: %s", v.String())
	}
	for i := range uriMemoMax + 1 {
		if _, err := c.parse(fmt.Sprintf("sip:w%d@h", i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) > uriMemoMax {
		t.Fatalf("memo holds %d URIs, bound %d", len(c.m), uriMemoMax)
	}
}
