package mapping

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// FuzzParseURI: never panics; an accepted URI re-parses to itself from its
// String form, and its parts are control-free.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"sip:f%C3%BC@sip.example", "sip:o'malley@sip.example", "sip:foo@sip.example;gr=bar",
		"sip:m&m@xmpp.example", "sip:tsch%C3%BCss@xmpp.example", "sip:baz@xmpp.example;gr=qux",
		"sip:o'malley@host:5060;transport=tcp;gr=x", "sips:a@[2001:db8::1]:5061",
		"sip:alice%40xmpp.example@sip.example", "sip:a;b?c@h?x=y", "im:a@b", "sip:a%@b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			return
		}
		if !controlFreeUTF8(u.User) || !controlFreeUTF8(u.GR) || !validHost(u.Host) {
			t.Fatalf("ParseURI(%q) = %+v with unsafe parts", s, u)
		}
		again, err := ParseURI(u.String())
		if err != nil || again != u {
			t.Fatalf("ParseURI(%q) = %+v; its String %q re-parses to %+v, %v", s, u, u.String(), again, err)
		}
		if strings.ContainsAny(u.String(), " \r\n\"<>") {
			t.Fatalf("String() = %q carries characters a URI cannot", u.String())
		}
	})
}

// FuzzParseJID: never panics; an accepted JID is stable and maps to a SIP
// URI and back.
func FuzzParseJID(f *testing.F) {
	for _, s := range []string{
		`o\27malley@sip.example`, "fü@sip.example", "foo@sip.example/bar", `m\26m@xmpp.example`,
		"baz@xmpp.example/qux", `bob\40sip.other@sip.gw.example`, `\20a@x`, "a@b/c/d", "[::1]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if l, dom, r, err := jid.SplitString(s); err == nil {
			raw := JID{Local: l, Domain: dom, Resource: r}
			if _, err := jid.New(l, dom, r); plainASCIIJID(raw) && err != nil {
				t.Fatalf("fast path accepts %+v, PRECIS says %v", raw, err)
			}
		}
		j, err := ParseJID(s)
		if err != nil {
			return
		}
		again, err := ParseJID(j.String())
		if err != nil || again != j {
			t.Fatalf("ParseJID(%q) = %+v; re-parse gives %+v, %v", s, j, again, err)
		}
		u := JIDToURI(j)
		_ = u.String()
		if j.Domain == addrDomains.XMPP {
			_, _ = addrDomains.SIPTarget(j)
		}
	})
}

// FuzzUnescapeLocal: never panics; Unescape inverts Escape for every input;
// Escape∘Unescape is idempotent, and the identity on Escape's own output.
func FuzzUnescapeLocal(f *testing.F) {
	for _, s := range []string{
		`\2plus\2is\4`, `foo\bar`, `foob\41r`, `ab\40x`, `abc\20x`, `c\3a\5c5commas`,
		`\5c3and\2is\5c5cool`, `space\20cadet`, `\`, `\5`, `o\27malley`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u := UnescapeLocal(s)
		if got := UnescapeLocal(EscapeLocal(s)); got != s {
			t.Fatalf("UnescapeLocal(EscapeLocal(%q)) = %q", s, got)
		}
		e := EscapeLocal(u)
		if got := EscapeLocal(UnescapeLocal(e)); got != e {
			t.Fatalf("EscapeLocal(UnescapeLocal(%q)) = %q", e, got)
		}
		if strings.ContainsAny(EscapeLocal(s), " \"&'/:<>@") {
			t.Fatalf("EscapeLocal(%q) = %q leaves a disallowed character", s, EscapeLocal(s))
		}
		if len(u) > len(s) {
			t.Fatalf("UnescapeLocal(%q) grew to %q", s, u)
		}
	})
}

// FuzzParseCPIM: never panics, and an accepted message is well formed.
func FuzzParseCPIM(f *testing.F) {
	f.Add(crlf(rfc3862Example))
	f.Add([]byte(rfc3862Example))
	f.Add([]byte("From: <im:a@b>\r\n\r\nContent-Type: text/plain\r\n\r\nhi"))
	f.Add([]byte("\nContent-Type: text/plain;\n charset=utf-8\n\n"))
	f.Add([]byte("Subject: \xff\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCPIM(b)
		if err != nil {
			return
		}
		if c.ContentType == "" || !controlFreeUTF8(c.ContentType) {
			t.Fatalf("accepted Content-Type %q", c.ContentType)
		}
		for name, values := range c.Headers {
			for _, v := range values {
				if name == "" || !controlFreeUTF8(v) {
					t.Fatalf("accepted header %q: %q", name, v)
				}
			}
		}
		if len(c.Body) > len(b) {
			t.Fatal("body longer than input")
		}
	})
}

// FuzzMessageToXMPP: for any wire input, either a *Failure or a message of
// type normal whose text XML 1.0 can carry and whose addresses are valid.
func FuzzMessageToXMPP(f *testing.F) {
	f.Add("sip:juliet@example.com", "sip:romeo@sip.example;gr=x", "text/plain;charset=UTF-8", []byte("hi"), "subj", "callid@host", "en")
	f.Add("sip:juliet%40example.com@sip.example", "sip:o'malley@sip.other", "message/cpim", crlf(rfc3862Example), "", "", "fr, en")
	f.Add("sip:bob@sip.example", "sip:x@y", "text/html", []byte("<b>"), "", "", "")
	f.Add("sips:a@b", "sip:x@y", "text/plain", []byte("\xff\x00"), "\r\n", "\x00", "\r\n")
	f.Fuzz(func(t *testing.T, ruri, from, ct string, body []byte, subject, callID, lang string) {
		r, err := ParseURI(ruri)
		if err != nil {
			return
		}
		fr, err := ParseURI(from)
		if err != nil {
			return
		}
		m, err := addrDomains.MessageToXMPP(SIPMessage{
			RequestURI: r, From: fr, To: r, ContentType: ct, Body: body,
			Subject: subject, CallID: callID, ContentLanguage: lang,
		})
		if err != nil {
			var fail *Failure
			if !errors.As(err, &fail) || fail.Status < 400 || fail.Status > 699 {
				t.Fatalf("error %v is not a SIP failure", err)
			}
			return
		}
		if m.Type != "normal" || (m.Body == "" && m.Subject == "") {
			t.Fatalf("bad message %+v", m)
		}
		for _, s := range []string{m.Body, m.Subject, m.Thread} {
			if !xmlSafe(s) {
				t.Fatalf("text %q cannot be carried by XML", s)
			}
		}
		if m.Lang != "" && languageTag(m.Lang) != m.Lang {
			t.Fatalf("xml:lang %q", m.Lang)
		}
		for _, j := range []JID{m.From, m.To} {
			if err := validateJID(j); err != nil {
				t.Fatalf("invalid JID %+v: %v", j, err)
			}
		}
	})
}

func xmlSafe(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !xmlChar(r) {
			return false
		}
	}
	return true
}
