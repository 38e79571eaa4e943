package sip

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func TestNCGuard(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(5 * time.Minute)
	g := newNCGuard(3)
	steps := []struct {
		nonce, nc string
		want      bool
	}{
		{"a", "00000001", true},
		{"a", "00000001", false}, // replay
		{"a", "00000003", true},
		{"a", "00000002", true}, // reordered, not seen
		{"a", "00000002", false},
		{"a", "00000050", true},  // jump ahead: window moves
		{"a", "00000011", true},  // 0x50-0x11 = 63 behind: still in the window
		{"a", "00000010", false}, // 64 behind: too old to tell
		{"a", "zz", false},
		{"a", "00000000", false}, // RFC 7616 §3.4: counting starts at 1
		{"b", "", true},          // RFC 2069 form: single use
		{"b", "", false},
		{"c", "00000001", true},
		{"d", "00000001", false}, // table full (3): refused, not unguarded
	}
	for i, s := range steps {
		if got := g.accept(s.nonce, s.nc, exp, now); got != s.want {
			t.Fatalf("step %d: accept(%q, %q) = %v, want %v", i, s.nonce, s.nc, got, s.want)
		}
	}
	// Once the nonces are stale their entries go, and room comes back.
	if !g.accept("d", "00000001", now.Add(20*time.Minute), now.Add(6*time.Minute)) {
		t.Fatal("no room after the stale entries expired")
	}
	if len(g.m) != 1 {
		t.Fatalf("%d entries after the sweep, want 1", len(g.m))
	}
}

// A REGISTER captured on the wire and sent again is refused with a fresh
// challenge (stale=true), while the UA's next request with the same nonce
// and the next nonce-count passes (RFC 7616 §3.4).
func TestDigestReplayRefused(t *testing.T) {
	env := startStack(t, nil, nil)
	c := newClient(t)
	ctx := ctxT(t)
	contact := []string{"<sip:bob@127.0.0.1:5999>"}
	res, err := c.Do(ctx, registerReq("bob", env.udp, contact, "600"))
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("first REGISTER: %v %v", res, err)
	}
	nonce := between(res.GetHeader("WWW-Authenticate").Value(), `nonce="`, `"`)
	send := func(nc string) *sip.Response {
		t.Helper()
		req := registerReq("bob", env.udp, contact, "600")
		req.AppendHeader(sip.NewHeader("Authorization", bobAuthorization(nonce, "sip:"+testDomain, "REGISTER", nc)))
		res, err := c.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := send("00000001"); res.StatusCode != 200 {
		t.Fatalf("nc=1: %d", res.StatusCode)
	}
	res = send("00000001")
	if res.StatusCode != 401 || !strings.Contains(res.GetHeader("WWW-Authenticate").Value(), "stale=true") {
		t.Fatalf("replayed nc=1: %d %v, want 401 with stale=true", res.StatusCode, res.GetHeader("WWW-Authenticate"))
	}
	if res := send("00000002"); res.StatusCode != 200 {
		t.Fatalf("nc=2: %d", res.StatusCode)
	}
}

// bobAuthorization is an MD5 qop=auth Authorization value for bob/secret.
func bobAuthorization(nonce, uri, method, nc string) string {
	cred := digestCreds{Username: "bob", Realm: testDomain, Nonce: nonce, URI: uri,
		Algorithm: "MD5", Qop: "auth", Nc: nc, Cnonce: "c0ffee"}
	resp := digestResponse(&cred, method, HA1("MD5", "bob", testDomain, "secret"))
	return fmt.Sprintf(`Digest username="bob", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, qop=auth, nc=%s, cnonce="c0ffee"`,
		testDomain, nonce, uri, resp, nc)
}

func between(s, start, end string) string {
	_, rest, _ := strings.Cut(s, start)
	v, _, _ := strings.Cut(rest, end)
	return v
}
