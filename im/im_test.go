package im

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stox.dev/stox/clock"
	"stox.dev/stox/mapping"
)

// The core's tests run it between in-process fakes of both stacks; the
// conformance suite runs the same flows between real peers.

var testDomains = mapping.Domains{XMPP: "sip.example", SIP: "sip.example"}

// epoch is where every test's fake clock starts.
var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// within bounds every wait of these tests for another goroutine.
const within = 5 * time.Second

type fakeXMPP struct {
	mu   sync.Mutex
	up   bool
	full bool
	sent []mapping.XMPPMessage
	// ackWith decides each ack; nil means ack(nil). noAck: the server never
	// acknowledges.
	ackWith func(mapping.XMPPMessage) error
	noAck   bool
	got     chan mapping.XMPPMessage
}

func newFakeXMPP() *fakeXMPP { return &fakeXMPP{up: true, got: make(chan mapping.XMPPMessage, 1024)} }

func (f *fakeXMPP) Up() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.up }

func (f *fakeXMPP) Send(m mapping.XMPPMessage, ack func(error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.up {
		return mapping.ErrLinkDown
	}
	if f.full {
		return mapping.ErrQueueFull
	}
	f.sent = append(f.sent, m)
	f.got <- m
	if ack != nil && !f.noAck {
		var err error
		if f.ackWith != nil {
			err = f.ackWith(m)
		}
		go ack(err)
	}
	return nil
}

func (f *fakeXMPP) next(t *testing.T) mapping.XMPPMessage {
	t.Helper()
	return recv(t, f.got, "no stanza sent to XMPP")
}

// recv takes the next value from ch, or fails the test after a bounded wait.
func recv[T any](t *testing.T, ch <-chan T, missing string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(within):
		t.Fatal(missing)
		var zero T
		return zero
	}
}

// none asserts that no stanza was sent to XMPP. Callers make sure first
// that any stanza due would already have been sent.
func (f *fakeXMPP) none(t *testing.T) {
	t.Helper()
	select {
	case m := <-f.got:
		t.Fatalf("unexpected stanza %+v", m)
	default:
	}
}

type sipCall struct {
	m mapping.SIPMessage
	t mapping.Target
}

type fakeSIP struct {
	mu       sync.Mutex
	calls    []sipCall
	inflight map[string]int
	overlap  bool
	respond  func(mapping.SIPMessage, mapping.Target) (mapping.Response, error)
	got      chan sipCall
}

func newFakeSIP() *fakeSIP {
	return &fakeSIP{inflight: map[string]int{}, got: make(chan sipCall, 4096)}
}

func (f *fakeSIP) SendMessage(ctx context.Context, m mapping.SIPMessage, t mapping.Target) (mapping.Response, error) {
	key := t.URI.AOR() + t.Destination
	f.mu.Lock()
	f.inflight[key]++
	if f.inflight[key] > 1 {
		f.overlap = true
	}
	f.calls = append(f.calls, sipCall{m, t})
	f.mu.Unlock()
	time.Sleep(50 * time.Microsecond) // widen the window an overlap would need
	res, err := mapping.Response{Status: 200, Reason: "OK"}, error(nil)
	if f.respond != nil {
		res, err = f.respond(m, t)
	}
	f.mu.Lock()
	f.inflight[key]--
	f.mu.Unlock()
	f.got <- sipCall{m, t}
	return res, err
}

func (f *fakeSIP) next(t *testing.T) sipCall {
	t.Helper()
	return recv(t, f.got, "no MESSAGE sent to SIP")
}

type fakeLocator struct {
	bindings map[string][]mapping.Binding
	accounts map[string]bool
}

func (l fakeLocator) Bindings(aor string) []mapping.Binding { return l.bindings[aor] }
func (l fakeLocator) AccountExists(_ context.Context, user string) (bool, error) {
	return l.accounts[user], nil
}

type fakeOutbox struct {
	mu       sync.Mutex
	next     int64
	entries  map[int64]mapping.OutboxEntry
	appends  []int       // entries per AppendOutbox call
	accepted []time.Time // Accepted of every entry appended
	// hold, when set, keeps the first AppendOutbox waiting until it is
	// closed; holding is closed once that call has begun.
	hold, holding chan struct{}
}

func newFakeOutbox() *fakeOutbox { return &fakeOutbox{entries: map[int64]mapping.OutboxEntry{}} }

