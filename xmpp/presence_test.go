package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/mapping"
)

// presenceSink is the PresenceHandler the tests register.
type presenceSink struct {
	pch chan mapping.Presence
}

func (s *presenceSink) ReceivePresence(p mapping.Presence) {
	select {
	case s.pch <- p:
	default:
		panic("presence sink full")
	}
}

func (s *presenceSink) next(t *testing.T) mapping.Presence {
	t.Helper()
	select {
	case p := <-s.pch:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("presence router got nothing")
		return mapping.Presence{}
	}
}

func (s *presenceSink) expectNone(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case p := <-s.pch:
		t.Fatalf("presence router got unexpected %+v", p)
	case <-time.After(d):
	}
}

func startPresence(t *testing.T) (*harness, *presenceSink) {
	t.Helper()
	ps := &presenceSink{pch: make(chan mapping.Presence, 100)}
	h := start(t, true, func(c *Component) { c.HandlePresence(ps) })
	return h, ps
}

func TestReceivePresence(t *testing.T) {
	h, ps := startPresence(t)
	alice := mapping.JID{Local: "alice", Domain: "localhost", Resource: "phone"}
	bob := mapping.JID{Local: "bob", Domain: testDomain}
	tests := []struct {
		name   string
		stanza string
		want   mapping.Presence
	}{
		{"available with show, statuses, priority, lang",
			`<presence id='p1' xml:lang='en' from='alice@localhost/phone' to='bob@gw.test'><show>away</show>` +
				`<status>Out &amp; about</status><status xml:lang='de'>Unterwegs</status><priority>5</priority>` +
				`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>`,
			mapping.Presence{ID: "p1", From: alice, To: bob, Show: "away", Lang: "en", Priority: 5,
				Status: []mapping.Text{{Value: "Out & about"}, {Lang: "de", Value: "Unterwegs"}}}},
		{"unavailable", `<presence type='unavailable' from='alice@localhost/phone' to='bob@gw.test'><status>bye</status></presence>`,
			mapping.Presence{From: alice, To: bob, Type: "unavailable", Status: []mapping.Text{{Value: "bye"}}}},
		{"subscribe to a bare JID", `<presence type='subscribe' id='s1' from='alice@localhost' to='bob@gw.test'/>`,
			mapping.Presence{ID: "s1", From: alice.Bare(), To: bob, Type: "subscribe"}},
		{"subscribed", `<presence type='subscribed' from='alice@localhost' to='bob@gw.test'/>`,
			mapping.Presence{From: alice.Bare(), To: bob, Type: "subscribed"}},
		{"unsubscribe", `<presence type='unsubscribe' from='alice@localhost' to='bob@gw.test'/>`,
			mapping.Presence{From: alice.Bare(), To: bob, Type: "unsubscribe"}},
		{"unsubscribed", `<presence type='unsubscribed' from='alice@localhost' to='bob@gw.test'/>`,
			mapping.Presence{From: alice.Bare(), To: bob, Type: "unsubscribed"}},
		{"probe from the server to the component domain", `<presence type='probe' from='localhost' to='gw.test'/>`,
			mapping.Presence{From: mapping.JID{Domain: "localhost"}, To: mapping.JID{Domain: testDomain}, Type: "probe"}},
		{"negative priority, dnd, resource under D", `<presence from='alice@localhost/phone' to='bob@gw.test/desk'><show>dnd</show><priority>-1</priority></presence>`,
			mapping.Presence{From: alice, To: mapping.JID{Local: "bob", Domain: testDomain, Resource: "desk"}, Show: "dnd", Priority: -1}},
		{"invalid show and priority ignored, out of range clamped",
			`<presence from='alice@localhost/phone' to='bob@gw.test'><show>sleepy</show><priority>x</priority></presence>`,
			mapping.Presence{From: alice, To: bob}},
		{"priority clamped", `<presence from='alice@localhost/phone' to='bob@gw.test'><show>xa</show><priority>500</priority></presence>`,
			mapping.Presence{From: alice, To: bob, Show: "xa", Priority: 127}},
		{"escaped localpart", `<presence type='subscribe' from='alice@localhost' to='bob\40sip.other@gw.test'/>`,
			mapping.Presence{From: alice.Bare(), To: mapping.JID{Local: `bob\40sip.other`, Domain: testDomain}, Type: "subscribe"}},
		{"error", `<presence type='error' id='e1' from='carol@localhost' to='bob@gw.test'><error type='cancel'>` +
			`<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`,
			mapping.Presence{ID: "e1", From: mapping.JID{Local: "carol", Domain: "localhost"}, To: bob, Type: "error",
				Error: &mapping.Failure{Condition: mapping.RemoteServerNotFound, Status: 404}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.conn.send(tt.stanza)
			got := ps.next(t)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v (%+v)\nwant %+v (%+v)", got, got.Error, tt.want, tt.want.Error)
			}
		})
	}
	h.rt.expectNone(t, 50*time.Millisecond) // nothing reached ReceiveXMPP
}

