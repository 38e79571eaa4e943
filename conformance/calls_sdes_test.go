package conformance

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// RFC 4568 §6: a SIP phone that insists on SDES-SRTP (baresip with
// mediaenc=srtp-mand offers RTP/SAVP with a=crypto) calls the web phone
// through stox; stox answers RTP/SAVP with its own key on the offer's tag
// (RFC 4568 §7.1.2, docs/media.md "SDES-SRTP on the SIP leg"), and the
// tones cross both ways, encrypted on the SIP leg and DTLS-SRTP on the
// WebRTC leg.
func TestCallSDESPhoneToWeb(t *testing.T) {
	w := newCallWorld(t, StoxConfig{}, peers.BaresipMedia(peers.BaresipSDES), peers.BaresipSIPTrace())
	bobCallsAlice(t, w)
	t.Logf("bob heard %s", w.bob.CheckRecordedTone(t, webTone))
	checkSDESTrace(t, w)
	waitMetric(t, w.stox, `stox_calls_total{direction="sip-xmpp",outcome="answered"}`, 1, 5*time.Second)
}

// With offer_sdes (docs/media.md), stox's offer to the phone is RTP/SAVP:
// alice calls the SDES phone from the web (XMPP → SIP), it answers on
// stox's tag with its own key, and the tones cross both ways.
func TestCallWebToSDESPhone(t *testing.T) {
	w := newCallWorld(t, StoxConfig{Media: "offer_sdes = true"}, peers.BaresipMedia(peers.BaresipSDES), peers.BaresipSIPTrace())
	r := w.alice.Dial(t, "bob@"+compDomain+"/phone", peers.CallOptions{Codec: "PCMU", HangupAfter: 4 * time.Second})
	if err := r.CheckAudio(baresipTone); err != nil {
		t.Errorf("alice did not hear bob: %v\n%s", err, strings.Join(r.Transcript, "\n"))
	}
	w.bob.WaitNextEvent(t, "CALL_CLOSED", 10*time.Second)
	t.Logf("bob heard %s", w.bob.CheckRecordedTone(t, webTone))
	checkSDESTrace(t, w)
	waitMetric(t, w.stox, `stox_calls_total{direction="xmpp-sip",outcome="answered"}`, 1, 5*time.Second)
}

// checkSDESTrace reads bob's SIP trace, which holds the offer and the
// answer: both RTP/SAVP, each side with its own key on tag 1 (RFC 4568
// §6.1); and no key is in stox's log, even at debug level.
func checkSDESTrace(t *testing.T, w *callWorld) {
	t.Helper()
	log := w.bob.LogText()
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile(`a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:([A-Za-z0-9+/=]+)`).FindAllStringSubmatch(log, -1) {
		keys[m[1]] = true
	}
	if n := strings.Count(log, " RTP/SAVP "); len(keys) != 2 || n < 2 {
		t.Errorf("bob's SIP trace shows %d distinct a=crypto keys and %d RTP/SAVP m= lines; want 2 (bob's and stox's) in RTP/SAVP offer and answer", len(keys), n)
	}
	logs := w.stox.Logs()
	for k := range keys {
		if strings.Contains(logs, k[:16]) {
			t.Errorf("stox's log shows an SDES key")
		}
	}
}
