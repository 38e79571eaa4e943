package xmpp

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stox.dev/stox/mapping"
)

// callSink is the calls capability's side: it records what the component
// hands over and answers Jingle IQs with answer.
type callSink struct {
	iqs  chan mapping.JingleIQ
	jmis chan mapping.JMI

	mu     sync.Mutex
	answer *mapping.JingleError
	panics bool
}

func newCallSink() *callSink {
	return &callSink{iqs: make(chan mapping.JingleIQ, 100), jmis: make(chan mapping.JMI, 100)}
}

func (s *callSink) ReceiveJingle(iq mapping.JingleIQ) *mapping.JingleError {
	s.iqs <- iq
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.panics {
		panic("boom")
	}
	return s.answer
}

func (s *callSink) ReceiveJMI(m mapping.JMI) { s.jmis <- m }

func (s *callSink) setAnswer(e *mapping.JingleError) {
	s.mu.Lock()
	s.answer = e
	s.mu.Unlock()
}

func (s *callSink) nextIQ(t *testing.T) mapping.JingleIQ {
	t.Helper()
	select {
	case iq := <-s.iqs:
		return iq
	case <-time.After(5 * time.Second):
		t.Fatal("no Jingle IQ reached the handler")
		return mapping.JingleIQ{}
	}
}

func (s *callSink) nextJMI(t *testing.T) mapping.JMI {
	t.Helper()
	select {
	case m := <-s.jmis:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no JMI reached the handler")
		return mapping.JMI{}
	}
}

func (s *callSink) noIQ(t *testing.T) {
	t.Helper()
	select {
	case iq := <-s.iqs:
		t.Fatalf("handler got unexpected %+v", iq)
	default:
	}
}

// startCalls runs a component with calls served (and the message sink).
func startCalls(t *testing.T, tweak func(*Component)) (*harness, *callSink) {
	t.Helper()
	cs := newCallSink()
	h := start(t, true, func(c *Component) {
		c.HandleCalls(cs)
		if tweak != nil {
			tweak(c)
		}
	})
	return h, cs
}

var (
	alice = mapping.JID{Local: "alice", Domain: "localhost", Resource: "laptop"}
	bobPh = mapping.JID{Local: "bob", Domain: testDomain, Resource: "phone"}
)

const initiateIQ = `<iq type='set' id='j1' from='alice@localhost/laptop' to='bob@gw.test/phone'>` +
	`<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s-1' initiator='alice@localhost/laptop'>` +
	`<content creator='initiator' name='0' senders='both'>` +
	`<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'><payload-type id='111' name='opus' clockrate='48000' channels='2'>` +
	`<parameter name='useinbandfec' value='1'/></payload-type><rtcp-mux/></description>` +
	`<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='uf' pwd='pw'>` +
	`<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>AB:CD</fingerprint>` +
	`<candidate component='1' foundation='1' generation='0' id='c1' ip='192.0.2.1' port='5000' priority='2130706431' protocol='udp' type='host'/>` +
	`</transport></content>` +
	`<group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'><content name='0'/></group>` +
	`</jingle></iq>`

func errorConds(e elem) (stanzaCond, jingleCond, typ string) {
	er := e.child("error")
	if er == nil {
		return "", "", ""
	}
	for _, k := range er.Kids {
		switch {
		case k.XMLName.Space == nsStanzas && k.XMLName.Local != "text":
			stanzaCond = k.XMLName.Local
		case k.XMLName.Space == mapping.NSJingleErrors || k.XMLName.Space == mapping.NSJingleRTPErr:
			jingleCond = k.XMLName.Local
		}
	}
	return stanzaCond, jingleCond, er.attr("type")
}

