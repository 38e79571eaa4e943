package mapping

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		in   string
		want URI
	}{
		{"sip:o'malley@host:5060;transport=tcp;gr=x", URI{"sip", "o'malley", "host", 5060, "x"}},
		{"sip:f%C3%BC@sip.example", URI{"sip", "fü", "sip.example", 0, ""}},
		{"sip:foo@sip.example;gr=bar", URI{"sip", "foo", "sip.example", 0, "bar"}},
		{"SIP:Bob@SIP.Example.COM", URI{"sip", "Bob", "sip.example.com", 0, ""}},
		{"sips:alice@example.com", URI{"sips", "alice", "example.com", 0, ""}},
		{"im:alice@example.com", URI{"im", "alice", "example.com", 0, ""}},
		{"pres:alice@example.com", URI{"pres", "alice", "example.com", 0, ""}},
		{"sip:alice%40xmpp.example@sip.example", URI{"sip", "alice@xmpp.example", "sip.example", 0, ""}},
		{"sip:alice:secret@example.com", URI{"sip", "alice", "example.com", 0, ""}},
		{"sip:example.com", URI{"sip", "", "example.com", 0, ""}},
		{"sip:bob@[2001:DB8::1]:5061;transport=tls", URI{"sip", "bob", "[2001:db8::1]", 5061, ""}},
		{"sip:bob@192.0.2.1", URI{"sip", "bob", "192.0.2.1", 0, ""}},
		{"sip:a;b?c@example.com?Subject=hi", URI{"sip", "a;b?c", "example.com", 0, ""}},
		{"sip:bob@example.com;GR=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", URI{"sip", "bob", "example.com", 0, "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"}},
		{"sip:bob@example.com;gr", URI{"sip", "bob", "example.com", 0, ""}},
		{"sip:bob@example.com;gr=r%C3%A9s", URI{"sip", "bob", "example.com", 0, "rés"}},
		{"sip:+15551234567@example.com;user=phone", URI{"sip", "+15551234567", "example.com", 0, ""}},
	}
	for _, tc := range tests {
		got, err := ParseURI(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseURI(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseURIRejects(t *testing.T) {
	for _, in := range []string{
		"", "sip", "http://example.com", "tel:+15551234567", "sip:", "sip:@example.com",
		"sip:a@b@c", "sip:a b@example.com", "sip:<a>@example.com", `sip:"a"@example.com`,
		"sip:a%2@example.com", "sip:a%zz@example.com", "sip:a%00@example.com", "sip:a%0D%0A@example.com",
		"sip:%FF@example.com", "sip:a@", "sip:a@exa mple.com", "sip:a@example.com:", "sip:a@example.com:0",
		"sip:a@example.com:65536", "sip:a@example.com:+5", "sip:a@example.com:5x", "sip:a@[::1", "sip:a@[::1]x",
		"sip:a@[zz]", "sip:a@.example.com", "sip:a@example..com", "sip:a@example.com.", "sip:a@ex\x00.com",
		"sip:a@example.com;gr=%0a", "sip:a@example.com;;x", "sip:a\r\n@example.com", "sip:a\\b@example.com",
		"sip:a@" + strings.Repeat("a", 64) + ".com",
	} {
		if u, err := ParseURI(in); err == nil {
			t.Errorf("ParseURI(%q) = %+v, want an error", in, u)
		}
	}
}

func TestURIString(t *testing.T) {
	tests := []struct {
		u    URI
		want string
	}{
		{URI{"sip", "fü", "sip.example", 0, ""}, "sip:f%C3%BC@sip.example"},
		{URI{"sip", "tschüss", "xmpp.example", 0, ""}, "sip:tsch%C3%BCss@xmpp.example"},
		{URI{"sip", "m&m", "xmpp.example", 0, ""}, "sip:m&m@xmpp.example"},
		{URI{"sip", "baz", "xmpp.example", 0, "qux"}, "sip:baz@xmpp.example;gr=qux"},
		{URI{"sip", "o'malley", "host", 5060, "x"}, "sip:o'malley@host:5060;gr=x"},
		// RFC 7247 §6.5 step 5 and RFC 3261 user grammar.
		{URI{"sip", "#%[\\]^`{|}", "h", 0, ""}, "sip:%23%25%5B%5C%5D%5E%60%7B%7C%7D@h"},
		{URI{"sip", `a b"<>@:`, "h", 0, ""}, "sip:a%20b%22%3C%3E%40%3A@h"},
		{URI{"sip", "-_.!~*'()&=+$,;?/", "h", 0, ""}, "sip:-_.!~*'()&=+$,;?/@h"},
		{URI{"sip", "alice@xmpp.example", "sip.example", 0, ""}, "sip:alice%40xmpp.example@sip.example"},
		{URI{"sip", "", "example.com", 0, ""}, "sip:example.com"},
		{URI{"sip", "b", "h", 0, "urn:uuid:1 ü;x"}, "sip:b@h;gr=urn:uuid:1%20%C3%BC%3Bx"},
	}
	for _, tc := range tests {
		if got := tc.u.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.u, got, tc.want)
		}
		back, err := ParseURI(tc.want)
		if err != nil || back != tc.u {
			t.Errorf("ParseURI(%q) = %+v, %v; want %+v", tc.want, back, err, tc.u)
		}
	}
}

func TestURIAOR(t *testing.T) {
	for u, want := range map[URI]string{
		{"sip", "Bob", "Example.COM", 5060, "gr1"}: "sip:Bob@example.com",
		{"sips", "o'malley", "h", 0, ""}:           "sips:o'malley@h",
		{"sip", "fü", "h", 0, ""}:                  "sip:f%C3%BC@h",
	} {
		if got := u.AOR(); got != want {
			t.Errorf("%+v.AOR() = %q, want %q", u, got, want)
		}
	}
}

func TestParseJID(t *testing.T) {
	for in, want := range map[string]JID{
		`o\27malley@xmpp.example`:    {`o\27malley`, "xmpp.example", ""},
		"Alice@XMPP.example/Phone":   {"alice", "xmpp.example", "Phone"},
		"fü@sip.example":             {"fü", "sip.example", ""},
		"xmpp.example":               {"", "xmpp.example", ""},
		`bob\40sip.other@gw.example`: {`bob\40sip.other`, "gw.example", ""},
	} {
		got, err := ParseJID(in)
		if err != nil || got != want {
			t.Errorf("ParseJID(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "@x", "a@", "a@b/", "o'malley@x", "a b@x", `\20a@x`, `a\20@x`, "m&m@x",
		"a@b\x00", strings.Repeat("a", 1024) + "@x", "\xff@x", "0..", "a@b..", "a@.b", "a@b..c",
	} {
		if j, err := ParseJID(in); err == nil {
			t.Errorf("ParseJID(%q) = %+v, want an error", in, j)
		}
	}
}

// RFC 7247 §6.4 and §6.5 worked examples.
func TestGenericMappings(t *testing.T) {
	for _, tc := range []struct{ uri, jid string }{
		{"sip:f%C3%BC@sip.example", "fü@sip.example"},
		{"sip:o'malley@sip.example", `o\27malley@sip.example`},
		{"sip:foo@sip.example;gr=bar", "foo@sip.example/bar"},
	} {
		u, err := ParseURI(tc.uri)
		if err != nil {
			t.Fatal(err)
		}
		j, err := URIToJID(u)
		if err != nil || j.String() != tc.jid {
			t.Errorf("URIToJID(%s) = %s, %v; want %s", tc.uri, j, err, tc.jid)
		}
	}
	for _, tc := range []struct{ jid, uri string }{
		{`m\26m@xmpp.example`, "sip:m&m@xmpp.example"},
		{"tschüss@xmpp.example", "sip:tsch%C3%BCss@xmpp.example"},
		{"baz@xmpp.example/qux", "sip:baz@xmpp.example;gr=qux"},
		{"fü@sip.example", "sip:f%C3%BC@sip.example"},
	} {
		j, err := ParseJID(tc.jid)
		if err != nil {
			t.Fatal(err)
		}
		if got := JIDToURI(j).String(); got != tc.uri {
			t.Errorf("JIDToURI(%s) = %s, want %s", tc.jid, got, tc.uri)
		}
	}
	if j, err := URIToJID(URI{Scheme: "sip", User: " lead", Host: "x"}); err == nil {
		t.Errorf(`URIToJID of a user with a leading space = %s, want an error (XEP-0106 §4: no leading \20)`, j)
	}
}

var addrDomains = Domains{XMPP: "sip.gw.example", SIP: "sip.example"}

func wantFailure(t *testing.T, err error, cond Condition, status int) {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v is not a *Failure", err)
	}
	if f.Condition != cond || f.Status != status {
		t.Errorf("failure = %s/%d (%s), want %s/%d", f.Condition, f.Status, f.Text, cond, status)
	}
}

func TestSIPTarget(t *testing.T) {
	d := addrDomains
	for _, tc := range []struct{ to, want string }{
		{"bob@sip.gw.example", "sip:bob@sip.example"},
		{`bob\40sip.other@sip.gw.example`, "sip:bob@sip.other"},
		{`bob\40SIP.Other@sip.gw.example`, "sip:bob@sip.other"},
		{`o\27malley@sip.gw.example`, "sip:o'malley@sip.example"},
		{"bob@sip.gw.example/desk", "sip:bob@sip.example;gr=desk"},
		{`alice\40xmpp.example\40sip.other@sip.gw.example`, "sip:alice%40xmpp.example@sip.other"},
		{"+15551234567@sip.gw.example", "sip:+15551234567@sip.example"},
	} {
		j, err := ParseJID(tc.to)
		if err != nil {
			t.Fatal(err)
		}
		u, err := d.SIPTarget(j)
		if err != nil || u.String() != tc.want {
			t.Errorf("SIPTarget(%s) = %s, %v; want %s", tc.to, u, err, tc.want)
		}
	}
	for _, tc := range []struct {
		to   JID
		cond Condition
	}{
		{JID{Local: "bob", Domain: "other.example"}, ItemNotFound},
		{JID{Domain: "sip.gw.example"}, ItemNotFound},
		{JID{Local: `\40sip.other`, Domain: "sip.gw.example"}, JIDMalformed},
		{JID{Local: `bob\40`, Domain: "sip.gw.example"}, JIDMalformed},
		{JID{Local: `bob\40bad\20host`, Domain: "sip.gw.example"}, JIDMalformed},
		{JID{Local: "bob\r\nVia: x", Domain: "sip.gw.example"}, JIDMalformed},
	} {
		_, err := d.SIPTarget(tc.to)
		wantFailure(t, err, tc.cond, map[Condition]int{ItemNotFound: 404, JIDMalformed: 400}[tc.cond])
	}
}

func TestSIPFrom(t *testing.T) {
	j, _ := ParseJID(`alice@xmpp.example/res`)
	if got := addrDomains.SIPFrom(j).String(); got != "sip:alice@xmpp.example;gr=res" {
		t.Errorf("SIPFrom = %s", got)
	}
	j, _ = ParseJID(`o\27malley@xmpp.example`)
	if got := addrDomains.SIPFrom(j).String(); got != "sip:o'malley@xmpp.example" {
		t.Errorf("SIPFrom = %s", got)
	}
}

func TestXMPPTarget(t *testing.T) {
	d := addrDomains
	for _, tc := range []struct{ ruri, want string }{
		{"sip:alice@xmpp.example", "alice@xmpp.example"},
		{"sip:alice%40xmpp.example@sip.example", "alice@xmpp.example"},
		{"sip:alice%40XMPP.example@SIP.example", "alice@xmpp.example"},
		{"sip:o'malley@xmpp.example", `o\27malley@xmpp.example`},
		{"sip:alice@xmpp.example;gr=phone", "alice@xmpp.example/phone"},
		{"im:alice@xmpp.example", "alice@xmpp.example"},
		{"sip:f%C3%BC@xmpp.example", "fü@xmpp.example"},
	} {
		u, err := ParseURI(tc.ruri)
		if err != nil {
			t.Fatal(err)
		}
		j, err := d.XMPPTarget(u)
		if err != nil || j.String() != tc.want {
			t.Errorf("XMPPTarget(%s) = %s, %v; want %s", tc.ruri, j, err, tc.want)
		}
	}
	for _, tc := range []struct {
		ruri   string
		cond   Condition
		status int
	}{
		{"sip:bob@sip.example", ItemNotFound, 404},
		{"sip:bob@sip.gw.example", ItemNotFound, 404},
		{"sip:bob%40sip.gw.example@sip.example", ItemNotFound, 404},
		{"sip:xmpp.example", ItemNotFound, 404},
		{"sips:alice@xmpp.example", Forbidden, 403},
		{"sips:alice%40xmpp.example@sip.example", Forbidden, 403},
		{"sip:%20alice@xmpp.example", JIDMalformed, 400},
		{"sip:%E2%98%83@xmpp.example", JIDMalformed, 400}, // U+2603 is not PRECIS IdentifierClass
		{"sip:a%40bad%20host@sip.example", JIDMalformed, 400},
	} {
		u, err := ParseURI(tc.ruri)
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.XMPPTarget(u)
		wantFailure(t, err, tc.cond, tc.status)
	}
	// Same D and S: a plain user of the shared domain is a SIP user.
	same := Domains{XMPP: "example.com", SIP: "example.com"}
	_, err := same.XMPPTarget(URI{Scheme: "sip", User: "bob", Host: "example.com"})
	wantFailure(t, err, ItemNotFound, 404)
	_, err = d.XMPPTarget(URI{Scheme: "tel", User: "1", Host: "x"})
	wantFailure(t, err, NotAcceptable, 416)
}

func TestXMPPFrom(t *testing.T) {
	d := addrDomains
	for _, tc := range []struct{ from, want string }{
		{"sip:bob@sip.example", "bob@sip.gw.example"},
		{"sip:bob@SIP.Example", "bob@sip.gw.example"},
		{"sip:bob@sip.other", `bob\40sip.other@sip.gw.example`},
		{"sip:bob@sip.example;gr=desk", "bob@sip.gw.example/desk"},
		{"sip:o'malley@sip.example", `o\27malley@sip.gw.example`},
		{"sip:alice%40xmpp.example@sip.other", `alice\40xmpp.example\40sip.other@sip.gw.example`},
	} {
		u, err := ParseURI(tc.from)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.XMPPFrom(u).String(); got != tc.want {
			t.Errorf("XMPPFrom(%s) = %s, want %s", tc.from, got, tc.want)
		}
	}
}

// docs/interworking.md, "Addresses": apostrophes, ampersands, slashes, spaces and Unicode survive
// a round trip in both directions.
func TestAddressRoundTrips(t *testing.T) {
	d := addrDomains
	users := []string{"o'malley", "fü", "m&m", "a/b", "with space", `back\slash`, `lit\27eral`, "x:y"}
	for _, user := range users {
		for _, host := range []string{"sip.example", "sip.other"} {
			from := URI{Scheme: "sip", User: user, Host: host, GR: "dev 1"}
			j := d.XMPPFrom(from)
			if _, err := ParseJID(j.String()); err != nil {
				t.Errorf("XMPPFrom(%s) = %s is not a valid JID: %v", from, j, err)
			}
			back, err := d.SIPTarget(j)
			if err != nil || back != from {
				t.Errorf("SIPTarget(XMPPFrom(%s)) = %s, %v", from, back, err)
			}
		}
		ruri := URI{Scheme: "sip", User: user, Host: "xmpp.example", GR: "res"}
		j, err := d.XMPPTarget(ruri)
		if err != nil {
			t.Errorf("XMPPTarget(%s): %v", ruri, err)
			continue
		}
		if back := d.SIPFrom(j); back != ruri {
			t.Errorf("SIPFrom(XMPPTarget(%s)) = %s", ruri, back)
		}
		s, _ := ParseURI(ruri.String())
		if s != ruri {
			t.Errorf("ParseURI(String(%+v)) = %+v", ruri, s)
		}
	}
}

func TestPromptToJID(t *testing.T) {
	d := addrDomains
	for in, want := range map[string]string{
		"bob@sip.other":          `bob\40sip.other@sip.gw.example`,
		"sip:bob@sip.other":      `bob\40sip.other@sip.gw.example`,
		"SIP:bob@sip.other;gr=x": `bob\40sip.other@sip.gw.example`,
		"bob":                    "bob@sip.gw.example",
		"  bob  ":                "bob@sip.gw.example",
		"bob@sip.example":        "bob@sip.gw.example",
		"o'malley":               `o\27malley@sip.gw.example`,
		"+1 (555) 123-4567":      "+15551234567@sip.gw.example",
		"+44 20 7946 0958":       "+442079460958@sip.gw.example",
		"555-1234":               "5551234@sip.gw.example",
		"sip:f%C3%BC@sip.other":  `fü\40sip.other@sip.gw.example`,
	} {
		j, err := d.PromptToJID(in)
		if err != nil || j.String() != want {
			t.Errorf("PromptToJID(%q) = %s, %v; want %s", in, j, err, want)
		}
	}
	for _, in := range []string{
		"", "   ", "@", "bob@", "@sip.other", "bob@bad host", "bob@sip..other", "sip:", "sip:sip.other",
		"sips:bob@sip.other", "sip:a b@x", "+", "+0123", "+1234567890123456", "bob\x00", "tel:+1555",
		"a\nb", "☃",
	} {
		if j, err := d.PromptToJID(in); err == nil {
			t.Errorf("PromptToJID(%q) = %s, want an error", in, j)
		}
	}
}

// The allocation-free fast path of validateJID must never accept what
// PRECIS (mellium's jid.New) rejects. Random short ASCII JIDs hit the edge
// cases (hyphens, dots, backslashes, digits) far more often than the fuzzer.
func TestPlainASCIIJIDAgreesWithPRECIS(t *testing.T) {
	const alphabet = "ab0-._\\\"&'/:<>@ ~Z%\x00\x7f"
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(n int) string {
		b := make([]byte, rng.IntN(n))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	accepted := 0
	for i := 0; i < 200000; i++ {
		j := JID{Local: word(6), Domain: word(8), Resource: word(4)}
		if !plainASCIIJID(j) {
			continue
		}
		accepted++
		if _, err := jid.New(j.Local, j.Domain, j.Resource); err != nil {
			t.Fatalf("fast path accepts %+v, PRECIS says %v", j, err)
		}
	}
	if accepted < 1000 {
		t.Errorf("only %d random JIDs took the fast path; the test proves little", accepted)
	}
}