func (o *fakeOutbox) AppendOutbox(_ context.Context, es []mapping.OutboxEntry) ([]int64, error) {
	o.mu.Lock()
	hold := o.hold
	o.hold = nil
	o.mu.Unlock()
	if hold != nil {
		close(o.holding)
		<-hold
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.appends = append(o.appends, len(es))
	for _, e := range es {
		o.accepted = append(o.accepted, e.Accepted)
	}
	ids := make([]int64, len(es))
	for i, e := range es {
		o.next++
		e.ID = o.next
		o.entries[e.ID] = e
		ids[i] = e.ID
	}
	return ids, nil
}

func (o *fakeOutbox) DeleteOutbox(_ context.Context, ids []int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range ids {
		delete(o.entries, id)
	}
	return nil
}

func (o *fakeOutbox) PendingOutbox(context.Context) ([]mapping.OutboxEntry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var es []mapping.OutboxEntry
	for id := int64(1); id <= o.next; id++ {
		if e, ok := o.entries[id]; ok {
			es = append(es, e)
		}
	}
	return es, nil
}

func (o *fakeOutbox) len() int { o.mu.Lock(); defer o.mu.Unlock(); return len(o.entries) }

type harness struct {
	clk  *clock.Fake
	core *Service
	x    *fakeXMPP
	s    *fakeSIP
	ob   *fakeOutbox
	loc  fakeLocator
}

func startCore(t *testing.T, cfg Config, loc fakeLocator, ob *fakeOutbox) *harness {
	t.Helper()
	if cfg.Domains == (mapping.Domains{}) {
		cfg.Domains = testDomains
	}
	if ob == nil {
		ob = newFakeOutbox()
	}
	h := &harness{clk: clock.NewFake(epoch), x: newFakeXMPP(), s: newFakeSIP(), ob: ob, loc: loc}
	cfg.Clock = h.clk
	h.core = New(cfg, h.x, h.s, loc, ob)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.core.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-h.core.Ready():
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	}
	return h
}

var alice = mapping.JID{Local: "alice", Domain: "xmpp.example", Resource: "phone"}

func bobAt(bindings ...string) fakeLocator {
	loc := fakeLocator{bindings: map[string][]mapping.Binding{}, accounts: map[string]bool{"bob": true}}
	for _, src := range bindings {
		loc.bindings["sip:bob@sip.example"] = append(loc.bindings["sip:bob@sip.example"],
			mapping.Binding{AOR: "sip:bob@sip.example", Contact: "sip:bob@" + src, Source: "udp:" + src})
	}
	return loc
}

