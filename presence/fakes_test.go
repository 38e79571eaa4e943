package presence

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

// epoch is where every test's fake clock starts.
var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var doms = mapping.Domains{XMPP: "gw.example", SIP: "sip.example"}

type fakeXMPP struct {
	mu  sync.Mutex
	out []mapping.Presence
	err error // returned instead of sending, e.g. mapping.ErrLinkDown
}

func (f *fakeXMPP) SendPresence(p mapping.Presence) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.out = append(f.out, p)
	return nil
}

func (f *fakeXMPP) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeXMPP) sent() []mapping.Presence {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.out)
}

type notifyCall struct {
	d     mapping.Dialog
	state string
	ct    string
	body  string
}

type subCall struct {
	d   mapping.Dialog
	exp time.Duration
}

type fakeSIP struct {
	mu       sync.Mutex
	notifies []notifyCall
	subs     []subCall
	onNotify func(d mapping.Dialog, state string) (mapping.Response, error)
	onSub    func(n int, d mapping.Dialog, exp time.Duration) (mapping.Response, mapping.Dialog, error)
	count    chan struct{} // optional: one token per NOTIFY (benchmark)
	clk      clock.Clock   // the service's: the 2xx of a SUBSCRIBE sets expiry by it
}

func (f *fakeSIP) Notify(ctx context.Context, d mapping.Dialog, state, ct string, body []byte) (mapping.Response, error) {
	if f.count != nil {
		f.count <- struct{}{}
		return mapping.Response{Status: 200, Reason: "OK"}, nil
	}
	f.mu.Lock()
	f.notifies = append(f.notifies, notifyCall{d, state, ct, string(body)})
	h := f.onNotify
	f.mu.Unlock()
	if h != nil {
		return h(d, state)
	}
	return mapping.Response{Status: 200, Reason: "OK"}, nil
}

func (f *fakeSIP) Subscribe(ctx context.Context, d mapping.Dialog, exp time.Duration) (mapping.Response, mapping.Dialog, error) {
	f.mu.Lock()
	f.subs = append(f.subs, subCall{d, exp})
	n := len(f.subs)
	h := f.onSub
	f.mu.Unlock()
	if h != nil {
		return h(n, d, exp)
	}
	return f.okSub(d, exp)
}

// okSub is a 2xx to a SUBSCRIBE: the dialog established, expiring exp from now.
func (f *fakeSIP) okSub(d mapping.Dialog, exp time.Duration) (mapping.Response, mapping.Dialog, error) {
	if d.RemoteTag == "" {
		d.RemoteTag = "rtag"
		d.RemoteTarget = "sip:carol@192.0.2.7"
	}
	d.Expires = f.clk.Now().Add(exp)
	return mapping.Response{Status: 200}, d, nil
}

func (f *fakeSIP) getNotifies() []notifyCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.notifies)
}

func (f *fakeSIP) getSubs() []subCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.subs)
}

type fakeStore struct {
	mu    sync.Mutex
	subs  map[subKey]mapping.Subscription
	press map[string]mapping.Presence
	puts  int
}

func newFakeStore() *fakeStore {
	return &fakeStore{subs: make(map[subKey]mapping.Subscription), press: make(map[string]mapping.Presence)}
}

func (f *fakeStore) PutSubscription(_ context.Context, s mapping.Subscription) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	f.subs[subKey{s.Kind, s.JID.Bare().String(), s.AOR}] = s
	return nil
}

func (f *fakeStore) DeleteSubscription(_ context.Context, kind string, j mapping.JID, aor string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, subKey{kind, j.Bare().String(), aor})
	return nil
}

func (f *fakeStore) Subscriptions(context.Context) ([]mapping.Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []mapping.Subscription
	for _, s := range f.subs {
		out = append(out, s)
	}
	return out, nil
}

func (f *fakeStore) PutPresence(_ context.Context, p mapping.Presence) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.press[p.From.String()] = p
	return nil
}

func (f *fakeStore) DeletePresence(_ context.Context, j mapping.JID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.press, j.String())
	return nil
}

func (f *fakeStore) Presences(context.Context) ([]mapping.Presence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []mapping.Presence
	for _, p := range f.press {
		out = append(out, p)
	}
	return out, nil
}

func (f *fakeStore) get(kind, jid, aor string) (mapping.Subscription, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.subs[subKey{kind, jid, aor}]
	return s, ok
}

type fakeLoc struct {
	mu       sync.Mutex
	accounts map[string]bool
	bindings map[string]int
}

func (f *fakeLoc) Bindings(aor string) []mapping.Binding {
	f.mu.Lock()
	defer f.mu.Unlock()
	return make([]mapping.Binding, f.bindings[aor])
}

func (f *fakeLoc) AccountExists(_ context.Context, user string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accounts[user], nil
}

