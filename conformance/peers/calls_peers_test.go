package peers

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBaresipDirectCall: two baresips call each other by IP URI (no
// registrar) and each records the other's tone, in plain RTP and in SDES.
// This proves the call helpers that stox's call tests use on the SIP leg.
func TestBaresipDirectCall(t *testing.T) {
	for _, c := range []struct {
		name  string
		media BaresipMediaMode
		proto string // the m= line's transport in the INVITE
	}{
		{"plain", BaresipPlainRTP, "RTP/AVP"},
		{"sdes", BaresipSDES, "RTP/SAVP"},
		{"dtls", BaresipDTLS, "UDP/TLS/RTP/SAVPF"},
	} {
		t.Run(c.name, func(t *testing.T) {
			alice := StartBaresip(t, "alice", "", "", "", BaresipMedia(c.media), BaresipTone(1000))
			bob := StartBaresip(t, "bob", "", "", "", BaresipMedia(c.media), BaresipTone(600), BaresipSIPTrace())
			alice.Call(t, bob.URI())
			alice.WaitNextEvent(t, "CALL_ESTABLISHED", 10*time.Second)
			e := bob.WaitNextEvent(t, "CALL_ESTABLISHED", 10*time.Second)
			if p, _ := e["peeruri"].(string); !strings.Contains(p, "alice@127.0.0.1") {
				t.Errorf("bob's call is from %q", p)
			}
			if !regexp.MustCompile(`m=audio \d+ ` + c.proto + ` 0`).MatchString(bob.LogText()) {
				t.Errorf("no m=audio PORT %s 0 in bob's SIP trace", c.proto)
			}
			time.Sleep(3 * time.Second)
			if err := alice.Hangup(); err != nil {
				t.Fatal(err)
			}
			closed := bob.WaitNextEvent(t, "CALL_CLOSED", 5*time.Second)
			alice.WaitNextEvent(t, "CALL_CLOSED", 5*time.Second)
			t.Logf("bob: CALL_CLOSED %q", EventParam(closed))
			t.Logf("alice heard %s", alice.CheckRecordedTone(t, 600))
			t.Logf("bob heard %s", bob.CheckRecordedTone(t, 1000))
		})
	}
}

// TestBaresipManualAnswer: a ringing call can be rejected, and the next
// one accepted.
func TestBaresipManualAnswer(t *testing.T) {
	alice := StartBaresip(t, "alice", "", "", "", BaresipTone(440))
	bob := StartBaresip(t, "bob", "", "", "", BaresipManualAnswer(), BaresipTone(880))
	alice.Call(t, bob.URI())
	bob.WaitNextEvent(t, "CALL_INCOMING", 10*time.Second)
	alice.WaitNextEvent(t, "CALL_RINGING", 5*time.Second)
	if err := bob.Reject(); err != nil {
		t.Fatal(err)
	}
	closed := alice.WaitNextEvent(t, "CALL_CLOSED", 5*time.Second)
	if !strings.Contains(EventParam(closed), "486") {
		t.Errorf("rejected call closed with %q, want 486", EventParam(closed))
	}
	bob.WaitNextEvent(t, "CALL_CLOSED", 5*time.Second)

	alice.Call(t, bob.URI())
	bob.WaitNextEvent(t, "CALL_INCOMING", 10*time.Second)
	if err := bob.Accept(); err != nil {
		t.Fatal(err)
	}
	alice.WaitNextEvent(t, "CALL_ESTABLISHED", 5*time.Second)
	time.Sleep(2 * time.Second)
	if err := bob.Hangup(); err != nil {
		t.Fatal(err)
	}
	alice.WaitNextEvent(t, "CALL_CLOSED", 5*time.Second)
	alice.CheckRecordedTone(t, 880)
}
