package conformance

import (
	"strings"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// Calls that do not get answered, between the same real peers as
// calls_test.go: each case checks what both callers and callees see on
// the wire (the web phone's Jingle/JMI, baresip's final response) and the
// outcome stox counts in stox_calls_total.

// ringTimeout is the [calls] ring_timeout of the no-answer cases.
const ringTimeout = `ring_timeout = "5s"`

// callsMetric is the stox_calls_total sample of one direction and outcome.
func callsMetric(direction, outcome string) string {
	return `stox_calls_total{direction="` + direction + `",outcome="` + outcome + `"}`
}

// wantClosed waits for baresip's next CALL_CLOSED and checks that its
// reason holds one of want (e.g. the status code "486").
func wantClosed(t *testing.T, b *peers.Baresip, timeout time.Duration, rule string, want ...string) {
	t.Helper()
	got := peers.EventParam(b.WaitNextEvent(t, "CALL_CLOSED", timeout))
	for _, w := range want {
		if strings.Contains(got, w) {
			t.Logf("bob: CALL_CLOSED %q", got)
			return
		}
	}
	t.Errorf("bob's call closed with %q, want one of %q (%s)", got, want, rule)
}

// wantReason checks how the web phone's call ended.
func wantReason(t *testing.T, r peers.CallResult, want, rule string) {
	t.Helper()
	if r.TerminateReason != want {
		t.Errorf("alice's call ended with %q, want %q (%s)\n%s", r.TerminateReason, want, rule, strings.Join(r.Transcript, "\n"))
	}
	if r.Connected {
		t.Errorf("alice's call connected media; want no media for a call never answered")
	}
}

// RFC 3261 §21.4.24/§21.6.2 / XEP-0353 §3.2: bob's phone calls alice, whose web
// phone rejects the proposal as busy or declined; bob's phone gets the
// matching final response (486, 603) and no session is started.
func TestCallSIPToWebRejected(t *testing.T) {
	for _, c := range []struct {
		mode    peers.AnswerMode
		reason  string // the web phone's JMI reject reason
		status  string // bob's final response
		outcome string
	}{
		{peers.AnswerBusy, "busy", "486 Busy Here", "busy"},
		{peers.AnswerDecline, "decline", "603 Decline", "declined"},
	} {
		t.Run(c.reason, func(t *testing.T) {
			w := newCallWorld(t, StoxConfig{})
			w.alice.Answer(t, peers.AnswerOptions{Mode: c.mode})
			w.bob.Call(t, "sip:alice@localhost")
			wantClosed(t, w.bob, 15*time.Second, "XEP-0353 §3.2 reject → "+c.status, c.status)
			r := w.alice.NextCall(t, 10*time.Second)
			wantReason(t, r, c.reason, "the web phone's own reject")
			if !containsAll(r.JMI, "propose", "reject") {
				t.Errorf("JMI seen by alice %v, want propose then reject", r.JMI)
			}
			for _, l := range r.Transcript {
				if strings.Contains(l, "session-initiate") {
					t.Errorf("a session-initiate after a reject: %s", l)
				}
			}
			waitMetric(t, w.stox, callsMetric("sip-xmpp", c.outcome), 1, 5*time.Second)
		})
	}
}

// RFC 3261 §21.4.18 / XEP-0353 §3.3: alice's web phone rings and never
// answers; after [calls] ring_timeout stox retracts the proposal with
// reason timeout and answers bob's INVITE 480 (no answer).
func TestCallSIPToWebNoAnswer(t *testing.T) {
	w := newCallWorld(t, StoxConfig{Calls: ringTimeout})
	w.alice.Answer(t, peers.AnswerOptions{Mode: peers.AnswerRing, Timeout: 30 * time.Second})
	w.bob.Call(t, "sip:alice@localhost")
	w.bob.WaitNextEvent(t, "CALL_RINGING", 10*time.Second) // JMI ringing → 180
	start := time.Now()
	wantClosed(t, w.bob, 15*time.Second, "ring_timeout → 480 or 408", "480", "408")
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("the call ended %v after ringing; want about the 5 s ring_timeout", d)
	}
	r := w.alice.NextCall(t, 10*time.Second)
	wantReason(t, r, "timeout", "XEP-0353 §3.3 retract with the reason")
	if !containsAll(r.JMI, "propose", "ringing", "retract") {
		t.Errorf("JMI seen by alice %v, want propose, ringing, retract", r.JMI)
	}
	waitMetric(t, w.stox, callsMetric("sip-xmpp", "no-answer"), 1, 5*time.Second)
}

