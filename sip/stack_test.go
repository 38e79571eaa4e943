package sip

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"stox.dev/stox/mapping"
)

const testDomain = "stox.test"

// memStore is an in-memory Store.
type memStore struct {
	mu       sync.Mutex
	accounts map[string]mapping.Account
	bindings map[[2]string]mapping.Binding
	puts     int
}

func newMemStore(users ...string) *memStore {
	s := &memStore{accounts: map[string]mapping.Account{}, bindings: map[[2]string]mapping.Binding{}}
	for _, u := range users {
		s.accounts[u] = mapping.Account{User: u, Realm: testDomain,
			HA1MD5: HA1("MD5", u, testDomain, "secret"), HA1SHA256: HA1("SHA-256", u, testDomain, "secret")}
	}
	return s
}

func (s *memStore) Account(_ context.Context, user string) (mapping.Account, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[user]
	return a, ok, nil
}

func (s *memStore) PutBindings(_ context.Context, bs []mapping.Binding) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	for _, b := range bs {
		s.bindings[[2]string{b.AOR, b.Contact}] = b
	}
	return nil
}

func (s *memStore) DeleteBindings(_ context.Context, bs []mapping.Binding) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range bs {
		delete(s.bindings, [2]string{b.AOR, b.Contact})
	}
	return nil
}

func (s *memStore) LiveBindings(_ context.Context, now time.Time) ([]mapping.Binding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []mapping.Binding
	for _, b := range s.bindings {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	return out, nil
}

func (s *memStore) stored() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bindings)
}

// routerFunc adapts a function to MessageHandler.
type routerFunc func(ctx context.Context, m mapping.SIPMessage) mapping.Outcome

func (f routerFunc) ReceiveSIP(ctx context.Context, m mapping.SIPMessage) mapping.Outcome {
	return f(ctx, m)
}

type testEnv struct {
	stack *Stack
	store *memStore
	udp   string // host:port
	tcp   string
}

// startStack runs a stack with r as its MessageHandler (when not nil) and
// the further registrations of register.
func startStack(tb testing.TB, mod func(*Config), r MessageHandler, register ...func(*Stack)) *testEnv {
	tb.Helper()
	cfg := Config{
		Listen:      []string{"udp:127.0.0.1:0", "tcp:127.0.0.1:0"},
		Domain:      testDomain,
		NonceSecret: []byte("0123456789abcdef0123456789abcdef"),
		Logger:      zaptest.NewLogger(tb),
	}
	if _, ok := tb.(*testing.B); ok {
		cfg.Logger = nil
	}
	if mod != nil {
		mod(&cfg)
	}
	st := newMemStore("bob", "alice")
	s, err := New(cfg, st)
	if err != nil {
		tb.Fatal(err)
	}
	if r != nil {
		s.HandleMessages(r)
	}
	for _, f := range register {
		f(s)
	}
	ctx, cancel := context.WithCancel(tb.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		tb.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		tb.Fatal("not ready")
	}
	env := &testEnv{stack: s, store: st}
	for _, a := range s.Addrs() {
		switch {
		case strings.HasPrefix(a, "udp:"):
			env.udp = a[4:]
		case strings.HasPrefix(a, "tcp:"):
			env.tcp = a[4:]
		}
	}
	return env
}