func TestJingleIQToHandler(t *testing.T) {
	h, cs := startCalls(t, nil)

	// Accepted: the handler gets the decoded IQ; the wire gets a result.
	h.conn.send(initiateIQ)
	iq := cs.nextIQ(t)
	if iq.ID != "j1" || iq.From != alice || iq.To != bobPh {
		t.Fatalf("addressing: %+v", iq)
	}
	j := iq.Jingle
	if j.Action != mapping.ActSessionInitiate || j.SID != "s-1" || len(j.Contents) != 1 || j.Group == nil || j.Group.Semantics != "BUNDLE" {
		t.Fatalf("jingle: %+v", j)
	}
	c := j.Contents[0]
	if c.Description == nil || c.Description.Media != "audio" || len(c.Description.PayloadTypes) != 1 || c.Description.PayloadTypes[0].Name != "opus" ||
		c.Transport == nil || c.Transport.Fingerprint == nil || c.Transport.Fingerprint.Value != "AB:CD" || len(c.Transport.Candidates) != 1 {
		t.Fatalf("content: %+v / %+v", c.Description, c.Transport)
	}
	e := h.conn.readKind(t, "iq")
	if e.attr("type") != "result" || e.attr("id") != "j1" || e.attr("from") != "bob@gw.test/phone" || e.attr("to") != "alice@localhost/laptop" || len(e.Kids) != 0 {
		t.Fatalf("result: %s", e.raw)
	}

	// Refused: the handler's error, with the XEP-0166 §11 condition.
	cs.setAnswer(&mapping.JingleError{Condition: mapping.ItemNotFound, Jingle: "unknown-session", Text: "no such session"})
	h.conn.send(`<iq type='set' id='j2' from='alice@localhost/laptop' to='bob@gw.test/phone'><jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='nope'><reason><success/></reason></jingle></iq>`)
	if iq := cs.nextIQ(t); iq.Jingle.Reason == nil || iq.Jingle.Reason.Condition.XMLName.Local != "success" {
		t.Fatalf("reason: %+v", iq.Jingle.Reason)
	}
	e = h.conn.readKind(t, "iq")
	sc, jc, typ := errorConds(e)
	if e.attr("type") != "error" || e.attr("id") != "j2" || e.attr("from") != "bob@gw.test/phone" || sc != "item-not-found" || jc != "unknown-session" || typ != "cancel" {
		t.Fatalf("error reply: %s", e.raw)
	}
	if txt := e.child("error").child("text"); txt == nil || txt.Text != "no such session" {
		t.Fatalf("error text: %s", e.raw)
	}
	cs.setAnswer(nil)

	// Malformed: no sid, no action: bad-request from the stack (XEP-0166
	// §6.3.2); the handler never sees it.
	for i, payload := range []string{
		`<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate'/>`,
		`<jingle xmlns='urn:xmpp:jingle:1' sid='x'/>`,
	} {
		id := "bad" + string(rune('0'+i))
		h.conn.send(`<iq type='set' id='` + id + `' from='alice@localhost/laptop' to='bob@gw.test/phone'>` + payload + `</iq>`)
		e = h.conn.readKind(t, "iq")
		if sc, _, typ := errorConds(e); e.attr("id") != id || e.attr("type") != "error" || sc != "bad-request" || typ != "modify" {
			t.Fatalf("malformed %d: %s", i, e.raw)
		}
	}
	cs.noIQ(t)

	// To the gateway itself: service-unavailable, handler not called.
	h.conn.send(`<iq type='set' id='j3' from='alice@localhost/laptop' to='gw.test'><jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s'/></iq>`)
	e = h.conn.readKind(t, "iq")
	if sc, _, _ := errorConds(e); e.attr("id") != "j3" || sc != "service-unavailable" {
		t.Fatalf("to gateway: %s", e.raw)
	}
	cs.noIQ(t)

	// A panicking handler: internal-server-error, the link stays up.
	cs.mu.Lock()
	cs.panics = true
	cs.mu.Unlock()
	h.conn.send(`<iq type='set' id='j4' from='alice@localhost/laptop' to='bob@gw.test/phone'><jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s'/></iq>`)
	cs.nextIQ(t)
	e = h.conn.readKind(t, "iq")
	if sc, _, _ := errorConds(e); e.attr("id") != "j4" || sc != "internal-server-error" || !h.c.Up() {
		t.Fatalf("panic: %s", e.raw)
	}

	if got := metricValue(h.c.met.jingle.WithLabelValues("in", "session-initiate")); got != 3 { // j1, bad0 and j3
		t.Errorf("jingle in session-initiate = %v", got)
	}
}

// Without the calls capability, a Jingle IQ gets the answer it always got.
func TestJingleWithoutHandler(t *testing.T) {
	h := start(t, true, nil)
	h.conn.send(initiateIQ)
	e := h.conn.readKind(t, "iq")
	if sc, _, _ := errorConds(e); e.attr("type") != "error" || e.attr("id") != "j1" || sc != "service-unavailable" {
		t.Fatalf("reply: %s", e.raw)
	}
}