func msgToBob(id, body string) mapping.XMPPMessage {
	return mapping.XMPPMessage{ID: id, From: alice, To: mapping.JID{Local: "bob", Domain: "sip.example"}, Type: "chat", Body: body}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestXMPPToSIPInOrderOnePending(t *testing.T) {
	h := startCore(t, Config{}, bobAt("127.0.0.1:5070"), nil)
	const n = 200
	for i := range n {
		h.core.ReceiveXMPP(msgToBob(fmt.Sprint(i), fmt.Sprintf("message %d", i)))
	}
	for i := range n {
		c := h.s.next(t)
		if got, want := string(c.m.Body), fmt.Sprintf("message %d", i); got != want {
			t.Fatalf("message %d: body %q, want %q (out of order)", i, got, want)
		}
		if c.t.Destination != "udp:127.0.0.1:5070" {
			t.Fatalf("sent to %q, want the binding's source", c.t.Destination)
		}
		if c.m.From.User != "alice" || c.m.From.Host != "xmpp.example" || c.m.From.GR != "phone" {
			t.Fatalf("From = %+v, want sip:alice@xmpp.example;gr=phone (RFC 7572 §5)", c.m.From)
		}
	}
	h.s.mu.Lock()
	overlap := h.s.overlap
	h.s.mu.Unlock()
	if overlap {
		t.Error("two MESSAGEs to one destination were pending at once (RFC 3428 §8)")
	}
	waitFor(t, "outbox drained", func() bool { return h.ob.len() == 0 })
}

// Group commit: the messages that arrive while one outbox transaction runs
// go into the next one together.
func TestXMPPToSIPGroupCommit(t *testing.T) {
	ob := newFakeOutbox()
	hold, holding := make(chan struct{}), make(chan struct{})
	ob.hold, ob.holding = hold, holding
	h := startCore(t, Config{}, bobAt("127.0.0.1:5070"), ob)
	const n = 50
	h.core.ReceiveXMPP(msgToBob("0", "message 0"))
	recv(t, holding, "the first message was not appended to the outbox")
	for i := 1; i < n; i++ { // queued while the first transaction is held
		h.core.ReceiveXMPP(msgToBob(fmt.Sprint(i), fmt.Sprintf("message %d", i)))
	}
	close(hold)
	for i := range n {
		if c := h.s.next(t); string(c.m.Body) != fmt.Sprintf("message %d", i) {
			t.Fatalf("message %d: body %q (out of order)", i, c.m.Body)
		}
	}
	ob.mu.Lock()
	appends := slices.Clone(ob.appends)
	ob.mu.Unlock()
	if !slices.Equal(appends, []int{1, n - 1}) {
		t.Fatalf("outbox appends of %v messages, want [1 %d]: one transaction for what waited behind the first", appends, n-1)
	}
}

// An accepted message is stamped by the service's clock.
func TestXMPPToSIPAcceptedTime(t *testing.T) {
	h := startCore(t, Config{}, bobAt("127.0.0.1:5070"), nil)
	h.clk.Advance(time.Minute)
	h.core.ReceiveXMPP(msgToBob("t1", "hi"))
	h.s.next(t)
	h.ob.mu.Lock()
	defer h.ob.mu.Unlock()
	if want := []time.Time{epoch.Add(time.Minute)}; !slices.Equal(h.ob.accepted, want) {
		t.Fatalf("Accepted = %v, want the clock's %v", h.ob.accepted, want)
	}
}

func TestXMPPToSIPForksToEveryBinding(t *testing.T) {
	h := startCore(t, Config{}, bobAt("127.0.0.1:5070", "127.0.0.1:5071"), nil)
	h.s.respond = func(_ mapping.SIPMessage, tg mapping.Target) (mapping.Response, error) {
		if tg.Destination == "udp:127.0.0.1:5070" {
			return mapping.Response{Status: 486, Reason: "Busy Here"}, nil
		}
		return mapping.Response{Status: 200, Reason: "OK"}, nil
	}
	h.core.ReceiveXMPP(msgToBob("f1", "hi"))
	h.s.next(t)
	h.s.next(t)
	// A failed message is bounced before its outbox entry is deleted.
	waitFor(t, "outbox drained", func() bool { return h.ob.len() == 0 })
	h.x.none(t) // one binding answered 200
}

func TestXMPPToSIPFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		loc    fakeLocator
		trunk  bool
		status int
		to     string
		want   mapping.Condition
	}{
		{name: "offline account", loc: bobAt(), to: "bob", want: mapping.RecipientUnavailable},
		{name: "no such account", loc: bobAt(), to: "nobody", want: mapping.ItemNotFound},
		{name: "busy", loc: bobAt("127.0.0.1:5070"), to: "bob", status: 486, want: mapping.RecipientUnavailable},
		{name: "not found", loc: bobAt("127.0.0.1:5070"), to: "bob", status: 404, want: mapping.ItemNotFound},
		{name: "declined", loc: bobAt("127.0.0.1:5070"), to: "bob", status: 603, want: mapping.RecipientUnavailable},
		{name: "trunk 404", loc: bobAt(), trunk: true, to: "carol", status: 404, want: mapping.ItemNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startCore(t, Config{Trunk: tc.trunk}, tc.loc, nil)
			if tc.status != 0 {
				h.s.respond = func(mapping.SIPMessage, mapping.Target) (mapping.Response, error) {
					return mapping.Response{Status: tc.status}, nil
				}
			}
			m := msgToBob("e1", "hi")
			m.To.Local = tc.to
			h.core.ReceiveXMPP(m)
			e := h.x.next(t)
			if e.Type != "error" || e.Error == nil || e.Error.Condition != tc.want {
				t.Fatalf("got %+v (error %+v), want error %s", e, e.Error, tc.want)
			}
			if e.ID != "e1" || e.To != alice || e.From != m.To {
				t.Fatalf("error stanza addressed id=%q to=%v from=%v; want the original id, swapped addresses", e.ID, e.To, e.From)
			}
			if tc.trunk {
				c := h.s.next(t)
				if c.t.Destination != "" || c.t.URI.User != "carol" {
					t.Fatalf("trunk target %+v, want sip:carol@S with no fixed destination", c.t)
				}
			}
			waitFor(t, "outbox drained", func() bool { return h.ob.len() == 0 })
		})
	}
}

func TestXMPPToSIPPerDestinationBound(t *testing.T) {
	h := startCore(t, Config{PerDestination: 2}, bobAt("127.0.0.1:5070"), nil)
	release := make(chan struct{})
	h.s.respond = func(mapping.SIPMessage, mapping.Target) (mapping.Response, error) {
		<-release
		return mapping.Response{Status: 200}, nil
	}
	for i := range 3 {
		h.core.ReceiveXMPP(msgToBob(fmt.Sprint(i), "x"))
	}
	e := h.x.next(t)
	if e.Error == nil || e.Error.Condition != mapping.ResourceConstraint || e.ID != "2" {
		t.Fatalf("third message: got %+v, want resource-constraint for id 2", e)
	}
	close(release)
	waitFor(t, "queue drained", func() bool { return h.ob.len() == 0 })
}