func newClient(tb testing.TB) *sipgo.Client {
	tb.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("tester"), sipgo.WithUserAgentHostname("client.test"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ua.Close() })
	c, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func registerReq(user, dest string, contacts []string, expires string) *sip.Request {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: testDomain})
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: testDomain}}
	from := &sip.FromHeader{Address: to.Address, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(to)
	for _, c := range contacts {
		req.AppendHeader(sip.NewHeader("Contact", c))
	}
	if expires != "" {
		req.AppendHeader(sip.NewHeader("Expires", expires))
	}
	req.SetDestination(dest)
	return req
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// doAuth sends req, answers one challenge with bob/secret, returns the final response.
func doAuth(t testing.TB, c *sipgo.Client, req *sip.Request, user, pass string) *sip.Response {
	t.Helper()
	ctx := ctxT(t)
	res, err := c.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 401 && res.StatusCode != 407 {
		return res
	}
	res, err = c.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func contacts(res *sip.Response) []string {
	var out []string
	for _, h := range res.GetHeaders("Contact") {
		out = append(out, h.Value())
	}
	return out
}

func TestRegister(t *testing.T) {
	env := startStack(t, nil, nil)
	c := newClient(t)
	ctx := ctxT(t)

	// Unauthenticated: 401 with one MD5 challenge (see auth.go for why one).
	req := registerReq("bob", env.udp, []string{"<sip:bob@127.0.0.1:5999>"}, "600")
	res, err := c.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 401 {
		t.Fatalf("status %d", res.StatusCode)
	}
	ch := res.GetHeaders("WWW-Authenticate")
	if len(ch) != 1 || !strings.Contains(ch[0].Value(), "algorithm=MD5") {
		t.Fatalf("challenges %v", ch)
	}
	res, err = c.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: "bob", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("status %d %s", res.StatusCode, res.Reason)
	}
	if got := contacts(res); len(got) != 1 || !strings.HasPrefix(got[0], "<sip:bob@127.0.0.1:5999>;expires=") {
		t.Fatalf("contacts %v", got)
	}
	bs := env.stack.Bindings("sip:bob@" + testDomain)
	if len(bs) != 1 || bs[0].Contact != "sip:bob@127.0.0.1:5999" || !strings.HasPrefix(bs[0].Source, "udp:127.0.0.1:") {
		t.Fatalf("bindings %+v", bs)
	}
	waitFor(t, func() bool { return env.store.stored() == 1 })

	// A second contact, with a per-contact expires.
	req = registerReq("bob", env.udp, []string{"<sip:bob@127.0.0.1:6000>;expires=120"}, "")
	res = doAuth(t, c, req, "bob", "secret")
	if res.StatusCode != 200 || len(contacts(res)) != 2 {
		t.Fatalf("status %d contacts %v", res.StatusCode, contacts(res))
	}
	for _, h := range contacts(res) {
		if strings.Contains(h, "6000") && !strings.HasSuffix(h, "expires=120") && !strings.HasSuffix(h, "expires=119") {
			t.Fatalf("contact %q", h)
		}
	}

	// Too brief.
	req = registerReq("bob", env.udp, []string{"<sip:bob@127.0.0.1:6001>"}, "10")
	res = doAuth(t, c, req, "bob", "secret")
	if res.StatusCode != 423 || res.GetHeader("Min-Expires") == nil || res.GetHeader("Min-Expires").Value() != "60" {
		t.Fatalf("status %d", res.StatusCode)
	}

	// Expires 0 removes one.
	req = registerReq("bob", env.udp, []string{"<sip:bob@127.0.0.1:6000>"}, "0")
	res = doAuth(t, c, req, "bob", "secret")
	if res.StatusCode != 200 || len(contacts(res)) != 1 {
		t.Fatalf("status %d contacts %v", res.StatusCode, contacts(res))
	}

	// Fetch (no Contact) lists the bindings.
	req = registerReq("bob", env.udp, nil, "")
	res = doAuth(t, c, req, "bob", "secret")
	if res.StatusCode != 200 || len(contacts(res)) != 1 {
		t.Fatalf("fetch: status %d contacts %v", res.StatusCode, contacts(res))
	}

	// "*" without Expires 0 is a 400; with it removes all.
	req = registerReq("bob", env.udp, []string{"*"}, "")
	if res = doAuth(t, c, req, "bob", "secret"); res.StatusCode != 400 {
		t.Fatalf("* without expires: %d", res.StatusCode)
	}
	req = registerReq("bob", env.udp, []string{"*"}, "0")
	res = doAuth(t, c, req, "bob", "secret")
	if res.StatusCode != 200 || len(contacts(res)) != 0 {
		t.Fatalf("status %d contacts %v", res.StatusCode, contacts(res))
	}
	if bs := env.stack.Bindings("sip:bob@" + testDomain); len(bs) != 0 {
		t.Fatalf("bindings %+v", bs)
	}
	waitFor(t, func() bool { return env.store.stored() == 0 })

	// Wrong password: challenged again.
	req = registerReq("bob", env.udp, []string{"<sip:bob@127.0.0.1:5999>"}, "")
	if res = doAuth(t, c, req, "bob", "wrong"); res.StatusCode != 401 {
		t.Fatalf("wrong password: %d", res.StatusCode)
	}
	// Someone else's AOR: 403.
	req = registerReq("alice", env.udp, []string{"<sip:bob@127.0.0.1:5999>"}, "")
	if res = doAuth(t, c, req, "bob", "secret"); res.StatusCode != 403 {
		t.Fatalf("other AOR: %d", res.StatusCode)
	}
}

// TestRegisterOrdering checks RFC 3261 §10.3 step 7: a REGISTER with the same
// Call-ID and a CSeq not above the binding's fails.
func TestRegisterOrdering(t *testing.T) {
	env := startStack(t, nil, nil)
	c := newClient(t)
	req := registerReq("bob", env.udp, []string{"<sip:bob@127.0.0.1:5999>"}, "")
	if res := doAuth(t, c, req, "bob", "secret"); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	// The authenticated request again with a lower CSeq, and credentials
	// with the next nonce-count (the same ones would be a replay).
	req2 := req.Clone()
	req2.CSeq().SeqNo--
	req2.RemoveHeader("Via")
	nonce := between(req.GetHeader("Authorization").Value(), `nonce="`, `"`)
	req2.ReplaceHeader(sip.NewHeader("Authorization", bobAuthorization(nonce, "sip:"+testDomain, "REGISTER", "00000002")))
	res, err := c.Do(ctxT(t), req2, sipgo.ClientRequestAddVia)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 500 {
		t.Fatalf("out of order: %d", res.StatusCode)
	}
}

// TestRegisterMD5 answers the MD5 challenge by hand.
func TestRegisterMD5(t *testing.T) {
	env := startStack(t, nil, nil)
	c := newClient(t)
	ctx := ctxT(t)
	req := registerReq("bob", env.udp, []string{"<sip:bob@127.0.0.1:5999>"}, "")
	res, err := c.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	ch := res.GetHeaders("WWW-Authenticate")[0].Value()
	nonce := ch[strings.Index(ch, `nonce="`)+7:]
	nonce = nonce[:strings.IndexByte(nonce, '"')]
	cred := digestCreds{Username: "bob", Realm: testDomain, Nonce: nonce, URI: "sip:" + testDomain,
		Algorithm: "MD5", Qop: "auth", Nc: "00000001", Cnonce: "abc"}
	cred.Response = digestResponse(&cred, "REGISTER", HA1("MD5", "bob", testDomain, "secret"))
	req.AppendHeader(sip.NewHeader("Authorization", `Digest username="bob", realm="`+testDomain+`", nonce="`+nonce+
		`", uri="sip:`+testDomain+`", response="`+cred.Response+`", algorithm=MD5, qop=auth, nc=00000001, cnonce="abc"`))
	req.CSeq().SeqNo++
	req.RemoveHeader("Via")
	res, err = c.Do(ctx, req, sipgo.ClientRequestAddVia)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
}

func waitFor(t testing.TB, f func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if f() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met")
}

func messageReq(from, to, dest string, body string) *sip.Request {
	var ruri sip.Uri
	sip.ParseUri(to, &ruri)
	req := sip.NewRequest(sip.MESSAGE, ruri)
	var fu sip.Uri
	sip.ParseUri(from, &fu)
	fh := &sip.FromHeader{DisplayName: "Bob B", Address: fu, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: ruri})
	req.AppendHeader(sip.NewHeader("Subject", "hello there"))
	req.AppendHeader(sip.NewHeader("Content-Language", "en"))
	ct := sip.ContentTypeHeader("text/plain;charset=UTF-8")
	req.AppendHeader(&ct)
	req.SetBody([]byte(body))
	req.SetDestination(dest)
	return req
}

