package sip

import (
	"strings"
	"testing"
	"time"
)

// RFC 2617 §3.5 example (MD5, qop=auth).
func TestDigestRFC2617(t *testing.T) {
	hdr := `Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"`
	c, err := parseDigest(hdr)
	if err != nil {
		t.Fatal(err)
	}
	if c.Username != "Mufasa" || c.Realm != "testrealm@host.com" || c.Qop != "auth" || c.Nc != "00000001" || c.Opaque != "5ccc069c403ebaf9f0171e9517f40e41" {
		t.Fatalf("parsed %+v", c)
	}
	ha1 := HA1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
	if !verifyDigest(&c, "GET", ha1) {
		t.Fatalf("RFC 2617 example did not verify; want %s got %s", c.Response, digestResponse(&c, "GET", ha1))
	}
	if verifyDigest(&c, "GET", HA1("MD5", "Mufasa", "testrealm@host.com", "wrong")) {
		t.Fatal("wrong password verified")
	}
	if verifyDigest(&c, "POST", ha1) {
		t.Fatal("wrong method verified")
	}
}

// RFC 7616 §3.9.1 examples (SHA-256 and MD5).
func TestDigestRFC7616(t *testing.T) {
	const (
		realm  = "http-auth@example.org"
		nonce  = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
		cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
	)
	for _, tc := range []struct{ alg, resp string }{
		{"SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
		{"MD5", "8ca523f5e9506fed4657c9700eebdbec"},
	} {
		hdr := `Digest username="Mufasa", realm="` + realm + `", uri="/dir/index.html", algorithm=` + tc.alg +
			`, nonce="` + nonce + `", nc=00000001, cnonce="` + cnonce + `", qop=auth, response="` + tc.resp +
			`", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`
		c, err := parseDigest(hdr)
		if err != nil {
			t.Fatal(err)
		}
		ha1 := HA1(tc.alg, "Mufasa", realm, "Circle of Life")
		if !verifyDigest(&c, "GET", ha1) {
			t.Errorf("%s: want %s got %s", tc.alg, tc.resp, digestResponse(&c, "GET", ha1))
		}
	}
}

func TestParseDigestErrors(t *testing.T) {
	for _, s := range []string{
		"", "Basic abc", "Digest", `Digest username="a`, `Digest username="a", nonce="n"`,
		`Digest =x`, `Digestusername="a"`,
	} {
		if _, err := parseDigest(s); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
	c, err := parseDigest(`digest  username="a\"b,c" ,nonce=n,response="r",realm="x"`)
	if err != nil || c.Username != `a"b,c` || c.Nonce != "n" || c.Realm != "x" {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestNonce(t *testing.T) {
	n := nonces{secret: []byte("0123456789abcdef"), lifetime: 5 * time.Minute}
	now := time.Unix(1_800_000_000, 0)
	s := n.issue(now, "example.com")
	if got := n.check(s, now.Add(time.Minute), "example.com"); got != nonceValid {
		t.Fatalf("fresh nonce: %v", got)
	}
	if got := n.check(s, now.Add(6*time.Minute), "example.com"); got != nonceStale {
		t.Fatalf("old nonce: %v", got)
	}
	if got := n.check(s, now, "other.com"); got != nonceInvalid {
		t.Fatalf("other realm: %v", got)
	}
	other := nonces{secret: []byte("fedcba9876543210"), lifetime: 5 * time.Minute}
	if got := other.check(s, now, "example.com"); got != nonceInvalid {
		t.Fatalf("other secret: %v", got)
	}
	if got := n.check(s, now.Add(-time.Minute), "example.com"); got != nonceInvalid {
		t.Fatalf("future nonce: %v", got)
	}
	for _, bad := range []string{"", "x", s[:len(s)-1], s + "A", strings.Repeat("A", len(s))} {
		if got := n.check(bad, now, "example.com"); got != nonceInvalid {
			t.Errorf("%q: %v", bad, got)
		}
	}
	ch := n.challenges(now, "example.com", true, true)
	if !strings.Contains(ch[0], "algorithm=SHA-256") || !strings.Contains(ch[1], "algorithm=MD5") || !strings.Contains(ch[0], "stale=true") || !strings.Contains(ch[0], `qop="auth"`) {
		t.Fatalf("challenges %q", ch)
	}
	if ch := n.challenges(now, "example.com", false, false); !strings.Contains(ch[0], "MD5") || strings.Contains(ch[0], "stale") {
		t.Fatalf("challenges %q", ch)
	}
}

func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{
		`Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1"`,
		`Digest username="bob",realm="stox.test",nonce="AAAAAGkAAAAAAAAAAAAAAAAAAAAAAAAA",uri="sip:stox.test",response="00",algorithm=SHA-256,qop=auth,nc=00000001,cnonce="x"`,
		`Digest username="a\"b", nonce=n, response=r`,
		`Digest `,
		`Digest a="`,
	} {
		f.Add(s)
	}
	n := nonces{secret: []byte("0123456789abcdef"), lifetime: time.Minute}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseDigest(s)
		if err == nil {
			if c.Username == "" || c.Nonce == "" || c.Response == "" {
				t.Fatalf("accepted incomplete credentials %+v", c)
			}
			verifyDigest(&c, "REGISTER", "00")
		}
		if n.check(s, time.Now(), "r") == nonceValid {
			t.Fatalf("forged nonce accepted: %q", s)
		}
		decodeNonce(s)
	})
}
