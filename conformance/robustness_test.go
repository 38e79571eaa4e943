package conformance

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// Bad input gets the protocol's error and leaves stox serving.

// RFC 7572 §4 / RFC 3261 §21.4.13: a content type stox cannot render in
// XMPP is refused with 415, never delivered as garbage or dropped.
func TestRFC7572UnknownContentType(t *testing.T) {
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}})
	r := peers.RunSipp(t, "message_uac.xml", w.stox.SIPAddr(), "-s", "alice",
		"-key", "from_user", "bob", "-key", "from_domain", sipDomain, "-key", "content_type", "application/octet-stream",
		"-key", "expect", "415", "-au", "bob", "-ap", "bobpw", "-auth_uri", "alice@localhost")
	r.Check(t)
	if !strings.Contains(r.Trace, "Accept: text/plain") {
		t.Errorf("415 without an Accept header (RFC 3261 §21.4.13):\n%s", r.Trace)
	}
	if s, ok := w.alice.TryNext(500 * time.Millisecond); ok && s.Kind == "message" {
		t.Errorf("alice received %s for a refused MESSAGE", s)
	}
}

// RFC 3261 §22: stox is not an open relay: a MESSAGE from a foreign domain
// and an untrusted source is refused.
func TestForeignSenderRefused(t *testing.T) {
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{})
	r := peers.RunSipp(t, "message_uac.xml", w.stox.SIPAddr(), "-s", "alice",
		"-key", "from_user", "mallory", "-key", "from_domain", "evil.example", "-key", "expect", "403")
	r.Check(t)
}

// RFC 7572 §8 leaves groupchat unmapped: stox answers bad-request rather
// than sending it as a pager MESSAGE; chat states with no body are not
// errors and not MESSAGEs either.
func TestGroupchatAndChatStates(t *testing.T) {
	w, uas := bobWorld(t, "message_uas.xml")
	id := w.alice.Send(t, "bob@"+compDomain, "to the room", peers.MsgType("groupchat"))
	e := w.alice.NextMessage(t, 10*time.Second)
	if e.Type != "error" || e.ErrorCondition != "bad-request" || e.ID != id {
		t.Errorf("groupchat: got %s, want bad-request", e)
	}
	w.alice.SendRaw(t, `<message to="bob@`+compDomain+`" type="chat" id="cs1"><composing xmlns="http://jabber.org/protocol/chatstates"/></message>`)
	w.alice.Send(t, "bob@"+compDomain, "after the chat state")
	m := uas.WaitMessages(t, 1, 10*time.Second)
	if len(m) != 1 || m[0].Body != "after the chat state" {
		t.Errorf("UAS got %v, want only the text message", m)
	}
	if s, ok := w.alice.TryNext(300 * time.Millisecond); ok && s.Type == "error" {
		t.Errorf("a chat state was bounced: %s", s)
	}
}

// Garbage datagrams and a truncated request on the SIP port do not stop
// stox: it keeps answering real requests (RFC 3261 §16.3 drops what it
// cannot parse).
func TestGarbageOnSIPPort(t *testing.T) {
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}})
	c, err := net.Dial("udp", w.stox.SIPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, junk := range []string{
		"\x00\x01\x02garbage",
		"MESSAGE sip:alice@localhost SIP/2.0\r\nVia: broken\r\n\r\n",
		"INVITE sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\nshort",
		strings.Repeat("A", 60000),
	} {
		_, _ = c.Write([]byte(junk))
	}
	sippSend(t, w.stox, "bob", "bobpw", "alice", "localhost", "still here", 202)
	if m := w.alice.NextMessage(t, 10*time.Second); m.Body != "still here" {
		t.Errorf("got %s", m)
	}
}

// docs/architecture.md bounds (message flows) and RFC 3428 §8: a flood
// toward one SIP user beyond the per-destination bound is answered resource-constraint at once, what was
// accepted is delivered, and afterwards stox's goroutines and memory are
// back near where they started (nothing leaks per message).
func TestFloodBoundedAndRecovers(t *testing.T) {
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}, Core: "per_destination = 5"})
	// TCP: sipgo keeps no per-transaction goroutine after a TCP transaction
	// ends (Timer J is 0 on reliable transports), so the baseline settles.
	uas := peers.StartSippUASRegistered(t, "message_uas_slow.xml", w.stox.SIPAddr(), "bob@"+sipDomain, "bobpw", "-t", "t1")
	time.Sleep(time.Second)
	g0 := w.stox.Metric(t, "go_goroutines")
	r0 := w.stox.Metric(t, "process_resident_memory_bytes")

	const n = 100
	for i := range n {
		w.alice.Send(t, "bob@"+compDomain, fmt.Sprintf("flood %03d", i))
	}
	rejected := 0
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		s, ok := w.alice.TryNext(200 * time.Millisecond)
		if !ok {
			if rejected > 0 {
				break
			}
			continue
		}
		if s.Type == "error" {
			if s.ErrorCondition != "resource-constraint" {
				t.Fatalf("flood: got %s, want resource-constraint", s)
			}
			rejected++
		}
	}
	if rejected == 0 || rejected >= n {
		t.Fatalf("%d of %d rejected; want some accepted and the rest refused", rejected, n)
	}
	accepted := n - rejected
	got := uas.WaitMessages(t, accepted, 30*time.Second)
	if len(got) != accepted {
		t.Errorf("UAS got %d, want exactly the %d accepted", len(got), accepted)
	}
	var g1, r1 float64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		g1, r1 = w.stox.Metric(t, "go_goroutines"), w.stox.Metric(t, "process_resident_memory_bytes")
		if g1 <= g0+10 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("goroutines %v → %v; RSS %.1f → %.1f MiB; %d accepted, %d refused", g0, g1, r0/(1<<20), r1/(1<<20), accepted, rejected)
	if g1 > g0+10 {
		t.Errorf("goroutines did not come back: %v before, %v after", g0, g1)
	}
	if r1 > r0+64<<20 {
		t.Errorf("RSS grew by %.1f MiB", (r1-r0)/(1<<20))
	}
}