func TestReceivePresenceBad(t *testing.T) {
	h, ps := startPresence(t)
	tests := []struct {
		name, stanza, cond, from string
	}{
		{"malformed from", `<presence id='b1' from='a@b@c' to='bob@gw.test'/>`, "jid-malformed", "bob@gw.test"},
		{"missing from", `<presence id='b2' to='bob@gw.test' type='subscribe'/>`, "bad-request", "bob@gw.test"},
		{"missing to", `<presence id='b3' from='alice@localhost'/>`, "bad-request", testDomain},
		{"malformed to", `<presence id='b4' from='alice@localhost' to='bob@gw.test/'/>`, "jid-malformed", testDomain},
		{"unknown type", `<presence id='b5' type='invisible' from='alice@localhost' to='bob@gw.test'/>`, "bad-request", "bob@gw.test"},
		{"not under D", `<presence id='b6' from='alice@localhost' to='bob@elsewhere.test'/>`, "item-not-found", testDomain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.conn.send(tt.stanza)
			e := h.conn.readKind(t, "presence")
			id := strings.Split(strings.Split(tt.stanza, "id='")[1], "'")[0]
			if e.attr("type") != "error" || e.attr("id") != id || e.child("error") == nil || e.child("error").child(tt.cond) == nil {
				t.Fatalf("reply: %s", e.raw)
			}
			if e.attr("from") != tt.from {
				t.Errorf("reply from %q, want %q: %s", e.attr("from"), tt.from, e.raw)
			}
		})
	}
	// Never an error in answer to an error; the stream survives all of it.
	h.conn.send(`<presence type='error' id='b7' from='a@b@c' to='bob@gw.test'/>`)
	h.conn.send(`<presence type='subscribe' id='ok' from='alice@localhost' to='bob@gw.test'/>`)
	if p := ps.next(t); p.ID != "ok" {
		t.Fatalf("got %+v", p)
	}
	select {
	case e := <-h.conn.elems:
		t.Fatalf("unexpected %s", e.raw)
	case <-time.After(100 * time.Millisecond):
	}
	ps.expectNone(t, 50*time.Millisecond)
	if !h.c.Up() {
		t.Fatal("link dropped")
	}
}

