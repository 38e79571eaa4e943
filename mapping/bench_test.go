package mapping

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"
)

func BenchmarkSIPTarget(b *testing.B) {
	d := addrDomains
	targets := []JID{
		{Local: "bob", Domain: "sip.gw.example"},
		{Local: `o\27malley\40sip.other`, Domain: "sip.gw.example", Resource: "desk"},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := d.SIPTarget(targets[i&1]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkXMPPFrom(b *testing.B) {
	d := addrDomains
	froms := []URI{
		{Scheme: "sip", User: "bob", Host: "sip.example", GR: "urn:uuid:f81d4fae"},
		{Scheme: "sip", User: "o'malley", Host: "sip.other"},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = d.XMPPFrom(froms[i&1])
	}
}

func BenchmarkStatusForCondition(b *testing.B) {
	conds := []Condition{ItemNotFound, ServiceUnavailable, Gone, RecipientUnavailable}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = StatusForCondition(conds[i&3], i&4 == 0, false)
	}
}

func BenchmarkMessageToSIP(b *testing.B) {
	m := XMPPMessage{
		From:   JID{Local: "juliet", Domain: "example.com", Resource: "balcony"},
		To:     JID{Local: "romeo", Domain: "sip.gw.example"},
		Type:   "chat",
		Lang:   "en",
		Body:   "Art thou not Romeo, and a Montague?",
		Thread: "735d2e41-20f2-44f8-a2d2-0a7e6a4e3b0f",
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := addrDomains.MessageToSIP(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMessageToXMPP(b *testing.B) {
	bench := func(b *testing.B, m SIPMessage) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := addrDomains.MessageToXMPP(m); err != nil {
				b.Fatal(err)
			}
		}
	}
	plain := SIPMessage{
		RequestURI:      URI{Scheme: "sip", User: "juliet", Host: "example.com"},
		From:            URI{Scheme: "sip", User: "romeo", Host: "sip.example", GR: "urn:uuid:f81d4fae"},
		CallID:          "a84b4c76e66710",
		ContentType:     "text/plain;charset=UTF-8",
		ContentLanguage: "en",
		Body:            []byte("Neither, fair saint, if either thee dislike."),
	}
	b.Run("plain", func(b *testing.B) { bench(b, plain) })
	cpim := plain
	cpim.ContentType = "message/cpim"
	cpim.Body = crlf("From: <im:romeo@sip.example>\nTo: <im:juliet@example.com>\n\nContent-Type: text/plain; charset=utf-8\n\nNeither, fair saint, if either thee dislike.")
	b.Run("cpim", func(b *testing.B) { bench(b, cpim) })
}

// BenchmarkJingleToSDP: StanzaJS's session-initiate, decoded, to the SDP
// offer of the INVITE (decoding the XML included: it is on the path).
func BenchmarkJingleToSDP(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "calls", "stanzajs-initiate.xml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var j Jingle
		if err := xml.Unmarshal(raw, &j); err != nil {
			b.Fatal(err)
		}
		s, err := JingleToSession(j)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := MarshalSDP(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSDPToJingle: baresip's ICE+DTLS offer to the contents of a
// session-initiate, encoded.
func BenchmarkSDPToJingle(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "calls", "baresip-ice-dtls.sdp"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := ParseSDP(raw)
		if err != nil {
			b.Fatal(err)
		}
		j := Jingle{Action: ActSessionInitiate, SID: "s"}
		j.Contents, j.Group = SessionToJingle(s, RoleInitiator, RoleInitiator)
		if _, err := xml.Marshal(j); err != nil {
			b.Fatal(err)
		}
	}
}