// RFC 3261 §9 / XEP-0353 §3.3: bob's phone hangs up while alice's web
// phone rings; its CANCEL makes stox retract the proposal (reason cancel).
func TestCallSIPToWebCancelled(t *testing.T) {
	w := newCallWorld(t, StoxConfig{})
	w.alice.Answer(t, peers.AnswerOptions{Mode: peers.AnswerRing, Timeout: 30 * time.Second})
	w.bob.Call(t, "sip:alice@localhost")
	w.bob.WaitNextEvent(t, "CALL_RINGING", 10*time.Second)
	if err := w.bob.Hangup(); err != nil { // CANCEL
		t.Fatal(err)
	}
	w.bob.WaitNextEvent(t, "CALL_CLOSED", 10*time.Second)
	r := w.alice.NextCall(t, 10*time.Second)
	wantReason(t, r, "cancel", "XEP-0353 §3.3 retract after CANCEL")
	if !containsAll(r.JMI, "propose", "ringing", "retract") {
		t.Errorf("JMI seen by alice %v, want propose, ringing, retract", r.JMI)
	}
	waitMetric(t, w.stox, callsMetric("sip-xmpp", "cancelled"), 1, 5*time.Second)
}

// dialAsync dials bob's phone from alice's web phone in the background:
// with a session-initiate to its full JID, or with JMI to the bare JID
// when o.JMI.
func dialAsync(t *testing.T, w *callWorld, o peers.CallOptions) <-chan peers.CallResult {
	to := "bob@" + compDomain + "/phone"
	if o.JMI {
		to = "bob@" + compDomain
	}
	done := make(chan peers.CallResult, 1)
	go func() { done <- w.alice.Dial(t, to, o) }()
	return done
}

// result waits for a background dial to end.
func result(t *testing.T, done <-chan peers.CallResult, timeout time.Duration) peers.CallResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(timeout):
		t.Fatalf("alice's call did not end within %v", timeout)
	}
	return peers.CallResult{}
}

// XEP-0166 §6.7 / RFC 3261 §21.4.24: alice calls bob's phone, bob rejects
// the ringing call (486 Busy Here); alice's session ends with reason busy,
// whether she called with a session-initiate or with XEP-0353 first.
func TestCallWebToSIPBusy(t *testing.T) {
	for _, jmi := range []bool{false, true} {
		name := map[bool]string{false: "direct", true: "jmi"}[jmi]
		t.Run(name, func(t *testing.T) {
			w := newCallWorld(t, StoxConfig{}, peers.BaresipManualAnswer())
			done := dialAsync(t, w, peers.CallOptions{JMI: jmi, Codec: "PCMU", Timeout: 20 * time.Second})
			w.bob.WaitNextEvent(t, "CALL_INCOMING", 15*time.Second)
			if err := w.bob.Reject(); err != nil {
				t.Fatal(err)
			}
			r := result(t, done, 15*time.Second)
			wantReason(t, r, "busy", "486 → busy")
			// stox proceeds at once to get the offer for its INVITE
			// (docs/calls.md), so the busy comes as a session-terminate.
			if jmi && !containsAll(r.JMI, "propose", "proceed") {
				t.Errorf("JMI seen by alice %v, want propose then proceed", r.JMI)
			}
			waitMetric(t, w.stox, callsMetric("xmpp-sip", "busy"), 1, 5*time.Second)
		})
	}
}

