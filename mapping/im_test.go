package mapping

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func mustJID(t testing.TB, s string) JID {
	t.Helper()
	j, err := ParseJID(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func mustURI(t testing.TB, s string) URI {
	t.Helper()
	u, err := ParseURI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// RFC 7572 §5 table, XMPP → SIP.
func TestMessageToSIP(t *testing.T) {
	d := addrDomains
	m := XMPPMessage{
		ID:      "m1",
		From:    mustJID(t, "juliet@example.com/balcony"),
		To:      mustJID(t, "romeo@sip.gw.example"),
		Type:    "chat",
		Lang:    "en",
		Body:    "Art thou not Romeo, and a Montague?",
		Subject: "Wherefore",
		Thread:  "735d2e41-20f2-44f8-a2d2-0a7e6a4e3b0f",
	}
	s, err := d.MessageToSIP(m)
	if err != nil {
		t.Fatal(err)
	}
	want := SIPMessage{
		RequestURI:      mustURI(t, "sip:romeo@sip.example"),
		From:            mustURI(t, "sip:juliet@example.com;gr=balcony"),
		To:              mustURI(t, "sip:romeo@sip.example"),
		CallID:          "735d2e41-20f2-44f8-a2d2-0a7e6a4e3b0f",
		Subject:         "Wherefore",
		ContentType:     "text/plain;charset=UTF-8",
		ContentLanguage: "en",
		Body:            []byte(m.Body),
	}
	if !sameSIP(s, want) {
		t.Errorf("MessageToSIP =\n%+v\nwant\n%+v", s, want)
	}
	for _, typ := range []string{"", "normal", "headline", "x-unknown"} {
		m.Type = typ
		if _, err := d.MessageToSIP(m); err != nil {
			t.Errorf("type %q: %v", typ, err)
		}
	}
	// Subject-only messages carry no body and no Content-Type.
	m.Body, m.Thread = "", ""
	s, err = d.MessageToSIP(m)
	if err != nil || s.Body != nil || s.ContentType != "" || s.Subject != "Wherefore" || s.CallID != "" {
		t.Errorf("subject only: %+v, %v", s, err)
	}
}

func sameSIP(a, b SIPMessage) bool {
	return a.RequestURI == b.RequestURI && a.From == b.From && a.FromDisplay == b.FromDisplay &&
		a.To == b.To && a.CallID == b.CallID && a.Subject == b.Subject && a.ContentType == b.ContentType &&
		a.ContentLanguage == b.ContentLanguage && string(a.Body) == string(b.Body)
}

func TestMessageToSIPRefusals(t *testing.T) {
	d := addrDomains
	base := XMPPMessage{From: mustJID(t, "juliet@example.com/balcony"), To: mustJID(t, "romeo@sip.gw.example"), Body: "hi"}
	tests := []struct {
		name   string
		edit   func(*XMPPMessage)
		cond   Condition
		status int
	}{
		{"groupchat", func(m *XMPPMessage) { m.Type = "groupchat" }, BadRequest, 400},
		{"error", func(m *XMPPMessage) { m.Type = "error"; m.Error = &Failure{Condition: Gone} }, BadRequest, 400},
		{"too big", func(m *XMPPMessage) { m.Body = strings.Repeat("x", MaxPagerBody+1) }, PolicyViolation, 413},
		{"too big multibyte", func(m *XMPPMessage) { m.Body = strings.Repeat("ü", MaxPagerBody/2+1) }, PolicyViolation, 413},
		{"foreign domain", func(m *XMPPMessage) { m.To = mustJID(t, "romeo@other.example") }, ItemNotFound, 404},
		{"to the gateway", func(m *XMPPMessage) { m.To = mustJID(t, "sip.gw.example") }, ItemNotFound, 404},
	}
	for _, tc := range tests {
		m := base
		tc.edit(&m)
		_, err := d.MessageToSIP(m)
		t.Run(tc.name, func(t *testing.T) { wantFailure(t, err, tc.cond, tc.status) })
	}
	m := base
	m.Body = strings.Repeat("x", MaxPagerBody)
	if _, err := d.MessageToSIP(m); err != nil {
		t.Errorf("a body of exactly MaxPagerBody bytes: %v", err)
	}
	m.Body = ""
	if _, err := d.MessageToSIP(m); !errors.Is(err, ErrNoContent) {
		t.Errorf("no body, no subject: %v, want ErrNoContent", err)
	}
}

// XMPP data must never put CR, LF or other controls into SIP header fields.
func TestMessageToSIPHeaderInjection(t *testing.T) {
	d := addrDomains
	attacks := []string{
		"hi\r\nVia: SIP/2.0/UDP evil.example",
		"hi\nTo: <sip:victim@example.com>",
		"hi\rX: y",
		"a\x00b",
		"\x85next line",
		"a\u2028b",
		"\xff\xfe",
		"\t\r\n",
		strings.Repeat("\r\n", 1000),
		"@@@",
		"a@b@c",
		strings.Repeat("thread", 100),
	}
	for _, a := range attacks {
		m := XMPPMessage{
			From: mustJID(t, "juliet@example.com/balcony"), To: mustJID(t, "romeo@sip.gw.example"),
			Body: "hi", Subject: a, Thread: a, Lang: a,
		}
		s, err := d.MessageToSIP(m)
		if err != nil {
			t.Fatalf("%q: %v", a, err)
		}
		for field, v := range map[string]string{"Subject": s.Subject, "Call-ID": s.CallID, "Content-Language": s.ContentLanguage} {
			if !safeHeader(v) {
				t.Errorf("%q reached %s as %q", a, field, v)
			}
		}
		if !validCallID(s.CallID) {
			t.Errorf("thread %q gave Call-ID %q outside RFC 3261 callid", a, s.CallID)
		}
		if s.ContentLanguage != "" {
			t.Errorf("invalid xml:lang %q became Content-Language %q", a, s.ContentLanguage)
		}
	}
}

func safeHeader(v string) bool {
	if !utf8.ValidString(v) {
		return false
	}
	for _, r := range v {
		if isControl(r) {
			return false
		}
	}
	return true
}

func validCallID(c string) bool {
	if c == "" {
		return true
	}
	if len(c) > maxCallID {
		return false
	}
	w1, w2, two := strings.Cut(c, "@")
	if w1 == "" || two && w2 == "" {
		return false
	}
	for i := 0; i < len(c); i++ {
		if !callIDChar[c[i]] && c[i] != '@' {
			return false
		}
	}
	return true
}

func TestCallIDFromThread(t *testing.T) {
	for in, want := range map[string]string{
		"":                             "",
		"abc-123":                      "abc-123",
		"a@b":                          "a@b",
		"a b":                          "a%20b",
		"@a":                           "%40a",
		"a@":                           "a%40",
		"a@b@c":                        "a@b%40c",
		"ü":                            "%C3%BC",
		"x\r\nVia: y":                  "x%0D%0AVia:%20y",
		strings.Repeat("a", maxCallID): strings.Repeat("a", maxCallID),
	} {
		if got := callIDFromThread(in); got != want {
			t.Errorf("callIDFromThread(%q) = %q, want %q", in, got, want)
		}
	}
	long := callIDFromThread(strings.Repeat("a", maxCallID+1))
	if !strings.HasPrefix(long, "thread-") || len(long) > maxCallID || long != callIDFromThread(strings.Repeat("a", maxCallID+1)) {
		t.Errorf("long thread gave %q", long)
	}
}

func TestLanguageTag(t *testing.T) {
	for _, ok := range []string{"en", "en-US", "de-CH-1901", "i-klingon", "x-pig-latin", "zh-Hant-TW", "abcdefgh"} {
		if languageTag(ok) != ok {
			t.Errorf("languageTag(%q) rejected", ok)
		}
	}
	for _, bad := range []string{"", "1en", "en-", "-en", "en--US", "en_US", "abcdefghi", "en-123456789", "en US", "en\r\n", "ü", strings.Repeat("a-", 40) + "a"} {
		if got := languageTag(bad); got != "" {
			t.Errorf("languageTag(%q) = %q, want empty", bad, got)
		}
	}
}

// RFC 7572 §4 table, SIP → XMPP.
func TestMessageToXMPP(t *testing.T) {
	d := addrDomains
	s := SIPMessage{
		RequestURI:      mustURI(t, "sip:juliet@example.com"),
		From:            mustURI(t, "sip:romeo@sip.example;gr=urn:uuid:f81d4fae"),
		To:              mustURI(t, "sip:juliet@example.com"),
		CallID:          "a84b4c76e66710",
		Subject:         "Wherefore",
		ContentType:     "text/plain; charset=UTF-8",
		ContentLanguage: "en",
		Body:            []byte("Neither, fair saint, if either thee dislike."),
	}
	m, err := d.MessageToXMPP(s)
	if err != nil {
		t.Fatal(err)
	}
	want := XMPPMessage{
		From:    JID{Local: "romeo", Domain: "sip.gw.example", Resource: "urn:uuid:f81d4fae"},
		To:      JID{Local: "juliet", Domain: "example.com"},
		Type:    "normal",
		Lang:    "en",
		Body:    string(s.Body),
		Subject: "Wherefore",
		Thread:  "a84b4c76e66710",
	}
	if m != want {
		t.Errorf("MessageToXMPP =\n%+v\nwant\n%+v", m, want)
	}
	// The other address forms of docs/interworking.md, "Addresses".
	s.RequestURI = mustURI(t, "sip:juliet%40example.com@sip.example")
	s.From = mustURI(t, "sip:o'malley@sip.other")
	if m, err = d.MessageToXMPP(s); err != nil || m.To.String() != "juliet@example.com" ||
		m.From.String() != `o\27malley\40sip.other@sip.gw.example` {
		t.Errorf("escaped forms: %+v, %v", m, err)
	}
}

func TestMessageToXMPPContent(t *testing.T) {
	d := addrDomains
	cpim := string(crlf("From: MR SANDERS <im:piglet@100akerwood.com>\nSubject:;lang=fr beau temps\nSubject: the weather\n\nContent-Type: text/plain; charset=utf-8\n\nHello from CPIM"))
	tests := []struct {
		ct, body, subject     string
		wantBody, wantSubject string
	}{
		{"text/plain", "hi", "", "hi", ""},
		{"TEXT/PLAIN;CHARSET=\"us-ascii\"", "hi", "", "hi", ""},
		{"text/plain;format=flowed;charset=utf-8", "hi", "", "hi", ""},
		{"", "hi", "", "hi", ""},
		{"text/plain", "", "only subject", "", "only subject"},
		{"message/cpim", cpim, "", "Hello from CPIM", "the weather"},
		{"Message/CPIM", cpim, "sip subject wins", "Hello from CPIM", "sip subject wins"},
		{"text/plain", "bad \xff byte", "", "bad \uFFFD byte", ""},
		{"text/plain", "bell\x07 and \x00 nul", "", "bell\uFFFD and \uFFFD nul", ""},
		{"text/plain", "keep\ttab\r\nand lines", "", "keep\ttab\r\nand lines", ""},
		{"text/plain", "\uFFFE\uFFFF", "s\x01", "\uFFFD\uFFFD", "s\uFFFD"},
	}
	for _, tc := range tests {
		s := SIPMessage{
			RequestURI: mustURI(t, "sip:juliet@example.com"), From: mustURI(t, "sip:romeo@sip.example"),
			ContentType: tc.ct, Body: []byte(tc.body), Subject: tc.subject,
		}
		m, err := d.MessageToXMPP(s)
		if err != nil || m.Body != tc.wantBody || m.Subject != tc.wantSubject {
			t.Errorf("%q %q: body %q subject %q, %v; want %q %q", tc.ct, tc.body, m.Body, m.Subject, err, tc.wantBody, tc.wantSubject)
		}
	}
}

func TestMessageToXMPPRefusals(t *testing.T) {
	d := addrDomains
	base := SIPMessage{
		RequestURI: mustURI(t, "sip:juliet@example.com"), From: mustURI(t, "sip:romeo@sip.example"),
		ContentType: "text/plain", Body: []byte("hi"),
	}
	tests := []struct {
		name   string
		edit   func(*SIPMessage)
		cond   Condition
		status int
	}{
		{"html", func(m *SIPMessage) { m.ContentType = "text/html" }, NotAcceptable, 415},
		{"iscomposing", func(m *SIPMessage) { m.ContentType = "application/im-iscomposing+xml" }, NotAcceptable, 415},
		{"latin-1", func(m *SIPMessage) { m.ContentType = "text/plain; charset=ISO-8859-1" }, NotAcceptable, 415},
		{"cpim with html", func(m *SIPMessage) {
			m.ContentType, m.Body = "message/cpim", crlf("From: <im:a@b>\n\nContent-Type: text/html\n\n<b>x</b>")
		}, NotAcceptable, 415},
		{"cpim latin-1", func(m *SIPMessage) {
			m.ContentType, m.Body = "message/cpim", crlf("\nContent-Type: text/plain; charset=latin1\n\nx")
		}, NotAcceptable, 415},
		{"malformed cpim", func(m *SIPMessage) { m.ContentType, m.Body = "message/cpim", []byte("garbage") }, BadRequest, 400},
		{"empty", func(m *SIPMessage) { m.Body = nil }, BadRequest, 400},
		{"sips request-uri", func(m *SIPMessage) { m.RequestURI.Scheme = "sips" }, Forbidden, 403},
		{"sips To", func(m *SIPMessage) { m.To = mustURI(t, "sips:juliet@example.com") }, Forbidden, 403},
		{"SIP user", func(m *SIPMessage) { m.RequestURI = mustURI(t, "sip:bob@sip.example") }, ItemNotFound, 404},
		{"sender without JID form", func(m *SIPMessage) { m.From = URI{Scheme: "sip", User: " x", Host: "sip.example"} }, BadRequest, 400},
	}
	for _, tc := range tests {
		m := base
		tc.edit(&m)
		_, err := d.MessageToXMPP(m)
		t.Run(tc.name, func(t *testing.T) { wantFailure(t, err, tc.cond, tc.status) })
	}
	_, err := d.MessageToXMPP(SIPMessage{RequestURI: base.RequestURI, From: base.From, ContentType: "text/html", Body: []byte("x")})
	var f *Failure
	if errors.As(err, &f) && !strings.Contains(f.Text, "text/plain") {
		t.Errorf("415 text %q does not say what is accepted", f.Text)
	}
}

// Language from SIP: the first tag of the list, invalid ones dropped.
func TestMessageToXMPPLanguage(t *testing.T) {
	for in, want := range map[string]string{"en": "en", "fr, en": "fr", " de-CH ": "de-CH", "en\r\nx": "", "1": ""} {
		s := SIPMessage{
			RequestURI: mustURI(t, "sip:juliet@example.com"), From: mustURI(t, "sip:romeo@sip.example"),
			Body: []byte("x"), ContentLanguage: in,
		}
		m, err := addrDomains.MessageToXMPP(s)
		if err != nil || m.Lang != want {
			t.Errorf("Content-Language %q gave xml:lang %q, %v; want %q", in, m.Lang, err, want)
		}
	}
}

// A message crossing the gateway twice keeps its text, subject and language.
func TestMessageRoundTrip(t *testing.T) {
	d := addrDomains
	x := XMPPMessage{
		From: mustJID(t, "juliet@example.com/balcony"), To: mustJID(t, `o\27malley\40sip.other@sip.gw.example`),
		Body: "fü & m&m's / ok", Subject: "s", Thread: "t1", Lang: "de",
	}
	s, err := d.MessageToSIP(x)
	if err != nil {
		t.Fatal(err)
	}
	// The reply travels the other way, from the SIP user to the XMPP user.
	s.RequestURI, s.From = s.From, s.To
	s.RequestURI.GR = ""
	back, err := d.MessageToXMPP(s)
	if err != nil {
		t.Fatal(err)
	}
	if back.From != x.To || back.To != x.From.Bare() || back.Body != x.Body || back.Subject != x.Subject ||
		back.Thread != x.Thread || back.Lang != x.Lang {
		t.Errorf("round trip: %+v, sent %+v", back, x)
	}
}
