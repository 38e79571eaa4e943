package peers

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProsodyRestartAndMessaging(t *testing.T) {
	p := StartProsody(t, "sip.localhost", "s3cret")
	p.Register(t, "alice", "alicepw")
	p.Stop(t)
	p.Start(t)                    // accounts survive a restart
	p.Register(t, "bob", "bobpw") // works while running

	alice := StartXMPPClient(t, p, "alice", "alicepw")
	bob := StartXMPPClient(t, p, "bob", "bobpw")
	if alice.JID != "alice@localhost/test" {
		t.Errorf("alice.JID = %q", alice.JID)
	}
	id := alice.Send(t, "bob@localhost", "hello bob", MsgID("m1"), MsgSubject("subj"), MsgThread("th1"), MsgLang("de"))
	if id != "m1" {
		t.Errorf("Send returned id %q", id)
	}
	m := bob.NextMessage(t, 5*time.Second)
	if m.Body != "hello bob" || m.From != "alice@localhost/test" || m.Type != "chat" || m.ID != "m1" ||
		m.Subject != "subj" || m.Thread != "th1" || m.Lang != "de" {
		t.Errorf("bob got %+v", m)
	}
	bob.SendRaw(t, `<message to="alice@localhost/test" type="normal" id="raw1"><body>raw hi</body></message>`)
	m = alice.NextMessage(t, 5*time.Second)
	if m.Body != "raw hi" || m.Type != "normal" || m.ID != "raw1" {
		t.Errorf("alice got %+v", m)
	}
	bob.ReplyError(t, "alice@localhost/test", "m1", "item-not-found", "cancel")
	m = alice.NextMessage(t, 5*time.Second)
	if m.Type != "error" || m.ErrorCondition != "item-not-found" || m.ErrorType != "cancel" || m.ID != "m1" {
		t.Errorf("alice got %+v", m)
	}

	// IQ: XEP-0199 ping to the server, and to a JID nobody serves.
	r := alice.IQ(t, "localhost", "get", `<ping xmlns="urn:xmpp:ping"/>`, 5*time.Second)
	if r.Kind != "iq" || r.Type != "result" {
		t.Errorf("ping result %+v", r)
	}
	r = alice.IQ(t, "nobody@localhost", "get", `<query xmlns="http://jabber.org/protocol/disco#info"/>`, 5*time.Second)
	if r.Type != "error" || r.ErrorCondition == "" {
		t.Errorf("iq to nobody: %+v", r)
	}

	// Offline delivery is disabled: a message to an unknown account bounces.
	alice.Send(t, "carol@localhost", "anyone?")
	m = alice.NextMessage(t, 5*time.Second)
	if m.Type != "error" || m.ErrorCondition != "service-unavailable" {
		t.Errorf("message to offline user: %+v", m)
	}
}

func TestXMPPClientAutoError(t *testing.T) {
	p := StartProsody(t, "sip.localhost", "s3cret")
	p.Register(t, "alice", "alicepw")
	p.Register(t, "bob", "bobpw")
	alice := StartXMPPClient(t, p, "alice", "alicepw")
	bob := StartXMPPClient(t, p, "bob", "bobpw", WithAutoError("recipient-unavailable", "wait"))
	alice.Send(t, "bob@localhost/test", "are you there", MsgID("q1"))
	if m := bob.NextMessage(t, 5*time.Second); m.Body != "are you there" {
		t.Errorf("bob got %+v", m)
	}
	m := alice.NextMessage(t, 5*time.Second)
	if m.Type != "error" || m.ID != "q1" || m.ErrorCondition != "recipient-unavailable" || m.ErrorType != "wait" ||
		!strings.HasPrefix(m.From, "bob@localhost") {
		t.Errorf("alice got %+v", m)
	}
}

func TestSippThroughKamailio(t *testing.T) {
	kam := StartKamailio(t, "kam.localhost", []string{"localhost"}, "127.0.0.1:9") // stox not used here
	uas := StartSippUASRegistered(t, "message_uas.xml", kam.Addr(), "bob@kam.localhost", "")
	kam.WaitRegistered(t, "bob", 2*time.Second)

	RunSipp(t, "register.xml", kam.Addr(), "-s", "carol").Check(t)
	kam.WaitRegistered(t, "carol", 2*time.Second)

	RunSipp(t, "message_uac.xml", kam.Addr(), "-s", "bob", "-key", "to_domain", "kam.localhost",
		"-key", "from_user", "carol", "-key", "from_domain", "kam.localhost", "-key", "body", "hi bob").Check(t)
	ms := uas.WaitMessages(t, 1, 3*time.Second)
	if m := ms[0]; !strings.HasPrefix(m.RURI, "sip:bob@127.0.0.1:"+strconv.Itoa(uas.Port())) ||
		!strings.Contains(m.From, "sip:carol@kam.localhost") || m.Body != "hi bob" || m.ContentType != "text/plain" {
		t.Errorf("uas got %#v", m)
	}
	// Unknown user: Kamailio answers 404 and message_uac.xml accepts it with expect=404.
	RunSipp(t, "message_uac.xml", kam.Addr(), "-s", "nobody", "-key", "to_domain", "kam.localhost", "-key", "expect", "404").Check(t)
	// A wrong expectation fails the sipp run.
	if r := RunSipp(t, "message_uac.xml", kam.Addr(), "-s", "nobody", "-key", "to_domain", "kam.localhost"); r.ExitCode == 0 ||
		!strings.Contains(r.Logs, "UNEXPECTED STATUS 404 expected 200") {
		t.Errorf("expect=200 against a 404 passed: exit %d logs %q", r.ExitCode, r.Logs)
	}
}