// XEP-0166 §6.7 / RFC 3261 §9.1: bob's phone rings and nobody answers;
// after ring_timeout stox CANCELs the INVITE and ends alice's session with
// reason timeout.
func TestCallWebToSIPNoAnswer(t *testing.T) {
	w := newCallWorld(t, StoxConfig{Calls: ringTimeout}, peers.BaresipManualAnswer())
	done := dialAsync(t, w, peers.CallOptions{Codec: "PCMU", Timeout: 25 * time.Second})
	w.bob.WaitNextEvent(t, "CALL_INCOMING", 15*time.Second)
	start := time.Now()
	wantClosed(t, w.bob, 15*time.Second, "stox's CANCEL", "Connection reset by peer", "487")
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("bob's phone stopped ringing %v after it started; want about the 5 s ring_timeout", d)
	}
	r := result(t, done, 10*time.Second)
	wantReason(t, r, "timeout", "ring_timeout → session-terminate timeout")
	if r.Err != "" {
		t.Errorf("alice's phone gave up by itself (%q); want stox to end the call first", r.Err)
	}
	waitMetric(t, w.stox, callsMetric("xmpp-sip", "no-answer"), 1, 5*time.Second)
}

// XEP-0166 §6.7 / RFC 3261 §9.1: alice hangs up while bob's phone rings
// (session-terminate cancel); stox CANCELs the INVITE and bob's phone
// stops ringing.
func TestCallWebToSIPCancelled(t *testing.T) {
	w := newCallWorld(t, StoxConfig{}, peers.BaresipManualAnswer())
	done := dialAsync(t, w, peers.CallOptions{Codec: "PCMU", Timeout: 6 * time.Second})
	w.bob.WaitNextEvent(t, "CALL_INCOMING", 15*time.Second)
	r := result(t, done, 15*time.Second)
	if r.TerminateReason != "cancel" || r.Err != "timeout" {
		t.Errorf("alice's call ended with reason %q err %q, want her own cancel at her timeout", r.TerminateReason, r.Err)
	}
	// baresip 1.0 reports the CANCEL of an incoming call as "Connection
	// reset by peer".
	wantClosed(t, w.bob, 10*time.Second, "CANCEL", "Connection reset by peer", "487")
	waitMetric(t, w.stox, callsMetric("xmpp-sip", "cancelled"), 1, 5*time.Second)
}

// XEP-0166 §6.7 / RFC 3264 §6: alice offers PCMU only and bob's phone
// takes only opus: it answers 488 and alice's session ends with
// incompatible-parameters.
func TestCallWebToSIPNoCommonCodec(t *testing.T) {
	w := newCallWorld(t, StoxConfig{}, peers.BaresipCodec("opus"), peers.BaresipSIPTrace())
	r := w.alice.Dial(t, "bob@"+compDomain+"/phone", peers.CallOptions{Codec: "PCMU", Timeout: 20 * time.Second})
	wantReason(t, r, "incompatible-parameters", "488 → incompatible-parameters")
	if !strings.Contains(w.bob.LogText(), "SIP/2.0 488") {
		t.Errorf("bob's phone sent no 488 (its SIP trace):\n%s", peers.LogTail(w.bob.Log, 3000))
	}
	waitMetric(t, w.stox, callsMetric("xmpp-sip", "failed"), 1, 5*time.Second)
}

// XEP-0166 §6.7 / RFC 3261 §21.4.26: bob's phone calls with opus only and
// alice's web phone accepts PCMU only; stox answers bob 488 and ends
// alice's session with incompatible-parameters.
func TestCallSIPToWebNoCommonCodec(t *testing.T) {
	w := newCallWorld(t, StoxConfig{}, peers.BaresipCodec("opus"))
	w.alice.Answer(t, peers.AnswerOptions{Mode: peers.AnswerAccept, Codec: "PCMU", Timeout: 20 * time.Second})
	w.bob.Call(t, "sip:alice@localhost")
	wantClosed(t, w.bob, 20*time.Second, "no common codec → 488", "488")
	r := w.alice.NextCall(t, 15*time.Second)
	wantReason(t, r, "incompatible-parameters", "no common codec")
	waitMetric(t, w.stox, callsMetric("sip-xmpp", "failed"), 1, 5*time.Second)
}

