package conformance

import (
	"strings"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// Features of an answered call between the web phone and baresip: hold in
// both directions, DTMF and opus end to end (docs/calls.md).

// answeredCall has alice's web phone call bob's phone (which answers by
// itself) and returns once bob's phone has the call up; the channel gives
// alice's result when the call ends.
func answeredCall(t *testing.T, w *callWorld, o peers.CallOptions) <-chan peers.CallResult {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 40 * time.Second
	}
	done := dialAsync(t, w, o)
	w.bob.WaitNextEvent(t, "CALL_ESTABLISHED", 20*time.Second)
	return done
}

// hangUp has bob hang up and returns alice's result, checking that she
// saw a normal end (BYE → session-terminate success).
func hangUp(t *testing.T, w *callWorld, done <-chan peers.CallResult) peers.CallResult {
	t.Helper()
	if err := w.bob.Hangup(); err != nil {
		t.Fatal(err)
	}
	r := result(t, done, 15*time.Second)
	if r.TerminateReason != "success" {
		t.Errorf("alice's call ended with %q, want success\n%s", r.TerminateReason, strings.Join(r.Transcript, "\n"))
	}
	return r
}

// sdpDirectionsIn counts the a=DIR lines of the SDP bodies baresip's SIP
// trace (BaresipSIPTrace) shows, sent and received.
func sdpDirectionsIn(b *peers.Baresip, dir string) int {
	return strings.Count(b.LogText(), "a="+dir)
}

// waitCount waits until f reaches at least n.
func waitCount(t *testing.T, what string, f func() int, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for f() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d after %v, want >= %d", what, f(), timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// XEP-0167 §8.2 / RFC 3264 §8.4: alice puts bob on hold from the web phone
// (session-info <hold/>) and takes him back (<active/>); bob's phone gets
// a re-INVITE with a=sendonly, then one with a=sendrecv.
func TestCallHoldFromWeb(t *testing.T) {
	w := newCallWorld(t, StoxConfig{}, peers.BaresipSIPTrace())
	done := answeredCall(t, w, peers.CallOptions{Codec: "PCMU"})
	if n := sdpDirectionsIn(w.bob, "sendonly"); n != 0 {
		t.Fatalf("a=sendonly already in bob's SIP trace (%d) before the hold", n)
	}
	w.alice.Hold(t, true)
	waitCount(t, "a=sendonly in the re-INVITE bob's phone received", func() int { return sdpDirectionsIn(w.bob, "sendonly") }, 1, 10*time.Second)
	sendrecv := sdpDirectionsIn(w.bob, "sendrecv")
	w.alice.Hold(t, false)
	// bob's phone's answer to the second re-INVITE repeats a=sendrecv: the
	// offer and the answer make two more.
	waitCount(t, "a=sendrecv after the unhold", func() int { return sdpDirectionsIn(w.bob, "sendrecv") }, sendrecv+2, 10*time.Second)
	time.Sleep(3 * time.Second) // audio after the unhold, measured below
	r := hangUp(t, w, done)
	if err := r.CheckAudio(baresipTone); err != nil {
		t.Errorf("alice did not hear bob after the unhold: %v", err)
	}
}

// jingleInfos returns the session-info payloads alice received, in order
// ("hold", "active", ...).
func jingleInfos(r peers.CallResult) []string {
	var infos []string
	for _, l := range r.Transcript {
		if !strings.HasPrefix(l, "<<< ") || !strings.Contains(l, "session-info") ||
			!strings.Contains(l, "urn:xmpp:jingle:apps:rtp:info:1") {
			continue
		}
		for _, k := range []string{"hold", "active", "unhold"} {
			if strings.Contains(l, "<"+k+" ") || strings.Contains(l, "<"+k+"/>") {
				infos = append(infos, k)
			}
		}
	}
	return infos
}

// RFC 3264 §8.4 / XEP-0167 §8.2: bob's phone puts alice on hold (re-INVITE
// a=sendonly) and resumes; alice's web phone gets session-info <hold/>
// and then <active/>.
func TestCallHoldFromSIP(t *testing.T) {
	w := newCallWorld(t, StoxConfig{}, peers.BaresipSIPTrace())
	done := answeredCall(t, w, peers.CallOptions{Codec: "PCMU"})
	if err := w.bob.Hold(); err != nil {
		t.Fatal(err)
	}
	waitCount(t, "a=sendonly in bob's re-INVITE", func() int { return sdpDirectionsIn(w.bob, "sendonly") }, 1, 10*time.Second)
	// stox's answer to a sendonly offer is recvonly or inactive (RFC 3264
	// §6.1); waiting for it also keeps the resume after the hold.
	waitCount(t, "a=recvonly or a=inactive in stox's answer", func() int {
		return sdpDirectionsIn(w.bob, "recvonly") + sdpDirectionsIn(w.bob, "inactive")
	}, 1, 10*time.Second)
	if err := w.bob.Resume(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // audio after the resume, measured below
	r := hangUp(t, w, done)
	if err := r.CheckAudio(baresipTone); err != nil {
		t.Errorf("alice did not hear bob after the resume: %v", err)
	}
	if got := jingleInfos(r); !containsAll(got, "hold", "active") {
		t.Errorf("session-info seen by alice %v, want hold then active\n%s", got, strings.Join(r.Transcript, "\n"))
	}
}

// RFC 4733 §2.3 (telephone-event): alice's web phone sends
// digits with RTCDTMFSender; stox relays the telephone-events and bob's
// phone receives exactly those digits.
func TestCallDTMFFromWeb(t *testing.T) {
	w := newCallWorld(t, StoxConfig{})
	done := answeredCall(t, w, peers.CallOptions{Codec: "PCMU"})
	const digits = "19#*"
	// Wait for ICE and DTLS on alice's side: bob's CALL_ESTABLISHED only
	// says his leg is up.
	w.bob.WaitNextEvent(t, "CALL_RTPESTAB", 15*time.Second)
	w.alice.SendDTMF(t, digits)
	var got string
	for range digits {
		e, err := w.bob.NextEvent("CALL_DTMF_START", 10*time.Second)
		if err != nil {
			t.Errorf("bob's phone received %q, want %q: %v", got, digits, err)
			break
		}
		got += peers.EventParam(e)
	}
	if got != digits {
		t.Errorf("bob's phone received DTMF %q, want %q", got, digits)
	}
	hangUp(t, w, done)
}

// RFC 7587 §7 / XEP-0167 §5: a call in opus end to end (web phone ⇄ stox
// ⇄ baresip in plain RTP, opus/48000/2): each side hears the other's tone.
func TestCallOpus(t *testing.T) {
	w := newCallWorld(t, StoxConfig{}, peers.BaresipCodec("opus"))
	r := w.alice.Dial(t, "bob@"+compDomain+"/phone", peers.CallOptions{Codec: "opus", HangupAfter: 4 * time.Second})
	if r.Codec != "opus" {
		t.Errorf("alice's call used %q, want opus", r.Codec)
	}
	if err := r.CheckAudio(baresipTone); err != nil {
		t.Errorf("alice did not hear bob: %v\n%s", err, strings.Join(r.Transcript, "\n"))
	}
	w.bob.WaitNextEvent(t, "CALL_CLOSED", 10*time.Second)
	t.Logf("bob heard %s", w.bob.CheckRecordedTone(t, webTone))
	waitMetric(t, w.stox, callsMetric("xmpp-sip", "answered"), 1, 5*time.Second)
}
