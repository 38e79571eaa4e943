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
	w.alice.Answer(t, peers.AnswerOptions{Mode: peers.AnswerAccept})
	w.bob.Call(t, "sip:alice@localhost")
	w.bob.WaitNextEvent(t, "CALL_ESTABLISHED", 20*time.Second)
	time.Sleep(4 * time.Second)
	if err := w.bob.Hangup(); err != nil {
		t.Fatal(err)
	}
	r := w.alice.NextCall(t, 15*time.Second)
	if err := r.CheckAudio(baresipTone); err != nil {
		t.Errorf("alice did not hear bob: %v\n%s", err, strings.Join(r.Transcript, "\n"))
	}
	if r.TerminateReason != "success" {
		t.Errorf("alice's call ended with %q, want success (BYE → session-terminate)", r.TerminateReason)
	}
	t.Logf("bob heard %s", w.bob.CheckRecordedTone(t, webTone))
	// bob's SIP trace holds its offer and stox's answer: both RTP/SAVP,
	// each with its own key on tag 1 (the only line baresip offers).
	log := w.bob.LogText()
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile(`a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:([A-Za-z0-9+/=]+)`).FindAllStringSubmatch(log, -1) {
		keys[m[1]] = true
	}
	if len(keys) != 2 || strings.Count(log, " RTP/SAVP ") < 2 {
		t.Errorf("bob's SIP trace shows %d distinct a=crypto keys and %d RTP/SAVP m= lines; want 2 (bob's and stox's) and an RTP/SAVP answer",
			len(keys), strings.Count(log, " RTP/SAVP "))
	}
	waitMetric(t, w.stox, `stox_calls_total{direction="sip-xmpp",outcome="answered"}`, 1, 5*time.Second)
}
