package peers

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net"
	"regexp"
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

func TestBaresipThroughKamailio(t *testing.T) {
	kam := StartKamailio(t, "kam.localhost", []string{"localhost"}, "127.0.0.1:9", WithKamailioAuth("kpw"))
	// register.xml answers the digest challenge.
	uas := StartSippUASRegistered(t, "message_uas.xml", kam.Addr(), "bob@kam.localhost", "kpw")
	b := StartBaresip(t, "alice", "kam.localhost", "kpw", kam.Addr(), BaresipContacts("sip:bob@kam.localhost"))
	b.WaitRegistered(t, 5*time.Second)
	if d := kam.WaitRegistered(t, "alice", 2*time.Second); !strings.Contains(d, strconv.Itoa(b.SIPPort)) {
		t.Errorf("ul.dump has no contact on baresip's port %d:\n%s", b.SIPPort, d)
	}
	b.SendMessage(t, "sip:bob@kam.localhost", "hi from baresip")
	m := uas.WaitMessages(t, 1, 3*time.Second)[0]
	if m.Body != "hi from baresip" || !strings.Contains(m.From, "sip:alice@kam.localhost") {
		t.Errorf("uas got %#v", m)
	}
	// And baresip receives a MESSAGE (printed by the stdio module).
	RunSipp(t, "message_uac.xml", kam.Addr(), "-s", "alice", "-key", "to_domain", "kam.localhost",
		"-key", "from_user", "bob", "-key", "from_domain", "kam.localhost", "-key", "body", "hello alice",
		"-au", "bob", "-ap", "kpw").Check(t) // 407 from Kamailio, answered by message_uac.xml
	b.WaitLog(t, `sip:bob@kam.localhost: "hello alice"`, 3*time.Second)
	// Wrong credentials: the retry gets another 407, the final status.
	RunSipp(t, "message_uac.xml", kam.Addr(), "-s", "alice", "-key", "to_domain", "kam.localhost",
		"-key", "from_user", "bob", "-key", "from_domain", "kam.localhost", "-key", "expect", "407",
		"-au", "bob", "-ap", "wrong").Check(t)
	// A wrong password is refused.
	r := RunSipp(t, "register.xml", kam.Addr(), "-s", "mallory", "-au", "mallory", "-ap", "wrong")
	if r.ExitCode == 0 {
		t.Errorf("register with a wrong password passed:\n%s", r.Trace)
	}
}

func TestKamailioForwardsXMPPDomain(t *testing.T) {
	stoxPort := FreePort(t, "udp+tcp")
	kam := StartKamailio(t, "kam.localhost", []string{"localhost", "xmpp.test"}, "127.0.0.1:"+strconv.Itoa(stoxPort))
	// A sipp UAS stands in for stox and refuses every MESSAGE with 404.
	stox := StartSippUAS(t, "message_uas_status.xml", "-p", strconv.Itoa(stoxPort), "-key", "status", "404")
	RunSipp(t, "message_uac.xml", kam.Addr(), "-s", "juliet", "-key", "to_domain", "localhost",
		"-key", "from_user", "romeo", "-key", "from_domain", "kam.localhost", "-key", "body", "wherefore",
		"-key", "expect", "404").Check(t)
	RunSipp(t, "message_uac.xml", kam.Addr(), "-s", "nurse", "-key", "to_domain", "xmpp.test", "-key", "expect", "404").Check(t)
	ms := stox.WaitMessages(t, 2, 3*time.Second)
	if ms[0].RURI != "sip:juliet@localhost" || ms[0].Body != "wherefore" || !strings.Contains(ms[0].From, "sip:romeo@kam.localhost") {
		t.Errorf("stox got %#v", ms[0])
	}
	if ms[1].RURI != "sip:nurse@xmpp.test" {
		t.Errorf("stox got %#v", ms[1])
	}
	kam.WaitLog(t, "KAM REQ MESSAGE sip:juliet@localhost", time.Second)
}

// TestProsodyComponentSlot checks the XEP-0114 slot stox will use, with a
// hand-written component: handshake, then a message each way.
func TestProsodyComponentSlot(t *testing.T) {
	p := StartProsody(t, "sip.localhost", "s3cret")
	p.Register(t, "alice", "alicepw")
	alice := StartXMPPClient(t, p, "alice", "alicepw")

	conn, err := net.Dial("tcp", p.ComponentAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, `<stream:stream xmlns="jabber:component:accept" xmlns:stream="http://etherx.jabber.org/streams" to="sip.localhost">`)
	dec := xml.NewDecoder(conn)
	next := func() xml.StartElement {
		t.Helper()
		for {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("component stream: %v", err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				return se
			}
		}
	}
	hdr := next()
	var id string
	for _, a := range hdr.Attr {
		if a.Name.Local == "id" {
			id = a.Value
		}
	}
	sum := sha1.Sum([]byte(id + "s3cret"))
	fmt.Fprintf(conn, "<handshake>%s</handshake>", hex.EncodeToString(sum[:]))
	if se := next(); se.Name.Local != "handshake" {
		t.Fatalf("handshake answer: %v", se.Name)
	}
	p.WaitLog(t, "sip.localhost:component", 2*time.Second)

	fmt.Fprintf(conn, `<message from="1001@sip.localhost" to="%s" type="chat" id="c1"><body>from the gateway</body></message>`, alice.JID)
	if m := alice.NextMessage(t, 5*time.Second); m.From != "1001@sip.localhost" || m.Body != "from the gateway" {
		t.Errorf("alice got %+v", m)
	}
	alice.Send(t, "1001@sip.localhost", "to the gateway", MsgID("a1"))
	for {
		se := next()
		if se.Name.Local != "message" {
			dec.Skip()
			continue
		}
		var m struct {
			From string `xml:"from,attr"`
			ID   string `xml:"id,attr"`
			Body string `xml:"body"`
		}
		if err := dec.DecodeElement(&m, &se); err != nil {
			t.Fatal(err)
		}
		if m.From != alice.JID || m.ID != "a1" || m.Body != "to the gateway" {
			t.Errorf("component got %+v", m)
		}
		break
	}
}