func TestMessageIn(t *testing.T) {
	got := make(chan mapping.SIPMessage, 1)
	r := routerFunc(func(ctx context.Context, m mapping.SIPMessage) mapping.Outcome {
		got <- m
		return mapping.Outcome{Status: 202, Reason: "Accepted"}
	})
	env := startStack(t, nil, r)
	c := newClient(t)
	req := messageReq("sip:bob@"+testDomain, "sip:juliet@xmpp.test", env.udp, "hi")
	res, err := c.Do(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 407 || len(res.GetHeaders("Proxy-Authenticate")) != 1 {
		t.Fatalf("status %d", res.StatusCode)
	}
	res = doAuth(t, c, req, "bob", "secret")
	if res.StatusCode != 202 {
		t.Fatalf("status %d %s", res.StatusCode, res.Reason)
	}
	m := <-got
	want := mapping.SIPMessage{
		RequestURI: mapping.URI{Scheme: "sip", User: "juliet", Host: "xmpp.test"},
		From:       mapping.URI{Scheme: "sip", User: "bob", Host: testDomain}, FromDisplay: "Bob B",
		To: mapping.URI{Scheme: "sip", User: "juliet", Host: "xmpp.test"}, CallID: callID(req),
		Subject: "hello there", ContentType: "text/plain;charset=UTF-8", ContentLanguage: "en",
	}
	if string(m.Body) != "hi" {
		t.Fatalf("body %q", m.Body)
	}
	m.Body = nil
	if m.RequestURI != want.RequestURI || m.From != want.From || m.To != want.To || m.FromDisplay != want.FromDisplay ||
		m.CallID != want.CallID || m.Subject != want.Subject || m.ContentType != want.ContentType || m.ContentLanguage != want.ContentLanguage {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}

	// Foreign domain from an untrusted source: 403.
	req = messageReq("sip:eve@evil.test", "sip:juliet@xmpp.test", env.udp, "hi")
	if res, err = c.Do(ctxT(t), req); err != nil || res.StatusCode != 403 {
		t.Fatalf("foreign: %v %v", res, err)
	}
	// Body without Content-Type: 400.
	req = messageReq("sip:bob@"+testDomain, "sip:juliet@xmpp.test", env.udp, "hi")
	req.RemoveHeader("Content-Type")
	if res, err = c.Do(ctxT(t), req); err != nil || res.StatusCode != 400 {
		t.Fatalf("no content-type: %v %v", res, err)
	}
}

func TestMessageTrustedPeerAndRetryAfter(t *testing.T) {
	r := routerFunc(func(ctx context.Context, m mapping.SIPMessage) mapping.Outcome {
		return mapping.Outcome{Status: 480, Reason: "Temporarily Unavailable", RetryAfter: 30 * time.Second}
	})
	env := startStack(t, func(c *Config) { c.TrustedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }, r)
	c := newClient(t)
	req := messageReq("sip:carol@trunk.test", "sip:juliet@xmpp.test", env.udp, "hi")
	res, err := c.Do(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 480 || res.GetHeader("Retry-After") == nil || res.GetHeader("Retry-After").Value() != "30" {
		t.Fatalf("status %d", res.StatusCode)
	}
	// A trusted front proxy's REGISTER needs no digest either.
	res, err = c.Do(ctxT(t), registerReq("bob", env.udp, []string{"<sip:bob@127.0.0.1:7000>"}, ""))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("trusted REGISTER: %v %v", res, err)
	}
}

func TestOverload(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	r := routerFunc(func(ctx context.Context, m mapping.SIPMessage) mapping.Outcome {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return mapping.Outcome{Status: 200, Reason: "OK"}
	})
	reg := prometheus.NewRegistry()
	env := startStack(t, func(c *Config) {
		c.Metrics = reg
		c.MaxInFlight = 1
		c.TrustedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}, r)
	c := newClient(t)
	first := make(chan int, 1)
	go func() {
		req := messageReq("sip:carol@trunk.test", "sip:juliet@xmpp.test", env.udp, "1")
		res, err := c.Do(ctxT(t), req)
		if err != nil {
			first <- 0
			return
		}
		first <- res.StatusCode
	}()
	<-entered
	req := messageReq("sip:carol@trunk.test", "sip:juliet@xmpp.test", env.udp, "2")
	res, err := c.Do(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 503 || res.GetHeader("Retry-After") == nil || res.GetHeader("Retry-After").Value() != "1" {
		t.Fatalf("status %d", res.StatusCode)
	}
	close(release)
	if code := <-first; code != 200 {
		t.Fatalf("first: %d", code)
	}
	if v := metricValue(t, reg, "stox_sip_admission_total", "result", "rejected"); v != 1 {
		t.Errorf("rejected %v", v)
	}
	if v := metricValue(t, reg, "stox_sip_admission_total", "result", "accepted"); v != 1 {
		t.Errorf("accepted %v", v)
	}
	waitFor(t, func() bool { return metricValue(t, reg, "stox_sip_requests_total", "status", "200") == 1 })
	waitFor(t, func() bool { return metricValue(t, reg, "stox_sip_requests_total", "status", "503") == 1 })
	if v := metricValue(t, reg, "stox_sip_inflight", "", ""); v != 0 {
		t.Errorf("inflight %v", v)
	}
}

// TestOtherMethods runs a stack with no capability registered: what a
// capability serves is refused as it was before the capability existed.
func TestOtherMethods(t *testing.T) {
	env := startStack(t, nil, nil)
	c := newClient(t)
	for _, tc := range []struct {
		method sip.RequestMethod
		status int
	}{
		{sip.OPTIONS, 200}, {sip.MESSAGE, 405}, {sip.SUBSCRIBE, 489}, {sip.NOTIFY, 481}, {sip.PUBLISH, 405},
		{sip.INFO, 405}, {sip.BYE, 481}, {sip.CANCEL, 481}, {sip.INVITE, 488}, {"FOO", 501},
	} {
		req := sip.NewRequest(tc.method, sip.Uri{Scheme: "sip", User: "x", Host: testDomain})
		req.SetDestination(env.udp)
		if tc.method == sip.SUBSCRIBE {
			req.AppendHeader(sip.NewHeader("Event", "presence"))
		}
		res, err := c.Do(ctxT(t), req)
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		if res.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.method, res.StatusCode, tc.status)
		}
		if tc.method == sip.OPTIONS && (res.GetHeader("Allow") == nil || res.GetHeader("Accept") == nil) {
			t.Errorf("OPTIONS without Allow/Accept")
		}
		if allow := hdr(res, "Allow"); tc.status == 405 && (allow != "ACK, BYE, CANCEL, OPTIONS, REGISTER") {
			t.Errorf("%s: Allow %q, want only the methods the stack itself serves", tc.method, allow)
		}
	}
	// Max-Forwards 0.
	req := messageReq("sip:bob@"+testDomain, "sip:juliet@xmpp.test", env.tcp, "hi")
	mf := sip.MaxForwardsHeader(0)
	req.AppendHeader(&mf)
	req.SetTransport("TCP")
	res, err := c.Do(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 483 {
		t.Fatalf("max-forwards 0: %d", res.StatusCode)
	}
}

func TestPanicGets500(t *testing.T) {
	r := routerFunc(func(ctx context.Context, m mapping.SIPMessage) mapping.Outcome { panic("boom") })
	env := startStack(t, func(c *Config) { c.TrustedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} }, r)
	c := newClient(t)
	res, err := c.Do(ctxT(t), messageReq("sip:carol@trunk.test", "sip:juliet@xmpp.test", env.udp, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 500 {
		t.Fatalf("status %d", res.StatusCode)
	}
}

// metricValue returns the value of the series of name having label=value
// (any series when label is empty), or -1.
func metricValue(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	v, err := gatherValue(reg, name, label, value)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// gatherValue is metricValue for a goroutine other than the test's.
func gatherValue(reg *prometheus.Registry, name, label, value string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return -1, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					match = true
				}
			}
			if !match {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), nil
			}
			return m.GetGauge().GetValue(), nil
		}
	}
	return -1, nil
}