// XEP-0166 §10 (unknown-session): a Jingle action for a session stox
// does not know is refused with <item-not-found/> and
// <unknown-session xmlns="urn:xmpp:jingle:errors:1"/>.
func TestCallUnknownSession(t *testing.T) {
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}})
	for _, action := range []string{"session-info", "session-accept", "session-terminate", "transport-info"} {
		t.Run(action, func(t *testing.T) {
			res := w.alice.IQ(t, "bob@"+compDomain+"/phone", "set",
				`<jingle xmlns="urn:xmpp:jingle:1" action="`+action+`" sid="no-such-session-42"/>`, 10*time.Second)
			if res.Type != "error" || res.ErrorCondition != "item-not-found" {
				t.Errorf("answer %s, want error item-not-found\n%s", res, res.XML)
			}
			if !strings.Contains(res.XML, "unknown-session") || !strings.Contains(res.XML, "urn:xmpp:jingle:errors:1") {
				t.Errorf("the error has no <unknown-session xmlns='urn:xmpp:jingle:errors:1'/>:\n%s", res.XML)
			}
		})
	}
}

// sessionInitiate is a minimal XEP-0167 audio offer (PCMU, ICE-UDP with
// DTLS-SRTP, one loopback candidate) from a client that will never do
// ICE: enough for stox to call the SIP side.
func sessionInitiate(sid string) string {
	fp := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	return `<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="` + sid + `">` +
		`<content creator="initiator" name="0" senders="both">` +
		`<description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio">` +
		`<payload-type id="0" name="PCMU" clockrate="8000" channels="1"/><rtcp-mux/></description>` +
		`<transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="cases" pwd="casescasescasescasescases">` +
		`<fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">` + fp + `</fingerprint>` +
		`<candidate component="1" foundation="1" generation="0" id="c1" ip="127.0.0.1" network="0" port="9" priority="2130706431" protocol="udp" type="host"/>` +
		`</transport></content></jingle>`
}

// XEP-0166 §10 (unknown-session) / §7.1: a session belongs to its
// initiator: another user who names its sid gets unknown-session, and the
// call goes on until its own initiator ends it.
func TestCallSessionOfAnotherUser(t *testing.T) {
	peers.Require(t, "baresip")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}})
	w.xmpp.Register(t, "mallory", "mallorypw")
	mallory := w.client(t, "mallory", "mallorypw")
	bob := peers.StartBaresip(t, "bob", sipDomain, "bobpw", w.stox.SIPAddr(), peers.BaresipManualAnswer())
	bob.WaitRegistered(t, 10*time.Second)
	const sid = "cases-owned-by-alice"
	to := "bob@" + compDomain + "/phone"
	if res := w.alice.IQ(t, to, "set", sessionInitiate(sid), 10*time.Second); res.Type != "result" {
		t.Fatalf("session-initiate: %s\n%s", res, res.XML)
	}
	bob.WaitNextEvent(t, "CALL_INCOMING", 10*time.Second)
	res := mallory.IQ(t, to, "set", `<jingle xmlns="urn:xmpp:jingle:1" action="session-terminate" sid="`+sid+`"><reason><success/></reason></jingle>`, 10*time.Second)
	if res.Type != "error" || res.ErrorCondition != "item-not-found" || !strings.Contains(res.XML, "unknown-session") {
		t.Errorf("mallory's session-terminate of alice's session: %s, want item-not-found + unknown-session\n%s", res, res.XML)
	}
	if e, err := bob.NextEvent("CALL_CLOSED", time.Second); err == nil {
		t.Fatalf("bob's call closed after mallory's session-terminate: %v", e)
	}
	if res := w.alice.IQ(t, to, "set", `<jingle xmlns="urn:xmpp:jingle:1" action="session-terminate" sid="`+sid+`"><reason><cancel/></reason></jingle>`, 10*time.Second); res.Type != "result" {
		t.Errorf("alice's own session-terminate: %s, want result\n%s", res, res.XML)
	}
	wantClosed(t, bob, 10*time.Second, "alice's cancel → CANCEL", "Connection reset by peer", "487")
}
