package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"stox.dev/stox/mapping"
)

const (
	testDomain = "gw.test"
	testSecret = "s3cret"
)

// sink is the Router side: it records what the component hands over.
type sink struct{ ch chan mapping.XMPPMessage }

func (s *sink) ReceiveXMPP(m mapping.XMPPMessage) {
	select {
	case s.ch <- m:
	default:
		panic("sink full")
	}
}

func (s *sink) next(t *testing.T) mapping.XMPPMessage {
	t.Helper()
	select {
	case m := <-s.ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("router got nothing")
		return mapping.XMPPMessage{}
	}
}

func (s *sink) expectNone(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-s.ch:
		t.Fatalf("router got unexpected %+v", m)
	case <-time.After(d):
	}
}

type harness struct {
	c    *Component
	srv  *fakeServer
	conn *fakeConn
	rt   *sink
	reg  *prometheus.Registry
}

// start runs a component with the harness's sink as its MessageHandler.
func start(t *testing.T, autoRoute bool, tweak func(*Component)) *harness {
	t.Helper()
	return startWith(t, autoRoute, true, tweak)
}

func startWith(t *testing.T, autoRoute, messages bool, tweak func(*Component)) *harness {
	t.Helper()
	return startOn(t, newFakeServer(t, testDomain, testSecret, autoRoute), messages, tweak)
}