func TestSippTCP(t *testing.T) {
	kam := StartKamailio(t, "kam.localhost", nil, "127.0.0.1:9")
	uas := StartSippUASRegistered(t, "message_uas_status.xml", kam.Addr(), "bob@kam.localhost", "", "-t", "t1", "-key", "status", "486")
	RunSipp(t, "message_uac.xml", kam.Addr(), "-t", "t1", "-s", "bob", "-key", "to_domain", "kam.localhost", "-key", "expect", "486").Check(t)
	if m := uas.WaitMessages(t, 1, 3*time.Second)[0]; !strings.Contains(m.RURI, "transport=TCP") {
		t.Errorf("uas got %#v", m)
	}
}

// TestEjabberdComponentAndMessaging checks ejabberd as the matrix's second
// XMPP server: accounts, two slixmpp clients exchanging a message, an IQ,
// and the XEP-0114 slot stox will use.
func TestEjabberdComponentAndMessaging(t *testing.T) {
	e := StartEjabberd(t, "sip.localhost", "s3cret")
	e.Register(t, "alice", "alicepw")
	e.Register(t, "bob", "bobpw")
	alice := StartXMPPClientAt(t, e.C2SAddr(), e.JID("alice"), "alicepw")
	bob := StartXMPPClientAt(t, e.C2SAddr(), e.JID("bob"), "bobpw")
	alice.Send(t, "bob@localhost", "hello bob", MsgID("m1"))
	if m := bob.NextMessage(t, 5*time.Second); m.Body != "hello bob" || m.From != "alice@localhost/test" || m.ID != "m1" {
		t.Errorf("bob got %+v", m)
	}
	if r := alice.IQ(t, "localhost", "get", `<ping xmlns="urn:xmpp:ping"/>`, 5*time.Second); r.Type != "result" {
		t.Errorf("ping result %+v", r)
	}

	// XEP-0114 §3 handshake on the component listener (messages through
	// it are the interop matrix's job, with stox as the component).
	conn, err := net.Dial("tcp", e.ComponentAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, `<stream:stream xmlns="jabber:component:accept" xmlns:stream="http://etherx.jabber.org/streams" to="sip.localhost">`)
	buf := make([]byte, 4096)
	n, _ := conn.Read(buf)
	sid := regexp.MustCompile(`\bid=['"]([^'"]+)['"]`).FindSubmatch(buf[:n])
	if sid == nil {
		t.Fatalf("no stream id in %q", buf[:n])
	}
	sum := sha1.Sum(append(sid[1], "s3cret"...))
	fmt.Fprintf(conn, "<handshake>%x</handshake>", sum)
	if n, _ = conn.Read(buf); !strings.Contains(string(buf[:n]), "<handshake") {
		t.Fatalf("handshake answer: %q", buf[:n])
	}

	// A restart keeps the accounts (Mnesia spool).
	e.Stop(t)
	e.Start(t)
	StartXMPPClientAt(t, e.C2SAddr(), e.JID("bob"), "bobpw")
}

// TestSendXMPPWithProsodyTLS checks go-sendxmpp against Prosody with
// STARTTLS: a send, a receive in listen mode, and slixmpp clients still
// logging in without TLS.
func TestSendXMPPWithProsodyTLS(t *testing.T) {
	p := StartProsodyTLS(t, "sip.localhost", "s3cret")
	p.Register(t, "alice", "alicepw")
	p.Register(t, "bob", "bobpw")
	bob := StartSendXMPPListener(t, p.C2SAddr(), "bob@localhost", "bobpw")
	alice := StartXMPPClient(t, p, "alice", "alicepw")
	SendXMPP(t, p.C2SAddr(), "alice@localhost", "alicepw", "bob@localhost", "hi bob")
	if m := bob.NextMessage(t, 5*time.Second); m.From != "alice@localhost" || m.Body != "hi bob" {
		t.Errorf("bob got %+v", m)
	}
	alice.Send(t, "bob@localhost", "from slixmpp")
	if m := bob.NextMessage(t, 5*time.Second); m.From != "alice@localhost" || m.Body != "from slixmpp" {
		t.Errorf("bob got %+v", m)
	}
	SendXMPP(t, p.C2SAddr(), "bob@localhost", "bobpw", "alice@localhost", "hi alice")
	if m := alice.NextMessage(t, 5*time.Second); !strings.HasPrefix(m.From, "bob@localhost/") || m.Body != "hi alice" {
		t.Errorf("alice got %+v", m)
	}
}