func testJingle() mapping.Jingle {
	return mapping.Jingle{
		Action: mapping.ActSessionInitiate, SID: "s-9", Initiator: "bob@gw.test/phone",
		Contents: []mapping.JingleContent{{
			Creator: "initiator", Name: "0", Senders: "both",
			Description: &mapping.RTPDescription{Media: "audio", PayloadTypes: []mapping.JinglePayload{{ID: "0", Name: "PCMU", ClockRate: "8000"}}},
			Transport: &mapping.ICEUDPTransport{Ufrag: "u", Pwd: "p",
				Fingerprint: &mapping.JingleFingerprint{Hash: "sha-256", Setup: "actpass", Value: "AA:BB"},
				Candidates:  []mapping.JingleCandidate{{Component: "1", Foundation: "f", IP: "198.51.100.1", Port: "4000", Priority: "1", Protocol: "udp", Type: "host", ID: "c"}}},
		}},
		Group:  &mapping.JingleGroup{Semantics: "BUNDLE", Contents: []mapping.JingleGroupMember{{Name: "0"}}},
		Reason: &mapping.JingleReason{Condition: mapping.JingleCondition{XMLName: xml.Name{Space: mapping.NSJingle, Local: "busy"}}, Text: "t"},
	}
}

func TestSendJingle(t *testing.T) {
	h, _ := startCalls(t, func(c *Component) { c.iqTimeout = 300 * time.Millisecond })
	send := func(j mapping.Jingle) (<-chan error, elem) {
		done := make(chan error, 1)
		go func() { done <- h.c.SendJingle(context.Background(), bobPh, alice, j) }()
		return done, h.conn.readKind(t, "iq")
	}

	// Result.
	done, e := send(testJingle())
	if e.attr("type") != "set" || e.attr("from") != "bob@gw.test/phone" || e.attr("to") != "alice@localhost/laptop" || !strings.HasPrefix(e.attr("id"), "stox-") {
		t.Fatalf("iq: %s", e.raw)
	}
	// What crosses the wire decodes back to the Jingle sent.
	jn := e.child("jingle")
	if jn == nil || jn.XMLName.Space != mapping.NSJingle {
		t.Fatalf("no jingle in %s", e.raw)
	}
	var back mapping.Jingle
	if err := xml.Unmarshal(e.raw[bytes.Index(e.raw, []byte("<jingle")):bytes.LastIndex(e.raw, []byte("</iq>"))], &back); err != nil {
		t.Fatalf("decode %s: %v", e.raw, err)
	}
	want := testJingle()
	if back.SID != want.SID || back.Action != want.Action || back.Contents[0].Transport.Fingerprint.Value != "AA:BB" ||
		back.Contents[0].Transport.Candidates[0] != want.Contents[0].Transport.Candidates[0] ||
		back.Contents[0].Description.PayloadTypes[0].Name != "PCMU" || back.Group.Contents[0].Name != "0" ||
		back.Reason.Condition.XMLName.Local != "busy" || back.Reason.Text != "t" {
		t.Fatalf("round trip: %+v\nwire %s", back, e.raw)
	}
	if tr := jn.child("content").child("transport"); tr == nil || tr.XMLName.Space != mapping.NSJingleICE || tr.child("fingerprint").XMLName.Space != mapping.NSJingleDTLS {
		t.Fatalf("namespaces: %s", e.raw)
	}
	// An answer from another address is not the answer (RFC 6120 §8.2.3).
	h.conn.send(`<iq type='result' id='` + e.attr("id") + `' from='mallory@localhost/x' to='bob@gw.test/phone'/>`)
	h.conn.send(`<iq type='result' id='` + e.attr("id") + `' from='alice@localhost/laptop' to='bob@gw.test/phone'/>`)
	if err := <-done; err != nil {
		t.Fatalf("result: %v", err)
	}

	// Error, with the Jingle condition decoded.
	done, e = send(mapping.Jingle{Action: mapping.ActSessionInfo, SID: "s-9"})
	h.conn.send(`<iq type='error' id='` + e.attr("id") + `' from='alice@localhost/laptop' to='bob@gw.test/phone'><error type='cancel'>` +
		`<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><unknown-session xmlns='urn:xmpp:jingle:errors:1'/>` +
		`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text></error></iq>`)
	err := <-done
	var je *mapping.JingleError
	if !errors.As(err, &je) || je.Condition != mapping.ItemNotFound || je.Jingle != "unknown-session" || je.Text != "gone" {
		t.Fatalf("error: %#v", err)
	}
	if _, ok := err.(*mapping.JingleError); !ok {
		t.Fatalf("not a bare *JingleError: %T", err) // calls type-asserts it
	}

	// An error from the peer's server, for a resource that is gone.
	done, e = send(mapping.Jingle{Action: mapping.ActSessionInfo, SID: "s-9"})
	h.conn.send(`<iq type='error' id='` + e.attr("id") + `' from='alice@localhost' to='bob@gw.test/phone'><error type='cancel'>` +
		`<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
	if err := <-done; !errors.As(err, &je) || je.Condition != mapping.ServiceUnavailable {
		t.Fatalf("server error: %v", err)
	}

	// No answer: a timeout.
	done, _ = send(mapping.Jingle{Action: mapping.ActSessionInfo, SID: "s-9"})
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}

	// ctx done first.
	ctx, cancel := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() {
		done2 <- h.c.SendJingle(ctx, bobPh, alice, mapping.Jingle{Action: mapping.ActSessionInfo, SID: "s-9"})
	}()
	h.conn.readKind(t, "iq")
	cancel()
	if err := <-done2; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v", err)
	}

	// The link drops while waiting: ErrLinkDown.
	h.c.iqTimeout = 5 * time.Second // (the writer does not read it)
	done, _ = send(mapping.Jingle{Action: mapping.ActSessionTerminate, SID: "s-9"})
	h.conn.conn.Close()
	if err := <-done; !errors.Is(err, ErrLinkDown) {
		t.Fatalf("link lost: %v", err)
	}
	if got := metricValue(h.c.met.jingle.WithLabelValues("out", "session-info")); got != 4 {
		t.Errorf("jingle out session-info = %v", got)
	}
}

// PostJingle writes the IQ in order with the rest and returns at once; the
// answer that comes later is taken and dropped, not answered.
func TestPostJingle(t *testing.T) {
	h, _ := startCalls(t, nil)
	if err := h.c.PostJingle(bobPh, alice, mapping.Jingle{Action: mapping.ActSessionInfo, SID: "s-1"}); err != nil {
		t.Fatal(err)
	}
	if err := h.c.SendJMI(mapping.JMI{From: bobPh, To: alice, Kind: "proceed", ID: "s-1"}); err != nil {
		t.Fatal(err)
	}
	e := h.conn.readKind(t, "iq")
	if e.attr("type") != "set" || e.attr("to") != "alice@localhost/laptop" || e.child("jingle") == nil {
		t.Fatalf("iq: %s", e.raw)
	}
	h.conn.readKind(t, "message") // after the IQ: the queue keeps the order
	h.conn.send(`<iq type='result' id='` + e.attr("id") + `' from='alice@localhost/laptop' to='bob@gw.test/phone'/>`)
	// The component is still up and serving: a Jingle IQ round trip works.
	done := make(chan error, 1)
	go func() {
		done <- h.c.SendJingle(context.Background(), bobPh, alice, mapping.Jingle{Action: mapping.ActSessionInfo, SID: "s-1"})
	}()
	e = h.conn.readKind(t, "iq")
	h.conn.send(`<iq type='result' id='` + e.attr("id") + `' from='alice@localhost/laptop' to='bob@gw.test/phone'/>`)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c := New(Config{Domain: testDomain})
	if err := c.PostJingle(bobPh, alice, testJingle()); !errors.Is(err, ErrLinkDown) {
		t.Fatalf("link down: %v", err)
	}
}

func TestSendJingleLinkDown(t *testing.T) {
	c := New(Config{Domain: testDomain})
	err := c.SendJingle(context.Background(), bobPh, alice, testJingle())
	if !errors.Is(err, ErrLinkDown) {
		t.Fatalf("err = %v", err)
	}
	if err := c.SendJMI(mapping.JMI{From: bobPh, To: alice, Kind: "proceed", ID: "x"}); !errors.Is(err, ErrLinkDown) {
		t.Fatalf("JMI err = %v", err)
	}
	if err := c.SendJingle(context.Background(), bobPh, alice, mapping.Jingle{Action: "session-info"}); err == nil || errors.Is(err, ErrLinkDown) {
		t.Fatalf("no sid: %v", err)
	}
	if err := c.SendJMI(mapping.JMI{From: bobPh, To: alice, Kind: "bogus", ID: "x"}); err == nil || errors.Is(err, ErrLinkDown) {
		t.Fatalf("bogus kind: %v", err)
	}
	// What would not be XML on the wire is refused before the queue, so
	// that the writer cannot fail on it and take the session down.
	if err := c.SendJMI(mapping.JMI{From: bobPh, To: alice, Kind: "reject", ID: "x", Reason: "not a name"}); err == nil || errors.Is(err, ErrLinkDown) {
		t.Fatalf("bad reason: %v", err)
	}
	j := testJingle()
	j.Info = []mapping.JingleInfo{{XMLName: xml.Name{Local: "a<b"}}}
	if err := c.SendJingle(context.Background(), bobPh, alice, j); err == nil || errors.Is(err, ErrLinkDown) {
		t.Fatalf("bad info element: %v", err)
	}
}

func TestJMIIn(t *testing.T) {
	h, cs := startCalls(t, nil)
	h.conn.send(`<message from='alice@localhost/laptop' to='bob@gw.test' type='chat' id='p1'>` +
		`<propose xmlns='urn:xmpp:jingle-message:0' id='sid-1'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose>` +
		`<store xmlns='urn:xmpp:hints'/></message>`)
	m := cs.nextJMI(t)
	want := mapping.JMI{From: alice, To: mapping.JID{Local: "bob", Domain: testDomain}, Kind: "propose", ID: "sid-1", Media: []string{"audio"}}
	if m.From != want.From || m.To != want.To || m.Kind != want.Kind || m.ID != want.ID || !slices.Equal(m.Media, want.Media) {
		t.Fatalf("got %+v want %+v", m, want)
	}
	h.conn.send(`<message from='alice@localhost/laptop' to='bob@gw.test' type='chat' id='p2'>` +
		`<retract xmlns='urn:xmpp:jingle-message:0' id='sid-1'><reason xmlns='urn:xmpp:jingle:1'><cancel/><text>Retracted</text></reason></retract>` +
		`<store xmlns='urn:xmpp:hints'/></message>`)
	if m := cs.nextJMI(t); m.Kind != "retract" || m.Reason != "cancel" || m.ID != "sid-1" {
		t.Fatalf("retract: %+v", m)
	}
	// Not for the message capability.
	h.rt.expectNone(t, 100*time.Millisecond)
	// A JMI element without an id, or a propose without media
	// (XEP-0353 §3.1), is a call signal stox cannot act on: dropped, and
	// not a chat message either.
	h.conn.send(`<message from='alice@localhost/laptop' to='bob@gw.test' type='chat' id='p3'><propose xmlns='urn:xmpp:jingle-message:0'/><body>x</body></message>`)
	h.conn.send(`<message from='alice@localhost/laptop' to='bob@gw.test' type='chat' id='p4'><propose xmlns='urn:xmpp:jingle-message:0' id='x'/></message>`)
	h.conn.send(`<message from='alice@localhost/laptop' to='bob@gw.test' type='chat' id='p5'><body>plain</body></message>`)
	if m := h.rt.next(t); m.ID != "p5" {
		t.Fatalf("message: %+v", m)
	}
	select {
	case m := <-cs.jmis:
		t.Fatalf("malformed JMI reached the handler: %+v", m)
	default:
	}
	if got := metricValue(h.c.met.jmi.WithLabelValues("in", "propose")); got != 1 {
		t.Errorf("jmi in propose = %v", got)
	}
}

func TestJMIOutAndBounce(t *testing.T) {
	h, cs := startCalls(t, nil)
	bob := bobPh.Bare()
	if err := h.c.SendJMI(mapping.JMI{From: bob, To: alice.Bare(), Kind: "propose", ID: "sid-2", Media: []string{"audio"}}); err != nil {
		t.Fatal(err)
	}
	e := h.conn.readKind(t, "message")
	want := `<message xmlns='jabber:component:accept' from='bob@gw.test' to='alice@localhost' type='chat'>` +
		`<propose xmlns='urn:xmpp:jingle-message:0' id='sid-2'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose>` +
		`<store xmlns='urn:xmpp:hints'/></message>`
	var wn node
	if err := xml.Unmarshal([]byte(want), &wn); err != nil {
		t.Fatal(err)
	}
	got := e.node
	got.Attrs = dropAttr(got.Attrs, "id")
	if a, b := canon(got), canon(wn); a != b {
		t.Fatalf("wrote %s\n got  %s\n want %s", e.raw, a, b)
	}

	// The bounce, without the original payload, reaches ReceiveJMI.
	h.conn.send(`<message from='alice@localhost' to='bob@gw.test' type='error' id='` + e.attr("id") + `'><error type='cancel'>` +
		`<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
	m := cs.nextJMI(t)
	if m.Kind != "error" || m.ID != "sid-2" || m.From != alice.Bare() || m.To != bob || m.Reason != "service-unavailable" {
		t.Fatalf("bounce: %+v", m)
	}
	h.rt.expectNone(t, 100*time.Millisecond)

	// reject with a reason, from the full JID.
	if err := h.c.SendJMI(mapping.JMI{From: bobPh, To: alice, Kind: "reject", ID: "sid-3", Reason: "busy"}); err != nil {
		t.Fatal(err)
	}
	e = h.conn.readKind(t, "message")
	r := e.child("reject")
	if e.attr("from") != "bob@gw.test/phone" || r == nil || r.attr("id") != "sid-3" || r.child("reason") == nil || r.child("reason").child("busy") == nil || e.child("store") == nil {
		t.Fatalf("reject: %s", e.raw)
	}
	// A bounce that carries the original payload but an unknown id.
	h.conn.send(`<message from='alice@localhost/laptop' to='bob@gw.test/phone' type='error' id='zz'>` +
		`<proceed xmlns='urn:xmpp:jingle-message:0' id='sid-4'/><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
	if m := cs.nextJMI(t); m.Kind != "error" || m.ID != "sid-4" || m.Reason != "item-not-found" {
		t.Fatalf("payload bounce: %+v", m)
	}
	// An ordinary bounce still goes to the message capability.
	h.conn.send(`<message from='alice@localhost' to='bob@gw.test' type='error' id='other'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
	if m := h.rt.next(t); m.ID != "other" || m.Type != "error" {
		t.Fatalf("bounce to im: %+v", m)
	}
}

// A message to the contact resource reaches the message capability as
// addressed to the bare JID; other resources are left alone.
func TestMessageToContactResource(t *testing.T) {
	h, _ := startCalls(t, nil)
	h.conn.send(`<message from='alice@localhost/laptop' to='bob@gw.test/phone' type='chat' id='m1'><body>hi</body></message>`)
	if m := h.rt.next(t); m.To != bobPh.Bare() || m.Body != "hi" {
		t.Fatalf("to /phone: %+v", m)
	}
	h.conn.send(`<message from='alice@localhost/laptop' to='bob@gw.test/desk' type='chat' id='m2'><body>hi</body></message>`)
	if m := h.rt.next(t); m.To.Resource != "desk" {
		t.Fatalf("to /desk: %+v", m)
	}
}

func discoReply(t *testing.T, h *harness, to, node string) elem {
	t.Helper()
	n := ""
	if node != "" {
		n = ` node='` + node + `'`
	}
	h.conn.send(`<iq type='get' id='d' from='alice@localhost/laptop' to='` + to + `'><query xmlns='http://jabber.org/protocol/disco#info'` + n + `/></iq>`)
	return h.conn.readKind(t, "iq")
}

// discoOf returns the identities and features of a disco#info result.
func discoOf(e elem) ([]capsIdentity, []string) {
	var ids []capsIdentity
	var feats []string
	q := e.child("query")
	if q == nil {
		return nil, nil
	}
	for _, k := range q.Kids {
		switch k.XMLName.Local {
		case "identity":
			ids = append(ids, capsIdentity{Category: k.attr("category"), Type: k.attr("type"), Lang: k.attr("lang"), Name: k.attr("name")})
		case "feature":
			feats = append(feats, k.attr("var"))
		}
	}
	return ids, feats
}

func TestContactDiscoAndCaps(t *testing.T) {
	h, _ := startCalls(t, nil)
	want := []string{nsDisco, nsGateway, nsPing, featJID,
		"urn:xmpp:jingle:1", "urn:xmpp:jingle:apps:rtp:1", "urn:xmpp:jingle:apps:rtp:audio",
		"urn:xmpp:jingle:transports:ice-udp:1", "urn:xmpp:jingle:apps:dtls:0", "urn:xmpp:jingle-message:0", "urn:ietf:rfc:3264"}
	slices.Sort(want)
	var ver string
	for _, to := range []string{"bob@gw.test", "bob@gw.test/phone"} {
		e := discoReply(t, h, to, "")
		ids, feats := discoOf(e)
		slices.Sort(feats)
		if e.attr("type") != "result" || len(ids) != 1 || ids[0] != (capsIdentity{Category: "client", Type: "phone"}) || !slices.Equal(feats, want) {
			t.Fatalf("disco of %s: %v %v\n%s", to, ids, feats, e.raw)
		}
		// The caps ver is the XEP-0115 §5.1 hash of what the wire says.
		ver = capsVer(ids, feats)
	}
	if ver != h.c.disco.ver {
		t.Fatalf("ver %q != advertised %q", ver, h.c.disco.ver)
	}

	// node#ver answers the same, with the node echoed (XEP-0115 §6.2).
	node := capsNode + "#" + ver
	e := discoReply(t, h, "bob@gw.test/phone", node)
	ids, feats := discoOf(e)
	if e.attr("type") != "result" || e.child("query").attr("node") != node || capsVer(ids, feats) != ver {
		t.Fatalf("node#ver: %s", e.raw)
	}
	// Any other node is unknown.
	e = discoReply(t, h, "bob@gw.test", capsNode+"#nope")
	if sc, _, _ := errorConds(e); sc != "item-not-found" {
		t.Fatalf("other node: %s", e.raw)
	}
	// The gateway's own disco#info is unchanged.
	e = discoReply(t, h, "gw.test", "")
	ids, feats = discoOf(e)
	if len(ids) != 1 || ids[0].Category != "gateway" || slices.Contains(feats, mapping.NSJingle) {
		t.Fatalf("gateway disco: %s", e.raw)
	}
}

// Without calls, a contact's disco#info has no call features.
func TestContactDiscoWithoutCalls(t *testing.T) {
	h := start(t, true, nil)
	_, feats := discoOf(discoReply(t, h, "bob@gw.test", ""))
	if slices.Contains(feats, mapping.NSJingle) || slices.Contains(feats, mapping.NSJMI) {
		t.Fatalf("features %v", feats)
	}
}

// XEP-0115 §5.2's worked example.
func TestCapsVerExample(t *testing.T) {
	got := capsVer([]capsIdentity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}},
		[]string{"http://jabber.org/protocol/muc", "http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#items"})
	if got != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Fatalf("ver = %q", got)
	}
	// XEP-0115 §5.3's identities sort by category/type/lang.
	a := capsVer([]capsIdentity{{"client", "pc", "en", "Psi"}, {"client", "pc", "el", "Ψ"}}, nil)
	b := capsVer([]capsIdentity{{"client", "pc", "el", "Ψ"}, {"client", "pc", "en", "Psi"}}, nil)
	if a != b {
		t.Fatal("identity order matters")
	}
}

