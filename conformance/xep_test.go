package conformance

import (
	"os"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// world is an XMPP server (domain localhost) with stox as component
// sip.localhost, serving SIP domain sip.localhost, plus XMPP user alice.
type world struct {
	xmpp  xmppServer
	stox  *Stox
	alice *peers.XMPPClient
}

// xmppServer is what a case needs of the XMPP server stox is a component
// of; peers.Prosody and peers.Ejabberd both are.
type xmppServer interface {
	ComponentAddr() string
	C2SAddr() string
	Register(t peers.TB, user, password string)
	JID(user string) string
	LogText() string
	Stop(t peers.TB)
	Start(t peers.TB)
}

// startXMPPServer starts Prosody, or ejabberd when STOX_XMPP_SERVER is
// "ejabberd": `make test` runs the suite against both (XEP-0114 on each).
func startXMPPServer(t *testing.T) xmppServer {
	t.Helper()
	if os.Getenv("STOX_XMPP_SERVER") == "ejabberd" {
		peers.Require(t, "ejabberdctl")
		return peers.StartEjabberd(t, compDomain, "secret")
	}
	peers.Require(t, "prosody")
	return peers.StartProsody(t, compDomain, "secret")
}

// client logs user@localhost in to the world's XMPP server.
func (w *world) client(t *testing.T, user, password string, opts ...peers.XMPPClientOption) *peers.XMPPClient {
	t.Helper()
	return peers.StartXMPPClientAt(t, w.xmpp.C2SAddr(), user+"@localhost", password, opts...)
}

const (
	compDomain = "sip.localhost"
	sipDomain  = "sip.localhost"
)

func newWorld(t *testing.T, cfg StoxConfig, aliceOpts ...peers.XMPPClientOption) *world {
	t.Helper()
	p := startXMPPServer(t)
	p.Register(t, "alice", "alicepw")
	cfg.XMPPServer = p.ComponentAddr()
	cfg.Domain = compDomain
	if cfg.SIPDomain == "" {
		cfg.SIPDomain = sipDomain
	}
	s := StartStox(t, cfg)
	w := &world{xmpp: p, stox: s}
	w.alice = w.client(t, "alice", "alicepw", aliceOpts...)
	return w
}

// XEP-0114 §3 handshake and XEP-0030 disco#info with XEP-0100 §4.1's
// gateway identity and XEP-0106 §6's jid\20escaping feature.
func TestXEP0100DiscoIdentity(t *testing.T) {
	w := newWorld(t, StoxConfig{})
	res := w.alice.IQ(t, compDomain, "get", `<query xmlns="http://jabber.org/protocol/disco#info"/>`, 5*time.Second)
	if res.Type != "result" {
		t.Fatalf("disco#info: %s", res)
	}
	for _, want := range []string{`category="gateway"`, `type="sip"`, `var="jid\20escaping"`, `var="jabber:iq:gateway"`, `var="urn:xmpp:ping"`} {
		if !strings.Contains(res.XML, want) {
			t.Errorf("disco#info lacks %s:\n%s", want, res.XML)
		}
	}
}

// XEP-0100 §6.3: the jabber:iq:gateway prompt turns a SIP address or a
// phone number into the JID to use (XEP-0106 escaped).
func TestXEP0100GatewayPrompt(t *testing.T) {
	w := newWorld(t, StoxConfig{})
	get := w.alice.IQ(t, compDomain, "get", `<query xmlns="jabber:iq:gateway"/>`, 5*time.Second)
	if get.Type != "result" || !strings.Contains(get.XML, "<prompt") {
		t.Fatalf("gateway get: %s\n%s", get, get.XML)
	}
	for _, tc := range []struct{ prompt, jid string }{
		{"sip:bob@sip.other", `bob\40sip.other@sip.localhost`},
		{"bob@sip.other", `bob\40sip.other@sip.localhost`},
		{"o'malley", `o\27malley@sip.localhost`},
	} {
		res := w.alice.IQ(t, compDomain, "set", `<query xmlns="jabber:iq:gateway"><prompt>`+xmlEscape(tc.prompt)+`</prompt></query>`, 5*time.Second)
		if res.Type != "result" || !strings.Contains(res.XML, ">"+xmlEscape(tc.jid)+"</jid>") {
			t.Errorf("prompt %q: want <jid>%s</jid>, got %s\n%s", tc.prompt, tc.jid, res, res.XML)
		}
	}
	bad := w.alice.IQ(t, compDomain, "set", `<query xmlns="jabber:iq:gateway"><prompt>@@@</prompt></query>`, 5*time.Second)
	if bad.Type != "error" {
		t.Errorf("garbage prompt: want an error iq, got %s", bad)
	}
}

// XEP-0199 ping to the component, and RFC 6120 §8.4: an IQ the component
// does not understand gets service-unavailable, never silence.
func TestXEP0199PingAndUnknownIQ(t *testing.T) {
	w := newWorld(t, StoxConfig{})
	if res := w.alice.IQ(t, compDomain, "get", `<ping xmlns="urn:xmpp:ping"/>`, 5*time.Second); res.Type != "result" {
		t.Errorf("ping: %s", res)
	}
	res := w.alice.IQ(t, compDomain, "get", `<query xmlns="urn:example:unknown"/>`, 5*time.Second)
	if res.Type != "error" || res.ErrorCondition != "service-unavailable" {
		t.Errorf("unknown iq: want service-unavailable, got %s", res)
	}
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;").Replace(s)
}
