package peers

import (
	"fmt"
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
		codec string
		pt    string // its first payload type
	}{
		{"plain", BaresipPlainRTP, "RTP/AVP", "", "0"},
		{"sdes", BaresipSDES, "RTP/SAVP", "", "0"},
		{"dtls", BaresipDTLS, "UDP/TLS/RTP/SAVPF", "", "0"},
		{"sdes-opus", BaresipSDES, "RTP/SAVP", "opus", "96"},
	} {
		t.Run(c.name, func(t *testing.T) {
			alice := StartBaresip(t, "alice", "", "", "", BaresipMedia(c.media), BaresipCodec(c.codec), BaresipTone(1000))
			bob := StartBaresip(t, "bob", "", "", "", BaresipMedia(c.media), BaresipCodec(c.codec), BaresipTone(600), BaresipSIPTrace())
			alice.Call(t, bob.URI())
			alice.WaitNextEvent(t, "CALL_ESTABLISHED", 10*time.Second)
			e := bob.WaitNextEvent(t, "CALL_ESTABLISHED", 10*time.Second)
			if p, _ := e["peeruri"].(string); !strings.Contains(p, "alice@127.0.0.1") {
				t.Errorf("bob's call is from %q", p)
			}
			if !regexp.MustCompile(`m=audio \d+ ` + c.proto + ` ` + c.pt + ` `).MatchString(bob.LogText()) {
				t.Errorf("no m=audio PORT %s %s in bob's SIP trace", c.proto, c.pt)
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

// startWebPhones starts Prosody with websocket and n web phones logged in
// as u0, u1, ... each sending its own tone.
func startWebPhones(t *testing.T, tones ...int) (*Prosody, []*WebPhone) {
	if err := LookWebPhone(); err != nil {
		Require(t, "prosody") // the same skip/fail rule, with the reason below
		t.Skip(err)
	}
	p := StartProsody(t, "", "", ProsodyWebSocket())
	var ws []*WebPhone
	for i, hz := range tones {
		u := fmt.Sprintf("u%d", i)
		p.Register(t, u, "pw"+u)
		ws = append(ws, StartWebPhone(t, WebPhoneConfig{WebSocketURL: p.WebSocketURL(), JID: p.JID(u), Password: "pw" + u, ToneHz: hz}))
	}
	return p, ws
}

// TestWebPhoneDirectCall: two web phones on one Prosody call each other
// (no stox), with and without JMI, in opus and PCMU, and each hears the
// other's tone.
func TestWebPhoneDirectCall(t *testing.T) {
	_, ws := startWebPhones(t, 440, 1000)
	a, b := ws[0], ws[1]
	for _, c := range []struct {
		name  string
		jmi   bool
		codec string
	}{{"jingle-opus", false, ""}, {"jmi-pcmu", true, "PCMU"}} {
		t.Run(c.name, func(t *testing.T) {
			b.Answer(t, AnswerOptions{Mode: AnswerAccept})
			to := b.JID + "/web"
			if c.jmi {
				to = b.JID
			}
			r := a.Dial(t, to, CallOptions{JMI: c.jmi, Codec: c.codec, HangupAfter: 3 * time.Second})
			in := b.NextCall(t, 10*time.Second)
			if !r.Connected || !in.Connected {
				t.Fatalf("not connected: caller %s; callee %s", r, in)
			}
			if err := r.CheckAudio(1000); err != nil {
				t.Errorf("caller: %v", err)
			}
			if err := in.CheckAudio(440); err != nil {
				t.Errorf("callee: %v", err)
			}
			want := "opus"
			if c.codec != "" {
				want = c.codec
			}
			if r.Codec != want || in.Codec != want {
				t.Errorf("codec: caller %q, callee %q, want %q", r.Codec, in.Codec, want)
			}
			if in.TerminateReason != "success" {
				t.Errorf("callee saw reason %q, want success", in.TerminateReason)
			}
			if c.jmi && strings.Join(r.JMI, ",") != "propose,ringing,proceed" {
				t.Errorf("caller JMI %v", r.JMI)
			}
		})
	}
}

// TestWebPhoneAnswerModes: the refusals a call test needs, by JMI and by
// Jingle, as both ends see them.
func TestWebPhoneAnswerModes(t *testing.T) {
	_, ws := startWebPhones(t, 440, 1000)
	a, b := ws[0], ws[1]
	for _, c := range []struct {
		name         string
		mode         AnswerMode
		jmi          bool
		reason       string // the caller sees
		calleeReason string
		jmiSeen      string
	}{
		{"jingle-busy", AnswerBusy, false, "busy", "busy", ""},
		{"jingle-decline", AnswerDecline, false, "decline", "decline", ""},
		{"jingle-ring", AnswerRing, false, "cancel", "cancel", ""},
		{"jmi-decline", AnswerDecline, true, "decline", "decline", "propose,reject"},
		{"jmi-busy", AnswerBusy, true, "busy", "busy", "propose,reject"},
		{"jmi-ring", AnswerRing, true, "cancel", "cancel", "propose,ringing,retract"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b.Answer(t, AnswerOptions{Mode: c.mode, Timeout: 20 * time.Second})
			to := b.JID + "/web"
			if c.jmi {
				to = b.JID
			}
			r := a.Dial(t, to, CallOptions{JMI: c.jmi, Timeout: 8 * time.Second}) // the first getUserMedia can take seconds
			in := b.NextCall(t, 25*time.Second)
			if r.Connected || r.TerminateReason != c.reason {
				t.Errorf("caller: %s, want reason %q", r, c.reason)
			}
			if in.TerminateReason != c.calleeReason {
				t.Errorf("callee: %s, want reason %q", in, c.calleeReason)
			}
			if got := strings.Join(r.JMI, ","); got != c.jmiSeen {
				t.Errorf("caller JMI %q, want %q", got, c.jmiSeen)
			}
		})
	}
}

// TestWebPhoneEjabberd: the web phone works over ejabberd's websocket too
// (one JMI call, opus).
func TestWebPhoneEjabberd(t *testing.T) {
	if err := LookWebPhone(); err != nil {
		Require(t, "ejabberdctl")
		t.Skip(err)
	}
	e := StartEjabberd(t, "", "")
	var ws []*WebPhone
	for i, hz := range []int{500, 800} {
		u := fmt.Sprintf("e%d", i)
		e.Register(t, u, "pw"+u)
		ws = append(ws, StartWebPhone(t, WebPhoneConfig{WebSocketURL: e.WebSocketURL(), JID: e.JID(u), Password: "pw" + u, ToneHz: hz}))
	}
	ws[1].Answer(t, AnswerOptions{Mode: AnswerAccept})
	r := ws[0].Dial(t, ws[1].JID, CallOptions{JMI: true, HangupAfter: 3 * time.Second})
	in := ws[1].NextCall(t, 10*time.Second)
	if err := r.CheckAudio(800); err != nil {
		t.Errorf("caller: %v", err)
	}
	if err := in.CheckAudio(500); err != nil {
		t.Errorf("callee: %v", err)
	}
}

func TestCallResultCheckAudio(t *testing.T) {
	good := CallResult{Connected: true, PacketsReceived: 150, AudioLevel: 0.35, FreqHz: 441}
	if err := good.CheckAudio(440); err != nil {
		t.Error(err)
	}
	for _, bad := range []CallResult{
		{PacketsReceived: 10, AudioLevel: 0.35, FreqHz: 440},
		{PacketsReceived: 150, AudioLevel: 0.01, FreqHz: 440},
		{PacketsReceived: 150, AudioLevel: 0.35, FreqHz: 470},
	} {
		if bad.CheckAudio(440) == nil {
			t.Errorf("CheckAudio accepted %s", bad)
		}
	}
}

func TestProsodyWebSocketConfig(t *testing.T) {
	plain := ProsodyConfig("/d", 1, 2, "localhost", "", "")
	if strings.Contains(plain, "websocket") || !strings.Contains(plain, "http_ports = { }") {
		t.Errorf("websocket config without ProsodyWebSocket:\n%s", plain)
	}
	ws := ProsodyConfig("/d", 1, 2, "localhost", "", "", ProsodyWebSocket(), func(o *prosodyOpts) { o.httpPort = 5280 })
	for _, want := range []string{`"websocket"`, "http_ports = { 5280 }", `http_interfaces = { "127.0.0.1" }`, "consider_websocket_secure = true"} {
		if !strings.Contains(ws, want) {
			t.Errorf("no %s in:\n%s", want, ws)
		}
	}
}