func (f *fakeLoc) setBindings(aor string, n int) {
	f.mu.Lock()
	f.bindings[aor] = n
	f.mu.Unlock()
}

type harness struct {
	t      testing.TB
	clk    *clock.Fake // the service's clock unless the test gave another
	svc    *Service
	x      *fakeXMPP
	sip    *fakeSIP
	st     *fakeStore
	loc    *fakeLoc
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t testing.TB, st *fakeStore, mod func(*Config)) *harness {
	t.Helper()
	if st == nil {
		st = newFakeStore()
	}
	clk := clock.NewFake(epoch)
	cfg := Config{Domains: doms, Coalesce: 100 * time.Millisecond, RetryBase: 10 * time.Millisecond,
		ProbeWait: 50 * time.Millisecond, NotifyTimeout: time.Second, Clock: clk}
	if mod != nil {
		mod(&cfg)
	}
	h := &harness{t: t, clk: clk, x: &fakeXMPP{}, sip: &fakeSIP{clk: cfg.Clock}, st: st,
		loc: &fakeLoc{accounts: map[string]bool{"bob": true}, bindings: map[string]int{}}, done: make(chan struct{})}
	h.svc = New(cfg, h.x, h.sip, st, h.loc)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { defer close(h.done); _ = h.svc.Run(ctx) }()
	<-h.svc.ready
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	<-h.done
}

// flush waits until the write-behind queue has drained.
func (h *harness) flush() {
	select {
	case <-h.svc.wr.wait():
	case <-time.After(10 * time.Second):
		h.t.Fatal("store writes did not drain")
	}
}

// barrier returns once the event loop has handled every event queued
// before it: it queues a stanza of its own behind them (events are handled
// one at a time, in order) and waits until the stanza is in the cache.
func (h *harness) barrier() {
	h.t.Helper()
	barrierN++
	p := pres(fmt.Sprintf("barrier@xmpp.example/%d", barrierN), "barrier@gw.example", "unavailable")
	h.svc.ReceivePresence(p)
	eventually(h.t, "the event loop to catch up", func() bool {
		h.svc.mu.Lock()
		defer h.svc.mu.Unlock()
		return h.svc.pres["barrier@xmpp.example"][p.From.Resource] != nil
	})
}

var barrierN int

// quiet waits until nothing is in motion: the event loop has caught up, no
// NOTIFY is queued or in flight, no SUBSCRIBE transaction is under way, no
// authorization request waits for the paced queue and the store writes
// have drained. What has not happened by then can only happen when the
// clock moves.
func (h *harness) quiet() {
	h.t.Helper()
	h.barrier()
	eventually(h.t, "NOTIFYs and SUBSCRIBEs to finish", func() bool {
		h.svc.mu.Lock()
		defer h.svc.mu.Unlock()
		if len(h.svc.work) > 0 || len(h.svc.askQ) > 0 {
			return false
		}
		for _, sb := range h.svc.subs {
			if sb.queued || sb.inflight || sb.txn {
				return false
			}
		}
		return true
	})
	h.flush()
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) waitNotifies(n int) []notifyCall {
	h.t.Helper()
	eventually(h.t, "NOTIFYs", func() bool { return len(h.sip.getNotifies()) >= n })
	return h.sip.getNotifies()
}

func (h *harness) waitStanza(match func(mapping.Presence) bool) mapping.Presence {
	h.t.Helper()
	var got mapping.Presence
	eventually(h.t, "stanza", func() bool {
		for _, p := range h.x.sent() {
			if match(p) {
				got = p
				return true
			}
		}
		return false
	})
	return got
}

func (h *harness) hasStanza(match func(mapping.Presence) bool) bool {
	for _, p := range h.x.sent() {
		if match(p) {
			return true
		}
	}
	return false
}

func isType(from, to, typ string) func(mapping.Presence) bool {
	return func(p mapping.Presence) bool {
		return p.Type == typ && p.From.String() == from && p.To.String() == to
	}
}

func mustJID(s string) mapping.JID {
	j, err := mapping.ParseJID(s)
	if err != nil {
		panic(err)
	}
	return j
}

func mustParseURI(s string) mapping.URI {
	u, err := mapping.ParseURI(s)
	if err != nil {
		panic(err)
	}
	return u
}

func pres(from, to, typ string) mapping.Presence {
	return mapping.Presence{From: mustJID(from), To: mustJID(to), Type: typ}
}

func has(s, sub string) bool { return strings.Contains(s, sub) }

// gone asserts the subscription was deleted from the Store.
func (h *harness) gone(kind, jid, aor string) {
	h.t.Helper()
	h.flush()
	if _, ok := h.st.get(kind, jid, aor); ok {
		h.t.Fatalf("%s %s %s kept in the store", kind, jid, aor)
	}
}