// startOn runs a component against srv.
func startOn(t *testing.T, srv *fakeServer, messages bool, tweak func(*Component)) *harness {
	t.Helper()
	rt := &sink{ch: make(chan mapping.XMPPMessage, 100)}
	reg := prometheus.NewRegistry()
	c := New(Config{
		Server: srv.addr(), Domain: testDomain, Secret: testSecret,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)), Metrics: reg,
		Domains: mapping.Domains{XMPP: testDomain, SIP: "sip.test"},
	})
	if messages {
		c.HandleMessages(rt)
	}
	c.minBackoff, c.maxBackoff = 20*time.Millisecond, 200*time.Millisecond
	if tweak != nil {
		tweak(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	h := &harness{c: c, srv: srv, rt: rt, reg: reg}
	h.conn = srv.next(t)
	waitUp(t, c, true)
	return h
}

func waitUp(t *testing.T, c *Component, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Up() != want {
		if time.Now().After(deadline) {
			t.Fatalf("Up() did not become %v", want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type ackRec struct {
	ch chan error
}

func newAck() *ackRec { return &ackRec{ch: make(chan error, 4)} }

func (a *ackRec) fn(err error) { a.ch <- err }

func (a *ackRec) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-a.ch:
		select {
		case err2 := <-a.ch:
			t.Fatalf("ack called twice: %v then %v", err, err2)
		case <-time.After(20 * time.Millisecond):
		}
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("ack not called")
		return nil
	}
}

func (a *ackRec) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case err := <-a.ch:
		t.Fatalf("ack called early with %v", err)
	case <-time.After(d):
	}
}

// linkRec is a LinkObserver that records every change.
type linkRec struct{ ch chan bool }

func (l linkRec) LinkChanged(up bool) { l.ch <- up }

func TestHandshakeAndUp(t *testing.T) {
	obs := linkRec{make(chan bool, 8)}
	h := start(t, true, func(c *Component) { c.ObserveLink(obs) })
	if !h.c.Up() {
		t.Fatal("not up")
	}
	if got := metricValue(h.c.met.up); got != 1 {
		t.Fatalf("link_up gauge = %v", got)
	}
	select {
	case up := <-obs.ch:
		if !up {
			t.Fatal("LinkChanged(false) first")
		}
	case <-time.After(time.Second):
		t.Fatal("LinkChanged not called")
	}
	h.conn.conn.Close() // the server drops the session: observers hear of it
	select {
	case up := <-obs.ch:
		if up {
			t.Fatal("LinkChanged(true) after the session was dropped")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("LinkChanged(false) not called")
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	c := New(Config{Domain: testDomain})
	c.HandleMessages(&sink{})
	defer func() {
		if recover() == nil {
			t.Fatal("a second message handler was accepted")
		}
	}()
	c.HandleMessages(&sink{})
}

func TestHandshakeRejectedThenRetry(t *testing.T) {
	srv := newFakeServer(t, testDomain, testSecret, true)
	srv.rejectN = 2
	c := New(Config{Server: srv.addr(), Domain: testDomain, Secret: testSecret, Logger: zaptest.NewLogger(t)})
	c.minBackoff = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	srv.next(t)
	waitUp(t, c, true)
	if got := metricValue(c.met.reconnects); got != 2 {
		t.Errorf("reconnects = %v, want 2", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c.Up() {
		t.Fatal("still up after Run returned")
	}
}

func TestWrongSecretNeverUp(t *testing.T) {
	srv := newFakeServer(t, testDomain, "other", true)
	c := New(Config{Server: srv.addr(), Domain: testDomain, Secret: testSecret})
	c.minBackoff = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Up() {
		t.Fatal("up with a wrong secret")
	}
	if err := c.Send(mapping.XMPPMessage{}, nil); !errors.Is(err, mapping.ErrLinkDown) {
		t.Fatalf("Send without session: %v", err)
	}
}

func TestDiscoInfo(t *testing.T) {
	h := start(t, true, nil)
	h.conn.send(`<iq type='get' id='d1' from='alice@localhost/r' to='gw.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	e := h.conn.readKind(t, "iq")
	if e.attr("type") != "result" || e.attr("id") != "d1" || e.attr("to") != "alice@localhost/r" || e.attr("from") != "gw.test" {
		t.Fatalf("bad reply %s", e.raw)
	}
	q := e.child("query")
	if q == nil || q.XMLName.Space != nsDisco {
		t.Fatalf("no query in %s", e.raw)
	}
	id := q.child("identity")
	if id == nil || id.attr("category") != "gateway" || id.attr("type") != "sip" || id.attr("name") != "stox" {
		t.Fatalf("identity wrong in %s", e.raw)
	}
	var feats []string
	for _, k := range q.Kids {
		if k.XMLName.Local == "feature" {
			feats = append(feats, k.attr("var"))
		}
	}
	want := map[string]bool{`jid\20escaping`: true, "jabber:iq:gateway": true, "urn:xmpp:ping": true, "http://jabber.org/protocol/disco#info": true}
	for _, f := range feats {
		delete(want, f)
	}
	if len(want) != 0 {
		t.Fatalf("missing features %v in %v", want, feats)
	}

	h.conn.send(`<iq type='get' id='d2' from='alice@localhost/r' to='bob@gw.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	e = h.conn.readKind(t, "iq")
	if id := e.child("query").child("identity"); e.attr("from") != "bob@gw.test" || id.attr("category") != "client" || id.attr("type") != "phone" {
		t.Fatalf("user disco wrong: %s", e.raw)
	}
}

func TestGatewayPrompt(t *testing.T) {
	h := start(t, true, nil)
	h.conn.send(`<iq type='get' id='g1' from='alice@localhost/r' to='gw.test'><query xmlns='jabber:iq:gateway'/></iq>`)
	e := h.conn.readKind(t, "iq")
	q := e.child("query")
	if e.attr("type") != "result" || q == nil || q.child("desc") == nil || q.child("prompt") == nil {
		t.Fatalf("gateway get: %s", e.raw)
	}

	h.conn.send(`<iq type='set' id='g2' from='alice@localhost/r' to='gw.test'><query xmlns='jabber:iq:gateway'><prompt>bob@sip.example</prompt></query></iq>`)
	e = h.conn.readKind(t, "iq")
	if e.attr("type") != "result" || e.attr("id") != "g2" {
		t.Fatalf("gateway set: %s", e.raw)
	}
	if got := e.child("query").child("jid").Text; got != `bob\40sip.example@gw.test` {
		t.Fatalf("jid = %q", got)
	}

	h.conn.send(`<iq type='set' id='g3' from='alice@localhost/r' to='gw.test'><query xmlns='jabber:iq:gateway'><prompt>  </prompt></query></iq>`)
	e = h.conn.readKind(t, "iq")
	if e.attr("type") != "error" || e.child("error").child("bad-request") == nil {
		t.Fatalf("empty prompt: %s", e.raw)
	}

	h.conn.send(`<iq type='set' id='g4' from='alice@localhost/r' to='gw.test'><query xmlns='jabber:iq:gateway'><prompt>sip:@</prompt></query></iq>`)
	e = h.conn.readKind(t, "iq")
	if e.attr("type") != "error" || e.child("error").child("item-not-found") == nil {
		t.Fatalf("bad prompt: %s", e.raw)
	}
}

func TestPingUnknownAndBrokenIQs(t *testing.T) {
	h := start(t, true, nil)
	h.conn.send(`<iq type='get' id='p1' from='localhost' to='gw.test'><ping xmlns='urn:xmpp:ping'/></iq>`)
	e := h.conn.readKind(t, "iq")
	if e.attr("type") != "result" || e.attr("id") != "p1" || e.attr("to") != "localhost" || e.attr("from") != "gw.test" {
		t.Fatalf("ping reply: %s", e.raw)
	}

	h.conn.send(`<iq type='get' id='u1' from='alice@localhost/r' to='gw.test'><query xmlns='jabber:iq:version'/></iq>`)
	e = h.conn.readKind(t, "iq")
	if e.attr("type") != "error" || e.attr("id") != "u1" || e.child("error").child("service-unavailable") == nil {
		t.Fatalf("unknown iq: %s", e.raw)
	}

	// No payload: mellium's mux would kill the stream; we answer bad-request.
	h.conn.send(`<iq type='get' id='u2' from='alice@localhost/r' to='gw.test'/>`)
	e = h.conn.readKind(t, "iq")
	if e.attr("type") != "error" || e.attr("id") != "u2" || e.child("error").child("bad-request") == nil {
		t.Fatalf("empty iq: %s", e.raw)
	}

	// Malformed from: jid-malformed, the stream survives.
	h.conn.send(`<iq type='get' id='u3' from='a@b@c' to='gw.test'><ping xmlns='urn:xmpp:ping'/></iq>`)
	e = h.conn.readKind(t, "iq")
	if e.attr("type") != "error" || e.attr("id") != "u3" || e.child("error").child("jid-malformed") == nil {
		t.Fatalf("malformed iq: %s", e.raw)
	}

	// Presence is ignored, results to unknown ids are ignored.
	h.conn.send(`<presence from='alice@localhost/r' to='bob@gw.test'><show>away</show></presence>`)
	h.conn.send(`<iq type='result' id='zzz' from='alice@localhost/r' to='gw.test'/>`)
	h.conn.send(`<iq type='get' id='p2' from='localhost' to='gw.test'><ping xmlns='urn:xmpp:ping'/></iq>`)
	e = h.conn.readKind(t, "iq")
	if e.attr("id") != "p2" || e.attr("type") != "result" {
		t.Fatalf("stream did not survive: %s", e.raw)
	}
	if !h.c.Up() {
		t.Fatal("link dropped")
	}
}

func TestReceiveMessage(t *testing.T) {
	h := start(t, true, nil)
	h.conn.send(`<message id='m1' type='chat' xml:lang='en' from='alice@localhost/phone' to='bob@gw.test'>` +
		`<subject>Hi</subject><body xml:lang='de'>Hallo</body><body>Hello &lt;you&gt; &amp; me</body><thread>t-1</thread>` +
		`<active xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	m := h.rt.next(t)
	want := mapping.XMPPMessage{
		ID: "m1", Type: "chat", Lang: "en",
		From:    mapping.JID{Local: "alice", Domain: "localhost", Resource: "phone"},
		To:      mapping.JID{Local: "bob", Domain: "gw.test"},
		Subject: "Hi", Body: "Hello <you> & me", Thread: "t-1",
	}
	if fmt.Sprintf("%+v", m) != fmt.Sprintf("%+v", want) {
		t.Fatalf("got  %+v\nwant %+v", m, want)
	}

	// An error bounce that matches nothing in flight goes to the router.
	h.conn.send(`<message id='x9' type='error' from='carol@localhost' to='bob@gw.test'><error type='cancel'>` +
		`<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no such user</text></error></message>`)
	m = h.rt.next(t)
	if m.Type != "error" || m.Error == nil || m.Error.Condition != mapping.ItemNotFound || m.Error.Text != "no such user" || m.Error.Status == 0 {
		t.Fatalf("error message: %+v / %+v", m, m.Error)
	}

	// Malformed from and missing to: error replies, nothing for the router.
	h.conn.send(`<message id='bad1' from='a@b@c' to='bob@gw.test'><body>x</body></message>`)
	e := h.conn.readKind(t, "message")
	if e.attr("type") != "error" || e.attr("id") != "bad1" || e.child("error").child("jid-malformed") == nil || e.attr("from") != "bob@gw.test" {
		t.Fatalf("jid-malformed reply: %s", e.raw)
	}
	h.conn.send(`<message id='bad2' from='alice@localhost'><body>x</body></message>`)
	e = h.conn.readKind(t, "message")
	if e.attr("type") != "error" || e.attr("id") != "bad2" || e.child("error").child("bad-request") == nil {
		t.Fatalf("bad-request reply: %s", e.raw)
	}
	h.rt.expectNone(t, 100*time.Millisecond)
	if !h.c.Up() {
		t.Fatal("link dropped")
	}
}

// Without an IM capability registered, a message is refused with
// service-unavailable (RFC 6120 §8.3.3.19), and an error is never answered.
func TestMessageWithoutHandler(t *testing.T) {
	h := startWith(t, true, false, nil)
	h.conn.send(`<message id='m1' type='error' from='alice@localhost/phone' to='bob@gw.test'><error type='cancel'>` +
		`<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
	h.conn.send(`<message id='m2' type='chat' from='alice@localhost/phone' to='bob@gw.test'><body>hi</body></message>`)
	e := h.conn.readKind(t, "message")
	if e.attr("type") != "error" || e.attr("id") != "m2" || e.child("error").child("service-unavailable") == nil {
		t.Fatalf("reply: %s", e.raw)
	}
}

func TestSendEncodesAndBarrierAcks(t *testing.T) {
	h := start(t, false, nil)
	ack := newAck()
	m := mapping.XMPPMessage{
		ID: "s1", Type: "chat", Lang: "fr",
		From:    mapping.JID{Local: `o\27malley`, Domain: testDomain},
		To:      mapping.JID{Local: "alice", Domain: "localhost", Resource: "r"},
		Subject: "s<&>", Body: "a < b && c\x01d\x00e\uFFFEf ok", Thread: "th",
	}
	if err := h.c.Send(m, ack.fn); err != nil {
		t.Fatal(err)
	}
	e := h.conn.readKind(t, "message")
	if e.attr("from") != `o\27malley@gw.test` || e.attr("to") != "alice@localhost/r" || e.attr("id") != "s1" || e.attr("type") != "chat" {
		t.Fatalf("attrs: %s", e.raw)
	}
	var lang string
	for _, a := range e.Attrs {
		if a.Name.Local == "lang" && a.Name.Space == nsXML {
			lang = a.Value
		}
	}
	if lang != "fr" {
		t.Fatalf("xml:lang: %s", e.raw)
	}
	if e.child("body").Text != "a < b && cdef ok" || e.child("subject").Text != "s<&>" || e.child("thread").Text != "th" {
		t.Fatalf("children: %s", e.raw)
	}
	if !strings.Contains(string(e.raw), "a &lt; b &amp;&amp; cdef ok") {
		t.Fatalf("not escaped as expected: %s", e.raw)
	}
	b := h.conn.readKind(t, "iq")
	if b.attr("type") != "get" || b.attr("from") != testDomain || b.attr("to") != testDomain || !strings.HasPrefix(b.attr("id"), "b-") || b.child("ping") == nil {
		t.Fatalf("barrier: %s", b.raw)
	}
	ack.none(t, 100*time.Millisecond)

	// Route the barrier ping back: the component answers it...
	h.conn.send(string(b.raw))
	r := h.conn.readKind(t, "iq")
	if r.attr("type") != "result" || r.attr("id") != b.attr("id") || r.attr("to") != testDomain {
		t.Fatalf("barrier answer: %s", r.raw)
	}
	ack.none(t, 50*time.Millisecond)
	// ...and the server routes the result back to it.
	h.conn.send(string(r.raw))
	if err := ack.wait(t); err != nil {
		t.Fatalf("ack = %v", err)
	}
	h.rt.expectNone(t, 50*time.Millisecond)
}

func TestSendErrorStanzaAndGeneratedID(t *testing.T) {
	h := start(t, true, nil)
	ack := newAck()
	m := mapping.XMPPMessage{
		Type: "error", From: mapping.JID{Local: "bob", Domain: testDomain}, To: mapping.JID{Local: "alice", Domain: "localhost"},
		Error: &mapping.Failure{Condition: mapping.RecipientUnavailable, Text: "phone <off>"},
	}
	if err := h.c.Send(m, ack.fn); err != nil {
		t.Fatal(err)
	}
	e := h.conn.readKind(t, "message")
	if e.attr("id") == "" || e.attr("type") != "error" {
		t.Fatalf("attrs: %s", e.raw)
	}
	er := e.child("error")
	if er == nil || er.attr("type") != "wait" || er.child("recipient-unavailable") == nil || er.child("recipient-unavailable").XMLName.Space != nsStanzas ||
		er.child("text").Text != "phone <off>" {
		t.Fatalf("error element: %s", e.raw)
	}
	if err := ack.wait(t); err != nil {
		t.Fatal(err)
	}
}

func TestBounceForInflight(t *testing.T) {
	h := start(t, false, nil)
	a1, a2 := newAck(), newAck()
	to := mapping.JID{Local: "nobody", Domain: "localhost"}
	from := mapping.JID{Local: "bob", Domain: testDomain}
	if err := h.c.Send(mapping.XMPPMessage{ID: "k1", Type: "chat", From: from, To: to, Body: "1"}, a1.fn); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Send(mapping.XMPPMessage{ID: "k2", Type: "chat", From: from, To: to, Body: "2"}, a2.fn); err != nil {
		t.Fatal(err)
	}
	var barrier elem
	for n := 0; n < 2; {
		e := h.conn.read(t)
		switch e.XMLName.Local {
		case "message":
			n++
		case "iq":
			barrier = e
		}
	}
	// The server bounces k1 before the barrier comes back.
	h.conn.send(`<message id='k1' type='error' from='nobody@localhost' to='bob@gw.test'><error type='cancel'>` +
		`<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
	err := a1.wait(t)
	var f *mapping.Failure
	if !errors.As(err, &f) || f.Condition != mapping.ServiceUnavailable {
		t.Fatalf("ack k1 = %v", err)
	}
	h.rt.expectNone(t, 50*time.Millisecond)
	// Route barriers (and the answers to them) back until k2 is acknowledged:
	// k2 may have been written after the first barrier and need a second one.
	if barrier.raw != nil {
		h.conn.send(string(barrier.raw))
	}
	deadline := time.After(5 * time.Second)
route:
	for {
		select {
		case err := <-a2.ch:
			if err != nil {
				t.Fatalf("ack k2 = %v", err)
			}
			break route
		case e := <-h.conn.elems:
			if e.XMLName.Local == "iq" {
				h.conn.send(string(e.raw))
			}
		case <-deadline:
			t.Fatal("k2 not acknowledged")
		}
	}
	// A late bounce for k1 (already acknowledged) now goes to the router.
	h.conn.send(`<message id='k1' type='error' from='nobody@localhost' to='bob@gw.test'><error type='cancel'>` +
		`<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
	if m := h.rt.next(t); m.ID != "k1" || m.Error == nil {
		t.Fatalf("late bounce: %+v", m)
	}
}

func TestDropFailsUnackedAndReconnects(t *testing.T) {
	h := start(t, false, nil)
	var mu sync.Mutex
	var errs []error
	done := make(chan struct{}, 10)
	for i := 0; i < 3; i++ {
		err := h.c.Send(mapping.XMPPMessage{Type: "chat", From: mapping.JID{Local: "bob", Domain: testDomain}, To: mapping.JID{Local: "a", Domain: "localhost"}, Body: "x"},
			func(err error) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				done <- struct{}{}
			})
		if err != nil {
			t.Fatal(err)
		}
	}
	h.conn.readKind(t, "message")
	h.conn.conn.Close()
	for i := 0; i < 3; i++ {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("acks missing after drop")
		}
	}
	mu.Lock()
	for _, err := range errs {
		if !errors.Is(err, mapping.ErrLinkDown) {
			t.Errorf("ack = %v, want ErrLinkDown", err)
		}
	}
	mu.Unlock()
	// The supervisor reconnects.
	h.srv.next(t)
	waitUp(t, h.c, true)
	if got := metricValue(h.c.met.reconnects); got < 1 {
		t.Fatalf("reconnects = %v", got)
	}
}

func TestQueueFull(t *testing.T) {
	h := start(t, false, func(c *Component) { c.cfg.QueueSize = 2 })
	msg := mapping.XMPPMessage{Type: "chat", From: mapping.JID{Local: "bob", Domain: testDomain}, To: mapping.JID{Local: "a", Domain: "localhost"}, Body: "x"}
	// Two are written and wait for a barrier that never comes back; that
	// fills the in-flight window, then two fill the queue.
	for i := 0; i < 2; i++ {
		if err := h.c.Send(msg, nil); err != nil {
			t.Fatal(err)
		}
	}
	for n := 0; n < 2; {
		if h.conn.read(t).XMLName.Local == "message" {
			n++
		}
	}
	var full bool
	for i := 0; i < 4; i++ {
		if err := h.c.Send(msg, nil); errors.Is(err, mapping.ErrQueueFull) {
			full = true
			break
		}
	}
	if !full {
		t.Fatal("never ErrQueueFull")
	}
}

func TestKeepAlive(t *testing.T) {
	// Unanswered keep-alive: the session is dropped and re-established.
	h := start(t, false, func(c *Component) {
		c.keepIdle, c.pongTimeout = 100*time.Millisecond, 150*time.Millisecond
	})
	p := h.conn.readKind(t, "iq")
	if p.child("ping") == nil || p.attr("to") != testDomain {
		t.Fatalf("keep-alive: %s", p.raw)
	}
	h.srv.next(t)
	waitUp(t, h.c, true)

	// Answered keep-alives keep the session: on a silent stream a ping goes
	// out about every keepIdle, and the server's answers keep the link.
	h2 := start(t, true, func(c *Component) {
		c.keepIdle, c.pongTimeout = 50*time.Millisecond, 150*time.Millisecond
	})
	time.Sleep(600 * time.Millisecond)
	select {
	case <-h2.srv.conns:
		t.Fatal("reconnected although pings were answered")
	default:
	}
	if !h2.c.Up() {
		t.Fatal("down")
	}
	if n := h2.srv.routedIQs.Load(); n < 4 {
		t.Fatalf("server answered %d keep-alive pings in 600 ms with keepIdle 50 ms, want >= 4", n)
	}
}

// A slow server answers the barrier ping long after the pong timeout, but
// keeps sending other stanzas meanwhile: the link stays up and the message
// is acknowledged once the late answer comes. When the server then falls
// silent, the next keep-alive goes unanswered and the link is dropped and
// re-established.
func TestSlowServerKeepsLink(t *testing.T) {
	const pongTimeout = 500 * time.Millisecond
	h := start(t, false, func(c *Component) {
		c.keepIdle, c.pongTimeout = 100*time.Millisecond, pongTimeout
	})
	ack := newAck()
	if err := h.c.Send(mapping.XMPPMessage{ID: "slow1", Type: "chat", From: mapping.JID{Local: "bob", Domain: testDomain},
		To: mapping.JID{Local: "a", Domain: "localhost"}, Body: "x"}, ack.fn); err != nil {
		t.Fatal(err)
	}
	h.conn.readKind(t, "message")
	ping := h.conn.readKind(t, "iq")
	if ping.child("ping") == nil {
		t.Fatalf("barrier: %s", ping.raw)
	}
	// Four pong timeouts of other traffic, one stanza every 50 ms.
	stop := time.Now().Add(4 * pongTimeout)
	for i := 0; time.Now().Before(stop); i++ {
		h.conn.send(fmt.Sprintf(`<presence from='someone@localhost/r' to='bob@%s' id='busy%d'/>`, testDomain, i))
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-h.srv.conns:
		t.Fatal("the component reconnected although the server kept sending")
	default:
	}
	if !h.c.Up() {
		t.Fatal("link down although the server kept sending")
	}
	// The late answer to the barrier acknowledges the message.
	h.conn.send(fmt.Sprintf(`<iq type='result' id='%s' from='%s' to='%s'/>`, ping.attr("id"), testDomain, testDomain))
	if err := ack.wait(t); err != nil {
		t.Fatalf("ack after the late answer = %v", err)
	}
	// Silence: the keep-alive is unanswered and the link is re-established.
	if ka := h.conn.readKind(t, "iq"); ka.child("ping") == nil {
		t.Fatalf("keep-alive: %s", ka.raw)
	}
	h.srv.next(t)
	waitUp(t, h.c, true)
}

// A server that keeps talking but never answers the barrier is dropped
// after pongMaxWait, and the unacknowledged message fails.
func TestUnansweredBarrierBounded(t *testing.T) {
	h := start(t, false, func(c *Component) {
		c.keepIdle, c.pongTimeout, c.pongMaxWait = 100*time.Millisecond, 500*time.Millisecond, 1500*time.Millisecond
	})
	ack := newAck()
	if err := h.c.Send(mapping.XMPPMessage{Type: "chat", From: mapping.JID{Local: "bob", Domain: testDomain},
		To: mapping.JID{Local: "a", Domain: "localhost"}, Body: "x"}, ack.fn); err != nil {
		t.Fatal(err)
	}
	h.conn.readKind(t, "iq")
	done := make(chan struct{})
	defer close(done)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-h.conn.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			h.conn.send(fmt.Sprintf(`<presence from='someone@localhost/r' to='bob@%s' id='busy%d'/>`, testDomain, i))
		}
	}()
	t0 := time.Now()
	if err := ack.wait(t); !errors.Is(err, mapping.ErrLinkDown) {
		t.Fatalf("ack = %v, want ErrLinkDown", err)
	}
	if d := time.Since(t0); d < time.Second {
		t.Fatalf("dropped after %s, before pongMaxWait", d)
	}
	h.srv.next(t)
	waitUp(t, h.c, true)
}

// bufSize sets a socket buffer (SO_RCVBUF or SO_SNDBUF) before connecting
// or listening; a fixed size also turns off the kernel's autotuning.
func bufSize(opt, size int) func(string, string, syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, size) }); err != nil {
			return err
		}
		return serr
	}
}

