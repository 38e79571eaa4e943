package xmpp

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"

	"stox.dev/stox/mapping"
)

// stanzaClient is a client that records every stanza it receives and
// answers Jingle IQ sets with a result, as a Jingle client acknowledges
// each action (XEP-0166 §6.3).
type stanzaClient struct {
	xs  *xmpp.Session
	jid string // the bound full JID
	in  chan node
}

func startStanzaClient(t *testing.T, p *prosody, addr, pw string) *stanzaClient {
	t.Helper()
	xs, conn := clientLogin(t, p, addr, pw)
	sc := &stanzaClient{xs: xs, jid: xs.LocalAddr().String(), in: make(chan node, 100)}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = xs.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			var n node
			if err := xml.NewTokenDecoder(xmlstream.MultiReader(tokens(start.Copy()), r)).Decode(&n); err != nil {
				return nil
			}
			if n.XMLName.Local == "iq" && n.attr("type") == "set" && n.child("jingle") != nil {
				res := xml.StartElement{Name: xml.Name{Local: "iq"}, Attr: []xml.Attr{
					attr("type", "result"), attr("id", n.attr("id")), attr("to", n.attr("from"))}}
				if err := r.EncodeToken(res); err != nil {
					return err
				}
				if err := r.EncodeToken(res.End()); err != nil {
					return err
				}
			}
			select {
			case sc.in <- n:
			default:
			}
			return nil
		}))
	}()
	t.Cleanup(func() { _ = xs.Close(); conn.Close(); <-served })
	return sc
}

// wait returns the first stanza for which match is true.
func (sc *stanzaClient) wait(t *testing.T, what string, match func(n node) bool) node {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case n := <-sc.in:
			if match(n) {
				return n
			}
		case <-deadline:
			t.Fatalf("client saw no %s", what)
			return node{}
		}
	}
}

// Calls through a real server: a client discovers a SIP contact's call
// features, sends it a JMI propose and a Jingle session-initiate and gets
// the handler's answers; the component proposes and initiates toward the
// client, and its presence carries the caps.
func TestProsodyCalls(t *testing.T) {
	const comp, secret = "sip.localhost", "secret"
	p := newProsody(t, comp, secret)
	p.register(t, "alice", "alicepw")
	cs := newCallSink()
	c := runComponent(t, p, comp, secret, func(c *Component) { c.HandleCalls(cs) })
	sc := startStanzaClient(t, p, "alice@localhost", "alicepw")
	aliceFull, err := mapping.ParseJID(sc.jid)
	if err != nil || aliceFull.Resource == "" {
		t.Fatalf("bound JID %q: %v", sc.jid, err)
	}
	bob := mapping.JID{Local: "bob", Domain: comp, Resource: "phone"}
	// Available, so that messages to alice's bare JID reach this resource
	// (RFC 6121 §8.5.2.1).
	sc.send(t, `<presence/>`)

	// disco#info of the contact's full JID.
	sc.send(t, `<iq type='get' id='d1' to='bob@sip.localhost/phone'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	n := sc.wait(t, "disco result", func(n node) bool { return n.attr("id") == "d1" })
	q := n.child("query")
	if n.attr("type") != "result" || q == nil {
		t.Fatalf("disco: %+v", n)
	}
	var feats []string
	for _, k := range q.Kids {
		if k.XMLName.Local == "feature" {
			feats = append(feats, k.attr("var"))
		}
	}
	for _, f := range callFeatures {
		if !strings.Contains(strings.Join(feats, " "), f) {
			t.Fatalf("feature %s missing from %v", f, feats)
		}
	}

	// JMI propose to the bare contact.
	sc.send(t, `<message type='chat' id='p1' to='bob@sip.localhost'><propose xmlns='urn:xmpp:jingle-message:0' id='sid-p'>`+
		`<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose><store xmlns='urn:xmpp:hints'/></message>`)
	if m := cs.nextJMI(t); m.Kind != "propose" || m.ID != "sid-p" || m.From != aliceFull || m.To != bob.Bare() {
		t.Fatalf("propose: %+v", m)
	}

	// session-initiate to the full JID: the handler's answer, then its error.
	iq := strings.NewReplacer(`from='alice@localhost/laptop' `, "", "@gw.test", "@"+comp).Replace(initiateIQ)
	sc.send(t, iq)
	if in := cs.nextIQ(t); in.From != aliceFull || in.To != bob || in.Jingle.SID != "s-1" {
		t.Fatalf("jingle in: %+v", in)
	}
	if n := sc.wait(t, "jingle result", func(n node) bool { return n.attr("id") == "j1" }); n.attr("type") != "result" || n.attr("from") != "bob@sip.localhost/phone" {
		t.Fatalf("jingle result: %+v", n)
	}
	cs.setAnswer(&mapping.JingleError{Condition: mapping.ItemNotFound, Jingle: "unknown-session"})
	sc.send(t, `<iq type='set' id='j2' to='bob@sip.localhost/phone'><jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='zz'><reason><success/></reason></jingle></iq>`)
	cs.nextIQ(t)
	n = sc.wait(t, "jingle error", func(n node) bool { return n.attr("id") == "j2" })
	if cond, jc, _ := errorConds(elem{node: n}); n.attr("type") != "error" || cond != "item-not-found" || jc != "unknown-session" {
		t.Fatalf("jingle error: %+v", n)
	}

	// Presence with caps, JMI and Jingle from the contact to the client.
	if err := c.SendPresence(mapping.Presence{From: bob.Bare(), To: aliceFull}); err != nil {
		t.Fatal(err)
	}
	n = sc.wait(t, "presence", func(n node) bool { return n.XMLName.Local == "presence" && strings.HasPrefix(n.attr("from"), "bob@") })
	if caps := n.child("c"); n.attr("from") != "bob@sip.localhost/phone" || caps == nil || caps.attr("ver") != c.disco.ver {
		t.Fatalf("presence: %+v", n)
	}
	if err := c.SendJMI(mapping.JMI{From: bob.Bare(), To: aliceFull.Bare(), Kind: "propose", ID: "sid-out", Media: []string{"audio"}}); err != nil {
		t.Fatal(err)
	}
	n = sc.wait(t, "propose", func(n node) bool { return n.XMLName.Local == "message" && n.child("propose") != nil })
	if n.child("propose").attr("id") != "sid-out" || n.attr("type") != "chat" {
		t.Fatalf("propose out: %+v", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j := testJingle()
	j.Initiator = bob.String()
	if err := c.SendJingle(ctx, bob, aliceFull, j); err != nil {
		t.Fatalf("SendJingle: %v", err)
	}
	if n := sc.wait(t, "session-initiate", func(n node) bool { return n.XMLName.Local == "iq" && n.child("jingle") != nil }); n.child("jingle").attr("sid") != "s-9" {
		t.Fatalf("initiate out: %+v", n)
	}
	// A Jingle IQ to a user that has no such resource comes back as an error.
	err = c.SendJingle(ctx, bob, mapping.JID{Local: "alice", Domain: "localhost", Resource: "gone"}, j)
	if je, ok := err.(*mapping.JingleError); !ok || je.Condition == "" {
		t.Fatalf("to a missing resource: %v", err)
	}
}

func (sc *stanzaClient) send(t *testing.T, raw string) {
	t.Helper()
	if err := sendRaw(sc.xs, raw); err != nil {
		t.Fatal(err)
	}
}
