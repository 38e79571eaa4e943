package conformance

import (
	"os"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
	"stox.dev/stox/store/storetest"
)

// Calls through stox between real peers (docs/calls.md): a web client
// (headless Chromium running StanzaJS over Prosody's websocket, with ICE,
// DTLS-SRTP and rtcp-mux as every WebRTC client) and baresip registered at
// stox in plain RTP. Each answered call proves audio crossed both ways: the
// web phone measures the baresip's tone, and baresip's recording of what it
// received holds the web phone's tone.

const (
	webTone     = 440  // Hz, sent by the web phone (alice)
	baresipTone = 1000 // Hz, sent by baresip (bob)
)

type callWorld struct {
	xmpp  webSocketServer
	stox  *Stox
	alice *peers.WebPhone
	bob   *peers.Baresip
}

// webSocketServer is an XMPP server web clients reach over RFC 7395.
type webSocketServer interface {
	xmppServer
	WebSocketURL() string
}

// startWebSocketServer starts Prosody, or ejabberd when STOX_XMPP_SERVER
// is "ejabberd", with a websocket for web clients and user alice.
func startWebSocketServer(t *testing.T) webSocketServer {
	t.Helper()
	var x webSocketServer
	if os.Getenv("STOX_XMPP_SERVER") == "ejabberd" {
		peers.Require(t, "ejabberdctl")
		x = peers.StartEjabberd(t, compDomain, "secret")
	} else {
		x = peers.StartProsody(t, compDomain, "secret", peers.ProsodyWebSocket())
	}
	x.Register(t, "alice", "alicepw")
	return x
}

// newCallWorld starts the XMPP server (Prosody, or ejabberd when
// STOX_XMPP_SERVER is "ejabberd") with a websocket, stox with SIP account
// bob and cfg, baresip registered at stox as bob, and alice's web phone
// logged in over the websocket.
func newCallWorld(t *testing.T, cfg StoxConfig, bobOpts ...peers.BaresipOption) *callWorld {
	t.Helper()
	peers.Require(t, "baresip")
	x := startWebSocketServer(t)
	cfg.XMPPServer, cfg.Domain, cfg.SIPDomain = x.ComponentAddr(), compDomain, sipDomain
	cfg.Accounts = map[string]string{"bob": "bobpw"}
	s := StartStox(t, cfg)
	opts := append([]peers.BaresipOption{peers.BaresipTone(baresipTone)}, bobOpts...)
	b := peers.StartBaresip(t, "bob", sipDomain, "bobpw", s.SIPAddr(), opts...)
	b.WaitRegistered(t, 10*time.Second)
	alice := peers.StartWebPhone(t, peers.WebPhoneConfig{
		WebSocketURL: x.WebSocketURL(), JID: "alice@localhost", Password: "alicepw", ToneHz: webTone,
	})
	return &callWorld{xmpp: x, stox: s, alice: alice, bob: b}
}

// XEP-0166/0167 ⇄ RFC 3261/3264 (docs/calls.md): alice calls bob's phone
// from the web, with a direct session-initiate to bob's full JID and with
// XEP-0353 first; bob's phone rings and answers by itself, both hear each
// other, and alice hangs up (session-terminate → BYE).
func TestCallWebToSIPPhone(t *testing.T) {
	for _, c := range []struct {
		name string
		jmi  bool
		to   string
	}{
		{"direct", false, "bob@" + compDomain + "/phone"},
		{"jmi", true, "bob@" + compDomain},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newCallWorld(t, StoxConfig{})
			r := w.alice.Dial(t, c.to, peers.CallOptions{JMI: c.jmi, Codec: "PCMU", HangupAfter: 4 * time.Second})
			if err := r.CheckAudio(baresipTone); err != nil {
				t.Errorf("alice did not hear bob: %v\n%s", err, strings.Join(r.Transcript, "\n"))
			}
			if c.jmi && !containsAll(r.JMI, "propose", "proceed") {
				t.Errorf("JMI seen by alice %v, want propose then proceed (XEP-0353 §3.1)", r.JMI)
			}
			closed := w.bob.WaitNextEvent(t, "CALL_CLOSED", 10*time.Second)
			t.Logf("bob: CALL_CLOSED %q", peers.EventParam(closed))
			t.Logf("bob heard %s", w.bob.CheckRecordedTone(t, webTone))
			waitMetric(t, w.stox, `stox_calls_total{direction="xmpp-sip",outcome="answered"}`, 1, 5*time.Second)
		})
	}
}

