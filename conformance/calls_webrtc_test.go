package conformance

import (
	"strings"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// RFC 8827 / RFC 5763 §5: a WebRTC-capable SIP phone (baresip with ICE,
// DTLS-SRTP, rtcp-mux and opus, in a private network namespace because
// its ICE skips loopback; netns_test.go) calls the web phone through stox.
// stox answers it ICE-lite with setup=active on a leg of its own
// (docs/media.md "WebRTC-capable phones"), DTLS-SRTP runs on both legs,
// and the tones cross both ways.
func TestCallWebRTCPhoneToWeb(t *testing.T) {
	if !inPrivateNet(t) {
		return
	}
	w := newCallWorld(t, StoxConfig{}, peers.BaresipMedia(peers.BaresipICEDTLS), peers.BaresipCodec("opus"), peers.BaresipSIPTrace())
	r := bobCallsAlice(t, w)
	if _, err := w.bob.NextEvent("CALL_MENC", 0); err != nil {
		t.Errorf("baresip reported no media encryption (CALL_MENC): %v", err)
	}
	if r.Codec != "opus" {
		t.Errorf("alice's call used %q, want opus", r.Codec)
	}
	t.Logf("bob heard %s", w.bob.CheckRecordedTone(t, webTone))
	checkWebRTCTrace(t, w)
	waitMetric(t, w.stox, `stox_calls_total{direction="sip-xmpp",outcome="answered"}`, 1, 5*time.Second)
}

// RFC 8827 / RFC 8445 §6.1.1: with offer_webrtc (docs/media.md), stox
// offers the phone ICE and DTLS-SRTP: alice calls the WebRTC-capable phone
// from the web (XMPP → SIP), stox is the controlling ICE agent on the
// phone's leg, and the tones cross both ways.
func TestCallWebToWebRTCPhone(t *testing.T) {
	if !inPrivateNet(t) {
		return
	}
	w := newCallWorld(t, StoxConfig{Media: "offer_webrtc = true"},
		peers.BaresipMedia(peers.BaresipICEDTLS), peers.BaresipCodec("opus"), peers.BaresipSIPTrace())
	r := w.alice.Dial(t, "bob@"+compDomain+"/phone", peers.CallOptions{Codec: "opus", HangupAfter: 4 * time.Second})
	if err := r.CheckAudio(baresipTone); err != nil {
		t.Errorf("alice did not hear bob: %v\n%s", err, strings.Join(r.Transcript, "\n"))
	}
	w.bob.WaitNextEvent(t, "CALL_CLOSED", 10*time.Second)
	t.Logf("bob heard %s", w.bob.CheckRecordedTone(t, webTone))
	checkWebRTCTrace(t, w)
	waitMetric(t, w.stox, `stox_calls_total{direction="xmpp-sip",outcome="answered"}`, 1, 5*time.Second)
}

// checkWebRTCTrace reads bob's SIP trace: offer and answer are
// UDP/TLS/RTP/SAVPF with a fingerprint each (RFC 8122), and bob's
// candidate is on the namespace's non-loopback address.
func checkWebRTCTrace(t *testing.T, w *callWorld) {
	t.Helper()
	log := w.bob.LogText()
	if n := strings.Count(log, " UDP/TLS/RTP/SAVPF "); n < 2 {
		t.Errorf("bob's SIP trace has %d UDP/TLS/RTP/SAVPF m= lines; want offer and answer", n)
	}
	if n := strings.Count(log, "a=fingerprint:"); n < 2 {
		t.Errorf("bob's SIP trace has %d a=fingerprint lines; want offer and answer", n)
	}
	if !strings.Contains(log, " "+privateAddr+" ") {
		t.Errorf("bob offered no candidate on %s", privateAddr)
	}
}
