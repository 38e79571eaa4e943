package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// trunkWorld is trunk mode (README "Kamailio trunk snippet"): Kamailio is
// the registrar of SIP domain sip.localhost and routes the XMPP domain
// localhost to stox; stox (component sip.localhost on Prosody, XMPP user
// alice) sends what it cannot deliver itself to Kamailio
// (sip.outbound_proxy) and trusts it (sip.trusted_peers), so no digest
// crosses the trunk. stox's SIP port is reserved before Kamailio starts,
// Kamailio's address is known before stox starts.
type trunkWorld struct {
	*world
	kam *peers.Kamailio
}

func newTrunkWorld(t *testing.T) *trunkWorld {
	t.Helper()
	peers.Require(t, "kamailio", "kamcmd", "sipp")
	stoxPort := peers.FreePort(t, "udp+tcp")
	kam := peers.StartKamailio(t, sipDomain, []string{"localhost"}, fmt.Sprintf("127.0.0.1:%d", stoxPort))
	w := newWorld(t, StoxConfig{
		SIPPort:       stoxPort,
		OutboundProxy: "udp:" + kam.Addr(),
		TrustedPeers:  []string{"127.0.0.1/32"},
	})
	return &trunkWorld{world: w, kam: kam}
}

// kamLines returns Kamailio's "KAM REQ ..." / "KAM REPLY ..." lines that
// contain every one of subs.
func (tw *trunkWorld) kamLines(subs ...string) []string {
	var out []string
	for _, l := range strings.Split(tw.kam.LogText(), "\n") {
		if i := strings.Index(l, "KAM "); i >= 0 {
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(l, s)
			}
			if ok {
				out = append(out, l[i:])
			}
		}
	}
	return out
}

// RFC 7572 §5 in trunk mode: stox has no binding for bob, who is
// registered at Kamailio, so the MESSAGE goes to the outbound proxy
// (RFC 3261 §8.1.2), Kamailio looks bob up (§16.5) and the phone gets it
// with alice's address in From and bob's in To; its 200 means alice gets
// no error.
func TestTrunkXMPPToSIPViaKamailio(t *testing.T) {
	tw := newTrunkWorld(t)
	uas := peers.StartSippUASRegistered(t, "message_uas.xml", tw.kam.Addr(), "bob@"+sipDomain, "")
	tw.kam.WaitRegistered(t, "bob", 5*time.Second)

	id := tw.alice.Send(t, "bob@"+compDomain, "hello bob via the trunk")
	m := uas.WaitMessages(t, 1, 10*time.Second)[0]
	if m.Body != "hello bob via the trunk" {
		t.Errorf("body %q", m.Body)
	}
	if !strings.Contains(m.From, "sip:alice@localhost") {
		t.Errorf("From %q: want sip:alice@localhost (RFC 7572 §5)", m.From)
	}
	if !strings.Contains(m.To, "sip:bob@"+sipDomain) {
		t.Errorf("To %q: want sip:bob@%s", m.To, sipDomain)
	}
	// It crossed Kamailio, coming from stox's SIP port.
	stoxSrc := fmt.Sprintf("src=%s/udp", tw.stox.SIPAddr())
	if ls := tw.kamLines("KAM REQ MESSAGE sip:bob@"+sipDomain, stoxSrc); len(ls) == 0 {
		t.Errorf("Kamailio logged no MESSAGE for bob from stox (%s):\n%s", stoxSrc, strings.Join(tw.kamLines(), "\n"))
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if s, ok := tw.alice.TryNext(time.Until(deadline)); ok && s.Kind == "message" {
			t.Errorf("alice got %s for %s after bob's phone answered 200; want nothing", s, id)
		}
	}
}

// RFC 7572 §4 in trunk mode: a SIP user of Kamailio messages alice;
// Kamailio relays to stox, a trusted peer, so no digest challenge (RFC
// 3428 §9 is Kamailio's job); alice gets a type='normal' message from
// bob's JID, and the 202 stox sends once Prosody has the stanza crosses
// Kamailio back to the sender (RFC 3428 §7).
func TestTrunkSIPToXMPPViaKamailio(t *testing.T) {
	tw := newTrunkWorld(t)
	r := peers.RunSipp(t, "message_uac.xml", tw.kam.Addr(), "-s", "alice",
		"-key", "to_domain", "localhost", "-key", "from_user", "bob", "-key", "from_domain", sipDomain,
		"-key", "body", "hi alice via the trunk", "-key", "expect", "202")
	r.Check(t)
	if strings.Contains(r.Trace, "SIP/2.0 401") || strings.Contains(r.Trace, "SIP/2.0 407") {
		t.Errorf("the trunk was challenged; a trusted peer needs no digest:\n%s", r.Trace)
	}
	m := tw.alice.NextMessage(t, 10*time.Second)
	if m.From != "bob@"+compDomain || m.Body != "hi alice via the trunk" || !isNormal(m.Type) {
		t.Errorf("got %s: want type=normal from bob@%s body 'hi alice via the trunk' (RFC 7572 §4)", m, compDomain)
	}
	if ls := tw.kamLines("KAM REQ MESSAGE sip:alice@localhost", "from=sip:bob@"+sipDomain); len(ls) == 0 {
		t.Errorf("Kamailio logged no MESSAGE to alice:\n%s", strings.Join(tw.kamLines(), "\n"))
	}
	if ls := tw.kamLines("KAM REPLY 202", "from "+tw.stox.SIPAddr()); len(ls) == 0 {
		t.Errorf("Kamailio logged no 202 from stox (%s):\n%s", tw.stox.SIPAddr(), strings.Join(tw.kamLines(), "\n"))
	}
}

// RFC 7247 Table 3 (§7.2) in trunk mode: nobody is registered nowhere, so
// Kamailio answers stox's MESSAGE with 404, and alice gets
// <message type='error'> item-not-found for her message, from the JID she
// wrote to.
func TestTrunkUnknownUserViaKamailio(t *testing.T) {
	tw := newTrunkWorld(t)
	id := tw.alice.Send(t, "nobody@"+compDomain, "anyone there?")
	e := tw.alice.NextMessage(t, 10*time.Second)
	if e.Type != "error" || e.ErrorCondition != "item-not-found" || e.ID != id || e.From != "nobody@"+compDomain {
		t.Errorf("got %s, want error item-not-found for id %s from nobody@%s (RFC 7247 Table 3)", e, id, compDomain)
	}
	// The 404 is Kamailio's, not a shortcut in stox.
	if ls := tw.kamLines("KAM REQ MESSAGE sip:nobody@"+sipDomain, "src="+tw.stox.SIPAddr()); len(ls) == 0 {
		t.Errorf("Kamailio logged no MESSAGE for nobody from stox:\n%s", strings.Join(tw.kamLines(), "\n"))
	}
}