func TestLoadAndSweep(t *testing.T) {
	st := newMemStore("bob")
	now := time.Now()
	st.bindings[[2]string{"sip:bob@" + testDomain, "sip:bob@10.0.0.1"}] = mapping.Binding{
		AOR: "sip:bob@" + testDomain, Contact: "sip:bob@10.0.0.1", Source: "udp:10.0.0.1:5060",
		CallID: "c1", CSeq: 7, Expires: now.Add(90 * time.Second), UserAgent: "ua"}
	st.bindings[[2]string{"sip:bob@" + testDomain, "sip:bob@10.0.0.2"}] = mapping.Binding{
		AOR: "sip:bob@" + testDomain, Contact: "sip:bob@10.0.0.2", Expires: now.Add(-time.Second)}
	s, err := New(Config{Listen: []string{"udp:127.0.0.1:0"}, Domain: testDomain,
		NonceSecret: []byte("0123456789abcdef"), Logger: zaptest.NewLogger(t)}, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	bs := s.Bindings("sip:bob@" + testDomain)
	if len(bs) != 1 || bs[0].Contact != "sip:bob@10.0.0.1" || bs[0].CSeq != 7 || bs[0].UserAgent != "ua" || bs[0].Source != "udp:10.0.0.1:5060" {
		t.Fatalf("loaded %+v", bs)
	}
	if ok, err := s.AccountExists(t.Context(), "bob"); !ok || err != nil {
		t.Fatalf("bob: %v %v", ok, err)
	}
	if ok, _ := s.AccountExists(t.Context(), "nobody"); ok {
		t.Fatal("nobody exists")
	}
	s.reg.sweep(now.Add(2 * time.Minute))
	if bs := s.Bindings("sip:bob@" + testDomain); len(bs) != 0 {
		t.Fatalf("after sweep %+v", bs)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Run flushed the sweep's delete on the way out.
	if n := st.stored(); n != 1 { // the already expired one was never loaded, so never deleted
		t.Fatalf("stored %d", n)
	}
}

func TestNewErrors(t *testing.T) {
	st := newMemStore()
	for _, cfg := range []Config{
		{Listen: []string{"udp:127.0.0.1:0"}, NonceSecret: []byte("0123456789abcdef")},
		{Domain: testDomain, NonceSecret: []byte("0123456789abcdef")},
		{Domain: testDomain, Listen: []string{"udp:127.0.0.1:0"}},
		{Domain: testDomain, Listen: []string{"tls:127.0.0.1:0"}, NonceSecret: []byte("0123456789abcdef")},
		{Domain: testDomain, Listen: []string{"sctp:127.0.0.1"}, NonceSecret: []byte("0123456789abcdef")},
	} {
		if _, err := New(cfg, st); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

func TestRegisterStaleNonce(t *testing.T) {
	env := startStack(t, nil, nil)
	c := newClient(t)
	old := env.stack.nonces.issue(time.Now().Add(-10*time.Minute), testDomain)
	req := authRegister("bob", env.udp, old, 1, 1)
	res, err := c.Do(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	ch := res.GetHeaders("WWW-Authenticate")
	if res.StatusCode != 401 || len(ch) != 1 || !strings.Contains(ch[0].Value(), "stale=true") {
		t.Fatalf("status %d %v", res.StatusCode, ch)
	}
	// The same credentials with a fresh nonce pass.
	req = authRegister("bob", env.udp, env.stack.nonces.issue(time.Now(), testDomain), 2, 1)
	if res, err = c.Do(ctxT(t), req); err != nil || res.StatusCode != 200 {
		t.Fatalf("fresh: %v %v", res, err)
	}
}

// withPresence registers h as the stack's PresenceHandler.
func withPresence(h PresenceHandler) func(*Stack) { return func(s *Stack) { s.HandlePresence(h) } }

// observing registers o as the stack's RegistrationObserver.
func observing(o RegistrationObserver) func(*Stack) {
	return func(s *Stack) { s.ObserveRegistrations(o) }
}