func TestOutboxRecoveredBeforeNewMessages(t *testing.T) {
	ob := newFakeOutbox()
	_, _ = ob.AppendOutbox(t.Context(), []mapping.OutboxEntry{{Message: msgToBob("old1", "old 1")}, {Message: msgToBob("old2", "old 2")}})
	h := startCore(t, Config{}, bobAt("127.0.0.1:5070"), ob)
	h.core.ReceiveXMPP(msgToBob("new", "new"))
	for _, want := range []string{"old 1", "old 2", "new"} {
		if c := h.s.next(t); string(c.m.Body) != want {
			t.Fatalf("got %q, want %q", c.m.Body, want)
		}
	}
	waitFor(t, "outbox drained", func() bool { return ob.len() == 0 })
}

func sipMsgTo(user, host string) mapping.SIPMessage {
	return mapping.SIPMessage{
		RequestURI:  mapping.URI{Scheme: "sip", User: user, Host: host},
		To:          mapping.URI{Scheme: "sip", User: user, Host: host},
		From:        mapping.URI{Scheme: "sip", User: "bob", Host: "sip.example"},
		CallID:      "c1",
		ContentType: "text/plain",
		Body:        []byte("hello"),
	}
}

func TestSIPToXMPP(t *testing.T) {
	bounce := func(c mapping.Condition) error { return &mapping.Failure{Condition: c} }
	for _, tc := range []struct {
		name       string
		resource   string // the Request-URI's gr: a full JID (RFC 7572 §4)
		up, full   bool
		ack        error
		wantStatus int
		retry      bool
	}{
		{name: "acknowledged", up: true, wantStatus: 202},
		{name: "acknowledged, full JID", resource: "phone", up: true, wantStatus: 202},
		// RFC 7247 §7.1 Table 2, note 2: 4xx for a full JID, 6xx for a bare one.
		{name: "item-not-found, bare JID", up: true, ack: bounce(mapping.ItemNotFound), wantStatus: 604},
		{name: "item-not-found, full JID", resource: "phone", up: true, ack: bounce(mapping.ItemNotFound), wantStatus: 404},
		{name: "recipient-unavailable, bare JID", up: true, ack: bounce(mapping.RecipientUnavailable), wantStatus: 600},
		{name: "recipient-unavailable, full JID", resource: "phone", up: true, ack: bounce(mapping.RecipientUnavailable), wantStatus: 480},
		{name: "forbidden, bare JID", up: true, ack: bounce(mapping.Forbidden), wantStatus: 603},
		{name: "forbidden, full JID", resource: "phone", up: true, ack: bounce(mapping.Forbidden), wantStatus: 403},
		// Note 5: never 503; 403 or 405, closest in meaning. stox answers
		// 403 for a bare JID (it hides whether the account exists) and 405
		// for a full JID (the client lacks the feature).
		{name: "service-unavailable, bare JID", up: true, ack: bounce(mapping.ServiceUnavailable), wantStatus: 403},
		{name: "service-unavailable, full JID", resource: "phone", up: true, ack: bounce(mapping.ServiceUnavailable), wantStatus: 405},
		{name: "link lost before ack", up: true, ack: fmt.Errorf("session lost: %w", mapping.ErrLinkDown), wantStatus: 480, retry: true},
		{name: "link down", up: false, wantStatus: 480, retry: true},
		{name: "queue full", up: true, full: true, wantStatus: 503, retry: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startCore(t, Config{}, bobAt(), nil)
			h.x.up, h.x.full = tc.up, tc.full
			h.x.ackWith = func(mapping.XMPPMessage) error { return tc.ack }
			m := sipMsgTo("alice", "xmpp.example")
			m.RequestURI.GR = tc.resource
			out := h.core.ReceiveSIP(t.Context(), m)
			if out.Status != tc.wantStatus {
				t.Fatalf("status %d, want %d", out.Status, tc.wantStatus)
			}
			if tc.retry != (out.RetryAfter > 0) {
				t.Fatalf("Retry-After %v, want set=%v", out.RetryAfter, tc.retry)
			}
			if tc.up && !tc.full {
				want := mapping.JID{Local: "alice", Domain: "xmpp.example", Resource: tc.resource}
				if s := h.x.next(t); s.To != want || s.Type != "normal" || s.Body != "hello" || s.ID == "" {
					t.Fatalf("stanza %+v: want a type=normal message with an id to %v (RFC 7572 §4)", s, want)
				}
			}
		})
	}
}