// A Router without ReceivePresence: presence is ignored silently, as before.
func TestPresenceWithoutPresenceRouter(t *testing.T) {
	h := start(t, true, nil)
	h.conn.send(`<presence from='a@b@c' to='bob@gw.test'/>`)
	h.conn.send(`<presence type='subscribe' from='alice@localhost' to='bob@gw.test'/>`)
	h.conn.send(`<message id='m' type='chat' from='alice@localhost' to='bob@gw.test'><body>x</body></message>`)
	if m := h.rt.next(t); m.ID != "m" {
		t.Fatalf("got %+v", m)
	}
	select {
	case e := <-h.conn.elems:
		t.Fatalf("unexpected reply %s", e.raw)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestSendPresence(t *testing.T) {
	h, _ := startPresence(t)
	bob := mapping.JID{Local: "bob", Domain: testDomain}
	alice := mapping.JID{Local: "alice", Domain: "localhost"}
	tests := []struct {
		name string
		p    mapping.Presence
		want string // expected stanza; ids compared separately
	}{
		{"available with everything", mapping.Presence{ID: "x1", From: mapping.JID{Local: "bob", Domain: testDomain, Resource: "desk"}, To: alice, Lang: "en", Show: "dnd", Priority: -5,
			Status: []mapping.Text{{Value: "On the phone <ring> & \"co\""}, {Lang: "de", Value: "Am Telefon"}}},
			`<presence from='bob@gw.test/desk' to='alice@localhost' id='x1' xml:lang='en'><show>dnd</show>` +
				`<status>On the phone &lt;ring&gt; &amp; &quot;co&quot;</status><status xml:lang='de'>Am Telefon</status><priority>-5</priority></presence>`},
		{"subscribed, generated id", mapping.Presence{From: bob, To: alice, Type: "subscribed"},
			`<presence from='bob@gw.test' to='alice@localhost' type='subscribed'/>`},
		{"unavailable", mapping.Presence{ID: "u", From: bob, To: alice, Type: "unavailable", Status: []mapping.Text{{Value: "bye"}}},
			`<presence from='bob@gw.test' to='alice@localhost' id='u' type='unavailable'><status>bye</status></presence>`},
		{"probe from D when From is zero", mapping.Presence{ID: "pr", To: alice, Type: "probe"},
			`<presence from='gw.test' to='alice@localhost' id='pr' type='probe'/>`},
		{"error", mapping.Presence{ID: "e", From: bob, To: alice, Type: "error", Error: &mapping.Failure{Condition: mapping.ItemNotFound, Text: "no such SIP user"}},
			`<presence from='bob@gw.test' to='alice@localhost' id='e' type='error'><error type='cancel'>` +
				`<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no such SIP user</text></error></presence>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.c.SendPresence(tt.p); err != nil {
				t.Fatal(err)
			}
			got := h.conn.readKind(t, "presence")
			var want node
			wantXML := strings.Replace(tt.want, "<presence ", "<presence xmlns='jabber:component:accept' ", 1)
			if err := xml.Unmarshal([]byte(wantXML), &want); err != nil {
				t.Fatal(err)
			}
			if tt.p.ID == "" {
				if id := got.attr("id"); !strings.HasPrefix(id, "stox-") {
					t.Errorf("generated id %q", id)
				}
				got.Attrs = dropAttr(got.Attrs, "id")
			}
			if a, b := canon(got.node), canon(want); a != b {
				t.Errorf("wrote %s\n got  %s\n want %s", got.raw, a, b)
			}
		})
	}
	if got := metricValue(h.c.met.stanzas.WithLabelValues("out", "presence")); got != float64(len(tests)) {
		t.Errorf("presence out metric = %v", got)
	}
}

func dropAttr(as []xml.Attr, local string) []xml.Attr {
	out := as[:0:0]
	for _, a := range as {
		if a.Name.Local != local {
			out = append(out, a)
		}
	}
	return out
}

// canon renders a parsed element with sorted-by-appearance attributes,
// ignoring namespace declarations, for comparison.
func canon(n node) string {
	var b strings.Builder
	b.WriteString("<{" + n.XMLName.Space + "}" + n.XMLName.Local)
	for _, a := range n.Attrs {
		if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
			continue
		}
		b.WriteString(" " + a.Name.Local + "=" + a.Value)
	}
	b.WriteString(">" + strings.TrimSpace(n.Text))
	for _, k := range n.Kids {
		b.WriteString(canon(k))
	}
	b.WriteString("</>")
	return b.String()
}

func TestSendPresenceLinkDownAndQueueFull(t *testing.T) {
	c := New(Config{Domain: testDomain})
	if err := c.SendPresence(mapping.Presence{Type: "probe"}); !errors.Is(err, mapping.ErrLinkDown) {
		t.Fatalf("SendPresence without session = %v", err)
	}
	h := start(t, false, func(c *Component) { c.cfg.QueueSize = 2 })
	p := mapping.Presence{From: mapping.JID{Local: "bob", Domain: testDomain}, To: mapping.JID{Local: "a", Domain: "localhost"}}
	for i := 0; i < 2; i++ {
		if err := h.c.SendPresence(p); err != nil {
			t.Fatal(err)
		}
	}
	for n := 0; n < 2; {
		if h.conn.read(t).XMLName.Local == "presence" {
			n++
		}
	}
	var full bool
	for i := 0; i < 4; i++ {
		if err := h.c.SendPresence(p); errors.Is(err, mapping.ErrQueueFull) {
			full = true
			break
		}
	}
	if !full {
		t.Fatal("never ErrQueueFull")
	}
}

// Presence and messages share the queue: they are written in Send order,
// and message acks still work around presence.
func TestPresenceAndMessagesInOrder(t *testing.T) {
	h, _ := startPresence(t)
	bob := mapping.JID{Local: "bob", Domain: testDomain}
	alice := mapping.JID{Local: "alice", Domain: "localhost"}
	ack := newAck()
	if err := h.c.SendPresence(mapping.Presence{ID: "1", From: bob, To: alice, Type: "subscribed"}); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Send(mapping.XMPPMessage{ID: "2", From: bob, To: alice, Type: "chat", Body: "hi"}, ack.fn); err != nil {
		t.Fatal(err)
	}
	if err := h.c.SendPresence(mapping.Presence{ID: "3", From: bob, To: alice}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for len(ids) < 3 {
		e := h.conn.read(t)
		if e.XMLName.Local != "iq" {
			ids = append(ids, e.XMLName.Local+":"+e.attr("id"))
		}
	}
	if want := []string{"presence:1", "message:2", "presence:3"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("order %v, want %v", ids, want)
	}
	if err := ack.wait(t); err != nil {
		t.Fatalf("message ack = %v", err)
	}
}

func FuzzDecodePresence(f *testing.F) {
	for _, s := range []string{
		`<presence xmlns='jabber:component:accept' id='p1' xml:lang='en' from='alice@localhost/phone' to='bob@gw.test'><show>away</show><status>Out &amp; about</status><status xml:lang='de'>Unterwegs</status><priority>5</priority></presence>`,
		`<presence type='subscribe' from='alice@localhost' to='bob\40sip.other@gw.test'/>`,
		`<presence type='error' id='e1' from='carol@localhost' to='bob@gw.test'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`,
		`<presence from='a@b@c' to=''><priority>999999999999999999999</priority><show/><show>dnd</show></presence>`,
		`<presence type='unavailable' from='x@gw.test' to='y@gw.test/r'><status>&#x1F600;</status></presence>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, _, err := decodePresence(xml.NewDecoder(bytes.NewReader(data)), "", nil)
		if err != nil {
			return
		}
		if p.Priority < -128 || p.Priority > 127 {
			t.Fatalf("priority %d", p.Priority)
		}
		// A decoded presence re-encodes to XML that decodes to the same.
		var buf bytes.Buffer
		e := xml.NewEncoder(&buf)
		if err := encodePresence(e, &p, p.ID, "gw.test"); err != nil {
			t.Fatalf("encode: %v", err)
		}
		if err := e.Flush(); err != nil {
			t.Fatal(err)
		}
		p2, _, err := decodePresence(xml.NewDecoder(&buf), "", nil)
		if err != nil {
			t.Fatalf("re-decode %q: %v", buf.String(), err)
		}
		if p.ID != p2.ID || p.Type != p2.Type || p.Lang != p2.Lang || p.Show != p2.Show || p.Priority != p2.Priority ||
			p.From != p2.From || p.To != p2.To || len(p.Status) != len(p2.Status) {
			t.Fatalf("round trip:\n%+v\n%+v\n%s", p, p2, buf.String())
		}
		if (p.Error == nil) != (p2.Error == nil) || (p.Error != nil && p.Error.Condition != p2.Error.Condition) {
			t.Fatalf("error round trip: %+v / %+v", p.Error, p2.Error)
		}
	})
}

// FuzzReadWirePresence holds readWirePresence to what encoding/xml's
// reflection decoder makes of the same element.
func FuzzReadWirePresence(f *testing.F) {
	for _, s := range []string{
		`<presence xmlns='jabber:component:accept' id='p1' xml:lang='en' from='alice@localhost/phone' to='bob@gw.test'><show>away</show><status>Out &amp; about</status><status xml:lang='de'>Unterwegs</status><priority>5</priority></presence>`,
		`<presence type='error' id='e1' from='carol@localhost' to='bob@gw.test'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone <b>x</b> now</text></error><error type='wait'/></presence>`,
		`<?xml version='1.0'?> <presence from='a' from='b' x:id='1' xmlns:x='urn:x'><x:show xmlns:x='urn:y'>d<i>n</i>d</x:show><c xmlns='caps'><show>no</show></c><show/><priority> 3 </priority><!-- c --></presence>`,
		`<presence><status xml:lang='en'>a<![CDATA[<b>]]>c</status>`,
		`<presence><show>away</presence>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want wirePresence
		errWant := xml.NewDecoder(bytes.NewReader(data)).Decode(&want)
		d := xml.NewDecoder(bytes.NewReader(data))
		start, err := firstStart(d)
		var got wirePresence
		if err == nil {
			got, err = readWirePresence(start, d)
		}
		if (err == nil) != (errWant == nil) {
			t.Fatalf("error %v, encoding/xml %v", err, errWant)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("got  %+v\nwant %+v", got, want)
		}
	})
}

func TestJIDCache(t *testing.T) {
	var c jidCache
	for _, s := range []string{"alice@xmpp.example/phone", "alice@xmpp.example/phone", "bob@xmpp.example", "a@b@c", "alice@xmpp.example/phone"} {
		got, err := c.parse(s)
		want, wantErr := mapping.ParseJID(s)
		if got != want || (err == nil) != (wantErr == nil) {
			t.Fatalf("parse(%q) = %+v, %v; ParseJID: %+v, %v", s, got, err, want, wantErr)
		}
	}
}
