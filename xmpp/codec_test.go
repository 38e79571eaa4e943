package xmpp

import (
	"bytes"
	"encoding/xml"
	"io"
	"testing"

	"stox.dev/stox/mapping"
)

const sampleStanza = `<message xmlns='jabber:component:accept' id='m1' type='chat' xml:lang='en' from='alice@localhost/phone' to='bob@sip.localhost'>` +
	`<body>Hello &lt;you&gt; &amp; me</body><thread>t-1</thread><active xmlns='http://jabber.org/protocol/chatstates'/></message>`

func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(sampleStanza))
	f.Add([]byte(`<message type='error' id='x' from='a@b' to='c@d'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>t</text></error></message>`))
	f.Add([]byte(`<message from='a@b@c' to=''><body xml:lang='de'>x</body><body>y</body><subject>s</subject></message>`))
	f.Add([]byte(`<message from='o\27malley@gw' to='x\20y@gw/r\40s'><body>&#x1F600;</body></message>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _, err := decodeMessage(xml.NewDecoder(bytes.NewReader(data)))
		if err != nil {
			return
		}
		// A decoded message re-encodes to XML that decodes to the same message.
		var buf bytes.Buffer
		e := xml.NewEncoder(&buf)
		if err := encodeMessage(e, &m, m.ID, "gw.test"); err != nil {
			t.Fatalf("encode: %v", err)
		}
		if err := e.Flush(); err != nil {
			t.Fatal(err)
		}
		m2, _, err := decodeMessage(xml.NewDecoder(&buf))
		if err != nil {
			t.Fatalf("re-decode %q: %v", buf.String(), err)
		}
		if m.ID != m2.ID || m.Type != m2.Type || m.Lang != m2.Lang || m.Body != m2.Body || m.Subject != m2.Subject ||
			m.Thread != m2.Thread || m.From != m2.From || m.To != m2.To {
			t.Fatalf("round trip:\n%+v\n%+v\n%s", m, m2, buf.String())
		}
		if (m.Error == nil) != (m2.Error == nil) || (m.Error != nil && m.Error.Condition != m2.Error.Condition) {
			t.Fatalf("error round trip: %+v / %+v", m.Error, m2.Error)
		}
	})
}

func BenchmarkEncodeMessage(b *testing.B) {
	m := mapping.XMPPMessage{
		ID: "stox-1", Type: "chat", Lang: "en",
		From: mapping.JID{Local: "1001", Domain: "sip.localhost"},
		To:   mapping.JID{Local: "alice", Domain: "localhost", Resource: "phone"},
		Body: "Hello <alice> & friends, this is a typical short instant message.",
	}
	e := xml.NewEncoder(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		if err := encodeMessage(e, &m, m.ID, "sip.localhost"); err != nil {
			b.Fatal(err)
		}
		if err := e.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	data := []byte(sampleStanza)
	r := bytes.NewReader(data)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(data)
		if _, _, err := decodeMessage(xml.NewDecoder(r)); err != nil {
			b.Fatal(err)
		}
	}
}
