package conformance

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// baresipWorld is a world with SIP account bob (password bobpw) at stox and
// a real softphone, baresip, registered at stox as bob@sip.localhost with
// digest (RFC 3261 §10, §22). contacts are the URIs it may message.
func baresipWorld(t *testing.T, contacts ...string) (*world, *peers.Baresip) {
	t.Helper()
	peers.Require(t, "baresip")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}})
	b := peers.StartBaresip(t, "bob", sipDomain, "bobpw", w.stox.SIPAddr(), peers.BaresipContacts(contacts...))
	b.WaitRegistered(t, 10*time.Second)
	return w, b
}

// RFC 7572 §4 (SIP to XMPP) through a real softphone: baresip's MESSAGE,
// digest-authenticated at stox (RFC 3428 §9), reaches alice as a
// type='normal' message from bob's JID with the text as body.
func TestBaresipToXMPP(t *testing.T) {
	const to = "sip:alice@localhost"
	w, b := baresipWorld(t, to)
	b.SendMessage(t, to, "hello alice from baresip")
	m := w.alice.NextMessage(t, 10*time.Second)
	if m.From != "bob@"+compDomain || m.Body != "hello alice from baresip" || !isNormal(m.Type) {
		t.Errorf("got %s: want type=normal from bob@%s body 'hello alice from baresip' (RFC 7572 §4)", m, compDomain)
	}
	if m.Thread == "" {
		t.Errorf("no <thread/>: want baresip's Call-ID (RFC 7572 §4)")
	}
	// The MESSAGE was challenged (407, RFC 3428 §9 / RFC 3261 §22.3) and
	// then answered 202 once Prosody had the stanza (RFC 3428 §7).
	waitMetric(t, w.stox, `stox_sip_requests_total{method="MESSAGE",status="202"}`, 1, 5*time.Second)
	if n := w.stox.Metric(t, `stox_sip_requests_total{method="MESSAGE",status="407"}`); n < 1 {
		t.Errorf("stox sent %v 407s to baresip's MESSAGE; want a digest challenge first", n)
	}
	// baresip 1.0.0 prints a final status >= 300 to its MESSAGE in red.
	if m := regexp.MustCompile(`\x1b\[31m[3-6][0-9][0-9] [^\x1b]*`).FindString(b.LogText()); m != "" {
		t.Errorf("baresip shows a failed MESSAGE: %q", m)
	}
}

// RFC 7572 §5 (XMPP to SIP) through a real softphone: alice's message
// reaches the contact baresip registered (RFC 3261 §16.5), which shows the
// text with alice's address as sender; baresip's 200 means alice gets no
// error (RFC 7247 §7.2).
func TestXMPPToBaresip(t *testing.T) {
	w, b := baresipWorld(t)
	id := w.alice.Send(t, "bob@"+compDomain, "hello bob on baresip")
	b.WaitLog(t, `"hello bob on baresip"`, 10*time.Second)
	var line string
	for _, l := range strings.Split(b.LogText(), "\n") {
		if strings.Contains(l, `"hello bob on baresip"`) {
			line = l
		}
	}
	// baresip prints the From URI of the MESSAGE: `sip:alice@localhost;gr=test: "text"`.
	if !strings.Contains(line, "sip:alice@localhost") {
		t.Errorf("baresip shows %q: want the sender sip:alice@localhost (RFC 7572 §5)", line)
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if s, ok := w.alice.TryNext(time.Until(deadline)); ok && s.Kind == "message" {
			t.Errorf("alice got %s for %s after baresip accepted the MESSAGE; want nothing", s, id)
		}
	}
}

// waitMetric waits until stox's Prometheus sample prefix reaches at least
// want (Fatal on timeout).
func waitMetric(t *testing.T, s *Stox, prefix string, want float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := s.Metric(t, prefix)
		if v >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v after %v; want >= %v", prefix, v, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