func TestContactPresenceWithCaps(t *testing.T) {
	h, _ := startCalls(t, nil)
	bob := bobPh.Bare()
	to := alice.Bare()
	capsEl := `<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://stox.dev/caps' ver='` + h.c.disco.ver + `'/>`
	tests := []struct {
		name string
		p    mapping.Presence
		want string
	}{
		{"available from the bare JID", mapping.Presence{ID: "a", From: bob, To: to, Show: "dnd"},
			`<presence from='bob@gw.test/phone' to='alice@localhost' id='a'><show>dnd</show>` + capsEl + `</presence>`},
		{"a tuple's resource is kept", mapping.Presence{ID: "b", From: mapping.JID{Local: "bob", Domain: testDomain, Resource: "desk"}, To: to},
			`<presence from='bob@gw.test/desk' to='alice@localhost' id='b'>` + capsEl + `</presence>`},
		{"unavailable, no caps", mapping.Presence{ID: "c", From: bob, To: to, Type: "unavailable"},
			`<presence from='bob@gw.test/phone' to='alice@localhost' id='c' type='unavailable'/>`},
		{"subscription stays bare", mapping.Presence{ID: "d", From: bob, To: to, Type: "subscribed"},
			`<presence from='bob@gw.test' to='alice@localhost' id='d' type='subscribed'/>`},
		{"the gateway's own presence", mapping.Presence{ID: "e", To: to},
			`<presence from='gw.test' to='alice@localhost' id='e'/>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.c.SendPresence(tt.p); err != nil {
				t.Fatal(err)
			}
			got := h.conn.readKind(t, "presence")
			var want node
			if err := xml.Unmarshal([]byte(strings.Replace(tt.want, "<presence ", "<presence xmlns='jabber:component:accept' ", 1)), &want); err != nil {
				t.Fatal(err)
			}
			if a, b := canon(got.node), canon(want); a != b {
				t.Errorf("wrote %s\n got  %s\n want %s", got.raw, a, b)
			}
		})
	}
}

// Without calls, presence is sent as given.
func TestPresenceWithoutCalls(t *testing.T) {
	h := start(t, true, nil)
	if err := h.c.SendPresence(mapping.Presence{From: bobPh.Bare(), To: alice}); err != nil {
		t.Fatal(err)
	}
	e := h.conn.readKind(t, "presence")
	if e.attr("from") != "bob@gw.test" || e.child("c") != nil {
		t.Fatalf("presence: %s", e.raw)
	}
}

func FuzzDecodeJingle(f *testing.F) {
	f.Add([]byte(initiateIQ[strings.Index(initiateIQ, "<jingle"):strings.Index(initiateIQ, "</iq>")]))
	f.Add([]byte(`<jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='a'><reason><busy/><text>x</text></reason></jingle>`))
	f.Add([]byte(`<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='a'><ringing xmlns='urn:xmpp:jingle:apps:rtp:info:1'/></jingle>`))
	f.Add([]byte(`<jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='a'><content creator='initiator' name='0'><transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'><candidate/></transport></content></jingle>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := decodeJingle(xml.NewDecoder(bytes.NewReader(data)))
		if err != nil {
			return
		}
		// What decodes is sent again as an IQ whose <jingle/> decodes to
		// the same session and action.
		payload, err := xml.Marshal(j)
		if err != nil {
			return // a name encoding/xml cannot write back; SendJingle reports it
		}
		var buf bytes.Buffer
		e := xml.NewEncoder(&buf)
		it := &outItem{m: mapping.XMPPMessage{From: bobPh, To: alice}, id: "x", iq: true, payload: payload}
		if err := encodeJingleIQ(e, it, testDomain); err != nil {
			t.Fatalf("encode: %v", err)
		}
		if err := e.Flush(); err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(&buf)
		if _, err := firstStart(d); err != nil {
			t.Fatal(err)
		}
		j2, err := decodeJingle(d)
		if err != nil {
			t.Fatalf("re-decode %s: %v", buf.String(), err)
		}
		if j2.SID != j.SID || j2.Action != j.Action || len(j2.Contents) != len(j.Contents) {
			t.Fatalf("round trip %+v / %+v", j, j2)
		}
	})
}

