package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// newCallTrunkWorld is trunk mode for calls: Kamailio is the registrar of
// sip.localhost with baresip registered there as bob, routes the XMPP
// domain localhost to stox, and is stox's outbound proxy and trusted peer.
func newCallTrunkWorld(t *testing.T) (*callWorld, *peers.Kamailio) {
	t.Helper()
	peers.Require(t, "kamailio", "kamcmd", "baresip")
	stoxPort := peers.FreePort(t, "udp+tcp")
	kam := peers.StartKamailio(t, sipDomain, []string{"localhost"}, fmt.Sprintf("127.0.0.1:%d", stoxPort))
	x := startWebSocketServer(t)
	s := StartStox(t, StoxConfig{
		XMPPServer: x.ComponentAddr(), Domain: compDomain, SIPDomain: sipDomain, SIPPort: stoxPort,
		OutboundProxy: "udp:" + kam.Addr(), TrustedPeers: []string{"127.0.0.1/32"},
	})
	b := peers.StartBaresip(t, "bob", sipDomain, "bobpw", kam.Addr(), peers.BaresipTone(baresipTone))
	b.WaitRegistered(t, 10*time.Second)
	kam.WaitRegistered(t, "bob", 10*time.Second)
	alice := peers.StartWebPhone(t, peers.WebPhoneConfig{
		WebSocketURL: x.WebSocketURL(), JID: "alice@localhost", Password: "alicepw", ToneHz: webTone,
	})
	return &callWorld{xmpp: x, stox: s, alice: alice, bob: b}, kam
}

// XEP-0166 §6 ⇄ RFC 3261 §16 in trunk mode: bob is registered at
// Kamailio, not at stox. alice's call goes out through the outbound proxy,
// which looks bob up and record-routes the dialog; bob's call to alice comes
// in through Kamailio from a trusted address (no digest). Both calls carry
// audio both ways, and the BYEs follow the route set.
func TestCallThroughKamailioTrunk(t *testing.T) {
	w, kam := newCallTrunkWorld(t)

	r := w.alice.Dial(t, "bob@"+compDomain+"/phone", peers.CallOptions{Codec: "PCMU", HangupAfter: 4 * time.Second})
	if err := r.CheckAudio(baresipTone); err != nil {
		t.Errorf("XMPP→SIP: alice did not hear bob: %v\n%s", err, strings.Join(r.Transcript, "\n"))
	}
	w.bob.WaitNextEvent(t, "CALL_CLOSED", 10*time.Second)
	t.Logf("XMPP→SIP: bob heard %s", w.bob.CheckRecordedTone(t, webTone))

	w.alice.Answer(t, peers.AnswerOptions{Mode: peers.AnswerAccept})
	w.bob.Call(t, "sip:alice@localhost")
	w.bob.WaitNextEvent(t, "CALL_ESTABLISHED", 20*time.Second)
	time.Sleep(4 * time.Second)
	if err := w.bob.Hangup(); err != nil {
		t.Fatal(err)
	}
	in := w.alice.NextCall(t, 15*time.Second)
	if err := in.CheckAudio(baresipTone); err != nil {
		t.Errorf("SIP→XMPP: alice did not hear bob: %v\n%s", err, strings.Join(in.Transcript, "\n"))
	}
	if in.TerminateReason != "success" {
		t.Errorf("SIP→XMPP: alice's call ended with %q, want success", in.TerminateReason)
	}
	recs := w.bob.Recordings()
	if len(recs) < 2 {
		t.Fatalf("bob recorded %d calls, want 2", len(recs))
	}
	st, err := peers.AnalyzeWAV(recs[len(recs)-1])
	if err == nil {
		err = st.CheckTone(webTone)
	}
	if err != nil {
		t.Errorf("SIP→XMPP: bob did not hear alice: %v", err)
	}
	for _, m := range []string{"INVITE", "BYE"} {
		if len(kamLinesOf(kam, "KAM REQ", m)) < 2 {
			t.Errorf("Kamailio relayed fewer than 2 %s requests; both calls must cross it", m)
		}
	}
	waitMetric(t, w.stox, `stox_calls_total{direction="xmpp-sip",outcome="answered"}`, 1, 5*time.Second)
	waitMetric(t, w.stox, `stox_calls_total{direction="sip-xmpp",outcome="answered"}`, 1, 5*time.Second)
}

// kamLinesOf returns Kamailio's log lines holding every one of subs.
func kamLinesOf(kam *peers.Kamailio, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(kam.LogText(), "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}
