package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// bobWorld is a world with SIP account bob (password bobpw) registered at
// stox from a sipp UAS running scenario (message_uas.xml answers 200).
func bobWorld(t *testing.T, scenario string, uasArgs ...string) (*world, *peers.SippUAS) {
	t.Helper()
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}})
	uas := peers.StartSippUASRegistered(t, scenario, w.stox.SIPAddr(), "bob@"+sipDomain, "bobpw", uasArgs...)
	return w, uas
}

// sippSend sends one MESSAGE from SIP user from (digest-authenticated with
// password pw) to user@domain through stox and requires the final status.
func sippSend(t *testing.T, s *Stox, from, pw, user, domain, body string, expect int) peers.SippResult {
	t.Helper()
	r := peers.RunSipp(t, "message_uac.xml", s.SIPAddr(), "-s", user,
		"-key", "to_domain", domain, "-key", "from_user", from, "-key", "from_domain", sipDomain,
		"-key", "body", body, "-key", "expect", fmt.Sprint(expect), "-au", from, "-ap", pw,
		// sipp hashes remote_ip:port unless told; real UAs use the
		// Request-URI, which stox checks (RFC 2617 §3.2.2.5).
		"-auth_uri", user+"@"+domain)
	r.Check(t)
	return r
}

// RFC 7572 §5 (XMPP to SIP): body → text/plain body, thread → Call-ID,
// from → bare JID with the resource as GRUU, to → Request-URI/To; the
// MESSAGE reaches the registered contact (RFC 3261 §16.5).
func TestRFC7572XMPPToSIP(t *testing.T) {
	w, uas := bobWorld(t, "message_uas.xml")
	w.alice.Send(t, "bob@"+compDomain, "hello bob", peers.MsgThread("thread-42"), peers.MsgSubject("greeting"), peers.MsgLang("en"))
	m := uas.WaitMessages(t, 1, 10*time.Second)[0]
	if m.Body != "hello bob" {
		t.Errorf("body %q", m.Body)
	}
	if !strings.Contains(m.From, "sip:alice@localhost;gr=test") {
		t.Errorf("From %q: want the bare JID with gr=resource (RFC 7572 §5)", m.From)
	}
	if !strings.Contains(m.To, "sip:bob@"+sipDomain) {
		t.Errorf("To %q", m.To)
	}
	if m.CallID != "thread-42" {
		t.Errorf("Call-ID %q: want the XMPP thread (RFC 7572 §5)", m.CallID)
	}
	if !strings.HasPrefix(m.ContentType, "text/plain") {
		t.Errorf("Content-Type %q", m.ContentType)
	}
	trace := uas.Trace()
	for _, h := range []string{"Subject: greeting", "Content-Language: en"} {
		if !strings.Contains(trace, h) {
			t.Errorf("MESSAGE lacks %q (RFC 7572 §5)", h)
		}
	}
}

// RFC 7572 §4 (SIP to XMPP): the MESSAGE becomes a type='normal' message
// from the mapped JID; stox answers 202 once Prosody has it (RFC 3428 §7).
func TestRFC7572SIPToXMPP(t *testing.T) {
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}})
	sippSend(t, w.stox, "bob", "bobpw", "alice", "localhost", "hi alice", 202)
	m := w.alice.NextMessage(t, 10*time.Second)
	if m.From != "bob@"+compDomain || m.Body != "hi alice" || !isNormal(m.Type) {
		t.Errorf("got %s: want type=normal from bob@%s body 'hi alice'", m, compDomain)
	}
	if m.Thread == "" {
		t.Errorf("no <thread/>: want the SIP Call-ID (RFC 7572 §4)")
	}
	if v := w.stox.Metric(t, `stox_messages_total{direction="sip_to_xmpp",outcome="delivered"}`); v != 1 {
		t.Errorf("stox_messages_total delivered = %v, want 1", v)
	}
}

// RFC 7247 §6.4/§6.5 and XEP-0106: SIP users whose names XMPP cannot carry
// as is survive the round trip through their escaped JIDs.
func TestRFC7247AddressRoundTrip(t *testing.T) {
	peers.Require(t, "sipp")
	for _, tc := range []struct{ sipUser, uriUser, jidLocal string }{
		{"o'malley", "o'malley", `o\27malley`},
		{"m&m", "m&m", `m\26m`},
		{"fü", "f%C3%BC", "fü"},
	} {
		t.Run(tc.jidLocal, func(t *testing.T) {
			w := newWorld(t, StoxConfig{Accounts: map[string]string{tc.sipUser: "pw"}})
			uas := peers.StartSippUASRegistered(t, "message_uas.xml", w.stox.SIPAddr(), tc.uriUser+"@"+sipDomain, "pw", "-au", tc.sipUser)
			w.alice.Send(t, tc.jidLocal+"@"+compDomain, "to "+tc.sipUser)
			m := uas.WaitMessages(t, 1, 10*time.Second)[0]
			if !strings.Contains(m.To, "sip:"+tc.uriUser+"@"+sipDomain) || m.Body != "to "+tc.sipUser {
				t.Errorf("XMPP→SIP: To %q body %q, want sip:%s@%s", m.To, m.Body, tc.uriUser, sipDomain)
			}
			r := peers.RunSipp(t, "message_uac.xml", w.stox.SIPAddr(), "-s", "alice",
				"-key", "from_user", tc.uriUser, "-key", "from_domain", sipDomain,
				"-key", "body", "from "+tc.sipUser, "-key", "expect", "202", "-au", tc.sipUser, "-ap", "pw",
				"-auth_uri", "alice@localhost")
			r.Check(t)
			got := w.alice.NextMessage(t, 10*time.Second)
			if got.From != tc.jidLocal+"@"+compDomain {
				t.Errorf("SIP→XMPP: from %q, want %s@%s", got.From, tc.jidLocal, compDomain)
			}
		})
	}
}