// A server that reads the component's stream slowly, but reads it, is busy
// and not dead: a write that blocks for longer than writeTimeout while
// bytes keep going through does not drop the link.
func TestSlowReaderKeepsLink(t *testing.T) {
	// Small socket buffers on both sides make the component's writes block
	// on the slow reader at once.
	srv := newFakeServerOn(t, &net.ListenConfig{Control: bufSize(syscall.SO_RCVBUF, 4096)}, testDomain, testSecret, true)
	h := startOn(t, srv, true, func(c *Component) {
		c.writeTimeout, c.pongTimeout = 300*time.Millisecond, 5*time.Second
		c.dialControl = bufSize(syscall.SO_SNDBUF, 4096)
	})
	// About 100 KB/s from now on: 200 messages of 1 KB take two seconds,
	// several write timeouts.
	srv.readEvery.Store(int64(10 * time.Millisecond))
	srv.readChunk.Store(1000)
	const n = 200
	body := strings.Repeat("x", 1000)
	acks := make(chan error, n)
	for i := range n {
		m := mapping.XMPPMessage{ID: fmt.Sprintf("s%d", i), Type: "chat", From: mapping.JID{Local: "bob", Domain: testDomain},
			To: mapping.JID{Local: "a", Domain: "localhost"}, Body: body}
		if err := h.c.Send(m, func(err error) { acks <- err }); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		for range h.conn.elems {
		}
	}()
	for i := range n {
		select {
		case err := <-acks:
			if err != nil {
				t.Fatalf("ack %d = %v", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d acknowledged", i, n)
		}
	}
	select {
	case <-srv.conns:
		t.Fatal("the component reconnected to a server that was reading")
	default:
	}
}

func TestManyMessagesAllAcked(t *testing.T) {
	for _, qs := range []int{0, 3, 300} {
		t.Run(fmt.Sprintf("queue=%d", qs), func(t *testing.T) { testManyMessages(t, qs) })
	}
}

func testManyMessages(t *testing.T, queueSize int) {
	h := start(t, true, func(c *Component) {
		if queueSize > 0 {
			c.cfg.QueueSize = queueSize
		}
	})
	const n = 4000
	var wg sync.WaitGroup
	wg.Add(n)
	var mu sync.Mutex
	var bad []error
	counted := make(chan int, 1)
	go func() {
		got := 0
		for e := range h.conn.elems {
			if e.XMLName.Local == "message" {
				got++
				if got == n {
					break
				}
			}
		}
		counted <- got
	}()
	for i := 0; i < n; i++ {
		m := mapping.XMPPMessage{ID: fmt.Sprintf("n%d", i), Type: "chat", From: mapping.JID{Local: "bob", Domain: testDomain}, To: mapping.JID{Local: "a", Domain: "localhost"}, Body: "x"}
		for {
			err := h.c.Send(m, func(err error) {
				if err != nil {
					mu.Lock()
					bad = append(bad, err)
					mu.Unlock()
				}
				wg.Done()
			})
			if err == nil {
				break
			}
			if !errors.Is(err, mapping.ErrQueueFull) {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("not all acked")
	}
	if len(bad) > 0 {
		t.Fatalf("%d failed acks, first %v", len(bad), bad[0])
	}
	select {
	case got := <-counted:
		if got != n {
			t.Fatalf("server saw %d messages, want %d", got, n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not see all messages")
	}
	if d := metricValue(h.c.met.depth); d != 0 {
		t.Fatalf("queue depth gauge = %v", d)
	}
}

func TestDecodeHelpers(t *testing.T) {
	if got := clean("ok\x01\x00\uFFFE\xffé\t\n"); got != "oké\t\n" {
		t.Fatalf("clean = %q", got)
	}
	s := "plain text"
	if clean(s) != s {
		t.Fatal("clean changed plain text")
	}
	d := xml.NewDecoder(strings.NewReader(`<message from='a@b' to='c@d' type='error' id='e'><error type='modify'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>xmpp:new@x</gone></error></message>`))
	m, _, err := decodeMessage(d)
	if err != nil || m.Error == nil || m.Error.Condition != mapping.Gone || m.Error.Address != "xmpp:new@x" {
		t.Fatalf("gone: %v %+v", err, m.Error)
	}
}

func metricValue(m prometheus.Metric) float64 {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		panic(err)
	}
	switch {
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	case out.Counter != nil:
		return out.Counter.GetValue()
	}
	return 0
}