func FuzzDecodeJMI(f *testing.F) {
	f.Add([]byte(`<message from='alice@localhost/laptop' to='bob@gw.test' type='chat' id='p1'><propose xmlns='urn:xmpp:jingle-message:0' id='sid-1'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose><store xmlns='urn:xmpp:hints'/></message>`))
	f.Add([]byte(`<message from='a@b/c' to='d@e' type='chat'><reject xmlns='urn:xmpp:jingle-message:0' id='s'><reason xmlns='urn:xmpp:jingle:1'><busy/><text>Busy</text></reason></reject></message>`))
	f.Add([]byte(`<message from='a@b/c' to='d@e' type='error' id='z'><proceed xmlns='urn:xmpp:jingle-message:0' id='s'/><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _, ext, err := decodeMessageExt(xml.NewDecoder(bytes.NewReader(data)))
		if err != nil {
			return
		}
		j, found, err := jmiFromWire(ext)
		if !found || err != nil {
			return
		}
		j.From, j.To = m.From, m.To
		// A decoded JMI is sent again as one that decodes the same.
		el, err := mapping.EncodeJMI(j)
		if err != nil {
			t.Fatalf("EncodeJMI(%+v): %v", j, err)
		}
		payload, err := marshalPayload(el)
		if err != nil {
			return // a reason name XML cannot carry; SendJMI refuses it
		}
		var buf bytes.Buffer
		e := xml.NewEncoder(&buf)
		if err := encodeJMI(e, &outItem{m: mapping.XMPPMessage{From: j.From, To: j.To}, id: "x", payload: payload}, testDomain); err != nil {
			t.Fatalf("encode: %v", err)
		}
		if err := e.Flush(); err != nil {
			t.Fatal(err)
		}
		m2, _, ext2, err := decodeMessageExt(xml.NewDecoder(&buf))
		if err != nil {
			t.Fatalf("re-decode %s: %v", buf.String(), err)
		}
		j2, found, err := jmiFromWire(ext2)
		j2.From, j2.To = m2.From, m2.To
		if !found || err != nil || j2.Kind != j.Kind || j2.ID != j.ID || j2.From != j.From || j2.To != j.To || !slices.Equal(j2.Media, j.Media) {
			t.Fatalf("round trip %+v / %+v\n%s", j, j2, buf.String())
		}
	})
}

// A proceed queued before a session-initiate reaches the wire first
// (XEP-0353 §3.5): both go through the one send queue.
func TestJMIThenJingleInOrder(t *testing.T) {
	h, _ := startCalls(t, nil)
	if err := h.c.SendJMI(mapping.JMI{From: bobPh, To: alice, Kind: "proceed", ID: "s-9"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.c.SendJingle(context.Background(), bobPh, alice, testJingle()) }()
	first := h.conn.read(t)
	for first.XMLName.Local == "presence" {
		first = h.conn.read(t)
	}
	second := h.conn.readKind(t, "iq")
	if first.XMLName.Local != "message" || first.child("proceed") == nil || second.child("jingle") == nil {
		t.Fatalf("order: %s then %s", first.raw, second.raw)
	}
	h.conn.send(`<iq type='result' id='` + second.attr("id") + `' from='alice@localhost/laptop' to='bob@gw.test/phone'/>`)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestAnswersFor(t *testing.T) {
	to := mapping.JID{Local: "alice", Domain: "localhost", Resource: "laptop"}
	for _, tt := range []struct {
		from string
		want bool
	}{
		{"alice@localhost/laptop", true},
		{"Alice@LOCALHOST/laptop", true},
		{"alice@localhost", true},
		{"localhost", true},
		{"alice@localhost/Laptop", false},
		{"alice@localhost/other", false},
		{"mallory@localhost/laptop", false},
		{"alice@evil.example/laptop", false},
		{"evil.example", false},
	} {
		f, err := mapping.ParseJID(tt.from)
		if err != nil {
			t.Fatal(err)
		}
		if got := answersFor(f, to); got != tt.want {
			t.Errorf("answersFor(%s) = %v", tt.from, got)
		}
	}
}