// RFC 7247 Table 3 (§7.2): SIP final errors come back to the XMPP sender as
// <message type='error'> with the mapped condition.
func TestRFC7247SIPErrorsToXMPP(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   string
	}{
		{404, "item-not-found"},
		{486, "recipient-unavailable"},
		{603, "recipient-unavailable"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			w, _ := bobWorld(t, "message_uas_status.xml", "-key", "status", fmt.Sprint(tc.status))
			id := w.alice.Send(t, "bob@"+compDomain, "are you there?")
			e := w.alice.NextMessage(t, 10*time.Second)
			if e.Type != "error" || e.ErrorCondition != tc.want || e.ID != id || e.From != "bob@"+compDomain {
				t.Errorf("got %s, want error %s for id %s from bob@%s", e, tc.want, id, compDomain)
			}
		})
	}
}

// RFC 7247 Table 2 (§7.1): an XMPP error for a message still pending is
// the SIP final response: item-not-found → 404 for a full JID, 604 for a
// bare JID (note 2); service-unavailable is never 503 (note 5).
func TestRFC7247XMPPErrorsToSIP(t *testing.T) {
	peers.Require(t, "sipp")
	// The error comes from alice's client, after Prosody acknowledged the
	// message: a generous error grace keeps the transaction pending for it
	// even on a loaded CI machine.
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}, ErrorGrace: 3 * time.Second},
		peers.WithAutoError("item-not-found", "cancel"))
	sippSend(t, w.stox, "bob", "bobpw", "alice", "localhost;gr=test", "full jid", 404)
	sippSend(t, w.stox, "bob", "bobpw", "alice", "localhost", "bare jid", 604)
	// Prosody itself answers service-unavailable for a user it does not have.
	r := peers.RunSipp(t, "message_uac.xml", w.stox.SIPAddr(), "-s", "nobody",
		"-key", "from_user", "bob", "-key", "from_domain", sipDomain, "-key", "expect", "403", "-au", "bob", "-ap", "bobpw",
		"-auth_uri", "nobody@localhost")
	r.Check(t)
}

// RFC 7572 §7 / RFC 3428 §6: a message too large for a pager-mode MESSAGE
// is refused with policy-violation, not truncated or dropped.
func TestRFC7572PolicyViolation(t *testing.T) {
	w, uas := bobWorld(t, "message_uas.xml")
	id := w.alice.Send(t, "bob@"+compDomain, strings.Repeat("x", 2000))
	e := w.alice.NextMessage(t, 10*time.Second)
	if e.Type != "error" || e.ErrorCondition != "policy-violation" || e.ID != id {
		t.Errorf("got %s, want policy-violation for %s", e, id)
	}
	if n := len(uas.Messages()); n != 0 {
		t.Errorf("the UAS got %d MESSAGEs; want none", n)
	}
}

// RFC 3428 §8: one pending MESSAGE per destination, so 200 messages reach
// the SIP user complete and in order.
func TestRFC3428InOrder(t *testing.T) {
	w, uas := bobWorld(t, "message_uas.xml")
	const n = 200
	for i := range n {
		w.alice.Send(t, "bob@"+compDomain, fmt.Sprintf("msg %03d", i))
	}
	ms := uas.WaitMessages(t, n, 60*time.Second)
	for i, m := range ms[:n] {
		if want := fmt.Sprintf("msg %03d", i); m.Body != want {
			t.Fatalf("message %d is %q, want %q (order lost)", i, m.Body, want)
		}
	}
}

// docs/architecture.md durability contract: with the XMPP server down, a
// SIP MESSAGE is refused at once (480 + Retry-After), never accepted and
// dropped; the link comes back by itself when the server does.
func TestXMPPLinkDownRefusesAndRecovers(t *testing.T) {
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}})
	w.xmpp.Stop(t)
	for deadline := time.Now().Add(5 * time.Second); w.stox.Healthy(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("/healthz still 200 with the XMPP server down")
		}
	}
	start := time.Now()
	r := sippSend(t, w.stox, "bob", "bobpw", "alice", "localhost", "while down", 480)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("480 took %v; want an immediate answer", d)
	}
	_ = r
	w.xmpp.Start(t)
	w.stox.WaitHealthy(t, 20*time.Second)
	alice := w.client(t, "alice", "alicepw")
	sippSend(t, w.stox, "bob", "bobpw", "alice", "localhost", "after restart", 202)
	if m := alice.NextMessage(t, 10*time.Second); m.Body != "after restart" {
		t.Errorf("got %s", m)
	}
}

// isNormal: stox sends SIP MESSAGEs as type='normal' (RFC 7572 §4); a
// server may deliver them without the attribute, which RFC 6121 §5.2.2
// defines as the same (ejabberd does).
func isNormal(typ string) bool { return typ == "normal" || typ == "" }