// SIP → XMPP (docs/calls.md): bob dials alice's address; every device of
// alice gets a XEP-0353 propose, stox answers 180 on ringing, the web phone
// proceeds and accepts the session-initiate, both hear each other, and bob
// hangs up (BYE → session-terminate success).
func TestCallSIPPhoneToWeb(t *testing.T) {
	w := newCallWorld(t, StoxConfig{}, peers.BaresipSIPTrace())
	r := bobCallsAlice(t, w)
	if !containsAll(r.JMI, "propose", "proceed") {
		t.Errorf("JMI seen by alice %v, want propose then proceed (XEP-0353 §3.1)", r.JMI)
	}
	t.Logf("bob heard %s", w.bob.CheckRecordedTone(t, webTone))
	waitMetric(t, w.stox, `stox_calls_total{direction="sip-xmpp",outcome="answered"}`, 1, 5*time.Second)
}

// bobCallsAlice has alice's web phone accept the next call, bob dial her
// from baresip, talk for 4 s and hang up. It checks that alice heard bob's
// tone and that the BYE ended her session with success, and returns her
// view of the call; what bob heard is left to the caller.
func bobCallsAlice(t *testing.T, w *callWorld) peers.CallResult {
	t.Helper()
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
	return r
}

// containsAll reports whether xs holds each of want, in that order.
func containsAll(xs []string, want ...string) bool {
	i := 0
	for _, x := range xs {
		if i < len(want) && strings.Contains(x, want[i]) {
			i++
		}
	}
	return i == len(want)
}

// docs/calls.md ("Call records"): stox is killed in the middle of an
// answered call; when it starts again it ends both legs from the record it
// kept in Postgres: a BYE to the phone and a session-terminate to the web
// client, within 5 s of the restart.
func TestCallEndedAfterGatewayCrash(t *testing.T) {
	w := newCallWorld(t, StoxConfig{DSN: storetest.NewDatabase(t)})
	done := make(chan peers.CallResult, 1)
	go func() {
		done <- w.alice.Dial(t, "bob@"+compDomain+"/phone", peers.CallOptions{Codec: "PCMU", Timeout: 60 * time.Second})
	}()
	w.bob.WaitNextEvent(t, "CALL_ESTABLISHED", 20*time.Second)
	time.Sleep(2 * time.Second) // audio flows
	w.stox.Kill(t)
	w.stox.Start(t)
	restarted := time.Now()
	closed := w.bob.WaitNextEvent(t, "CALL_CLOSED", 10*time.Second)
	if d := time.Since(restarted); d > 5*time.Second {
		t.Errorf("the phone's leg ended %v after the restart, want within 5 s", d)
	}
	t.Logf("bob: CALL_CLOSED %q", peers.EventParam(closed))
	select {
	case r := <-done:
		if d := time.Since(restarted); d > 5*time.Second {
			t.Errorf("the web leg ended %v after the restart, want within 5 s", d)
		}
		if r.TerminateReason != "gone" {
			t.Errorf("alice's call ended with %q, want gone (the gateway's session-terminate)\n%s", r.TerminateReason, strings.Join(r.Transcript, "\n"))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("alice's call did not end within 10 s of stox's restart")
	}
	waitMetric(t, w.stox, `stox_calls_total{direction="xmpp-sip",outcome="gateway-restart"}`, 1, 5*time.Second)
}