// The XMPP server's acknowledgement is awaited AckTimeout on the service's
// clock, then the MESSAGE is answered 504.
func TestSIPToXMPPAckTimeout(t *testing.T) {
	const ackTimeout = 8 * time.Second
	h := startCore(t, Config{AckTimeout: ackTimeout}, bobAt(), nil)
	h.x.noAck = true
	out := make(chan mapping.Outcome, 1)
	go func() { out <- h.core.ReceiveSIP(t.Context(), sipMsgTo("alice", "xmpp.example")) }()
	h.x.next(t)
	h.waitArmed(t, ackTimeout)
	h.clk.Advance(ackTimeout - time.Nanosecond)
	select {
	case o := <-out:
		t.Fatalf("answered %d before AckTimeout ran out", o.Status)
	default:
	}
	h.clk.Advance(time.Nanosecond)
	if o := h.outcome(t, out); o.Status != 504 {
		t.Fatalf("status %d after AckTimeout, want 504", o.Status)
	}
}

// ErrorGrace: an error the recipient returns soon after the server's
// acknowledgement still becomes the SIP response; one after it becomes a
// notice to the sender, the MESSAGE having been answered 202.
func TestSIPToXMPPErrorGrace(t *testing.T) {
	const grace = 2 * time.Second
	start := func(t *testing.T) (*harness, mapping.XMPPMessage, chan mapping.Outcome) {
		h := startCore(t, Config{ErrorGrace: grace}, bobAt("127.0.0.1:5070"), nil)
		out := make(chan mapping.Outcome, 1)
		m := sipMsgTo("alice", "xmpp.example")
		m.RequestURI.GR = "phone"
		go func() { out <- h.core.ReceiveSIP(t.Context(), m) }()
		s := h.x.next(t)
		h.waitArmed(t, grace) // acknowledged: the grace period runs
		return h, s, out
	}
	bounce := func(h *harness, s mapping.XMPPMessage) {
		h.core.ReceiveXMPP(mapping.XMPPMessage{ID: s.ID, From: s.To, To: s.From, Type: "error",
			Error: &mapping.Failure{Condition: mapping.RecipientUnavailable}})
	}
	t.Run("error within the grace period", func(t *testing.T) {
		h, s, out := start(t)
		h.clk.Advance(grace - time.Nanosecond)
		bounce(h, s)
		if o := h.outcome(t, out); o.Status != 480 {
			t.Fatalf("status %d, want 480 (recipient-unavailable to a full JID)", o.Status)
		}
	})
	t.Run("error after it", func(t *testing.T) {
		h, s, out := start(t)
		h.clk.Advance(grace)
		if o := h.outcome(t, out); o.Status != 202 {
			t.Fatalf("status %d at the end of the grace period, want 202", o.Status)
		}
		bounce(h, s)
		if c := h.s.next(t); !strings.Contains(string(c.m.Body), "recipient-unavailable") {
			t.Fatalf("notice %q does not say why", c.m.Body)
		}
	})
}

func (h *harness) waitArmed(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	if err := h.clk.WaitArmed(ctx, d); err != nil {
		t.Fatalf("no timer armed for %v: %v", d, err)
	}
}

func (h *harness) outcome(t *testing.T, out <-chan mapping.Outcome) mapping.Outcome {
	t.Helper()
	return recv(t, out, "the MESSAGE was not answered")
}

func TestLateXMPPErrorNotifiesSIPSender(t *testing.T) {
	h := startCore(t, Config{}, bobAt("127.0.0.1:5070"), nil)
	if out := h.core.ReceiveSIP(t.Context(), sipMsgTo("alice", "xmpp.example")); out.Status != 202 {
		t.Fatalf("status %d", out.Status)
	}
	m := h.x.next(t)
	h.core.ReceiveXMPP(mapping.XMPPMessage{ID: m.ID, From: m.To, To: m.From, Type: "error",
		Error: &mapping.Failure{Condition: mapping.RemoteServerNotFound}})
	c := h.s.next(t) // the delivery failure notice to the SIP sender
	if c.t.Destination != "udp:127.0.0.1:5070" || c.m.From.User != "alice" {
		t.Fatalf("notice %+v: want from alice to bob", c.m)
	}
	if !strings.Contains(string(c.m.Body), "remote-server-not-found") {
		t.Fatalf("notice body %q does not say why", c.m.Body)
	}
}
