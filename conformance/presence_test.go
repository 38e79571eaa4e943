package conformance

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
	"stox.dev/stox/store/storetest"
)

// RFC 8048 §5.3.1 and §6.2 with a real softphone as the SIP watcher:
// baresip (registered at stox as bob) SUBSCRIBEs to alice@localhost; stox
// asks alice for authorization (<presence type='subscribe'> from
// bob@sip.localhost), alice's client approves, and from then on alice's
// presence reaches baresip as PIDF NOTIFYs: online, busy (dnd → RPID busy),
// offline.
func TestRFC8048SIPWatcherBaresip(t *testing.T) {
	peers.Require(t, "baresip")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}, Presence: `coalesce = "100ms"`})
	b := peers.StartBaresip(t, "bob", sipDomain, "bobpw", w.stox.SIPAddr(),
		peers.BaresipContacts("sip:alice@localhost"), peers.BaresipPresence())
	b.WaitRegistered(t, 10*time.Second)

	sub := w.alice.NextPresence(t, 15*time.Second)
	if sub.Type != "subscribe" || sub.From != "bob@"+compDomain {
		t.Fatalf("alice got %s, want a subscribe from bob@%s (RFC 8048 §5.3.1)", sub, compDomain)
	}
	// baresip logs a change only from a known state, so "Online to Busy"
	// proves both NOTIFYs: the open one and the RPID busy one.
	time.Sleep(500 * time.Millisecond)
	w.alice.SendPresence(t, "", "", "dnd", "in a meeting")
	waitStatus(t, b, "Online", "Busy")

	w.alice.SendPresence(t, "", "unavailable", "", "")
	waitStatus(t, b, "Busy", "Offline")
	if v := w.stox.Metric(t, `stox_presence_subscriptions{kind="sip-watcher"}`); v != 1 {
		t.Errorf("stox_presence_subscriptions{sip-watcher} = %v, want 1", v)
	}
	if v := w.stox.Metric(t, `stox_presence_notifies_total{outcome="ok"}`); v < 3 {
		t.Errorf("stox_presence_notifies_total{ok} = %v, want at least the 3 NOTIFYs baresip saw", v)
	}
	if strings.Contains(b.LogText(), "403") {
		t.Errorf("baresip saw a 403:\n%s", b.LogText())
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// waitStatus waits for baresip's "<uri> changed status from A to B" line
// (printed with colours, which are stripped).
func waitStatus(t *testing.T, b *peers.Baresip, from, to string) {
	t.Helper()
	want := "changed status from " + from + " to " + to
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(ansi.ReplaceAllString(b.LogText(), ""), want); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("baresip never logged %q:\n%s", want, ansi.ReplaceAllString(b.LogText(), ""))
		}
	}
}

// RFC 8048 §5.2 with stox as the presence agent of its own registrar's
// users: alice subscribes to bob@sip.localhost, is authorized (bob's phone
// cannot approve; presence.auto_authorize_local), and sees bob available
// while his phone is registered and unavailable once it unregisters.
func TestRFC8048XMPPWatcherOfRegisteredUser(t *testing.T) {
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}, Presence: `coalesce = "100ms"`})
	port := fmt.Sprint(peers.FreePort(t, "udp"))
	peers.RunSipp(t, "register.xml", w.stox.SIPAddr(), "-p", port, "-s", "bob", "-key", "domain", sipDomain,
		"-au", "bob", "-ap", "bobpw", "-key", "expires", "3600").Check(t)

	w.alice.SendPresence(t, "bob@"+compDomain, "subscribe", "", "")
	var subscribed, available bool
	for deadline := time.Now().Add(15 * time.Second); !(subscribed && available) && time.Now().Before(deadline); {
		p, ok := w.alice.TryNext(500 * time.Millisecond)
		if !ok || p.Kind != "presence" || !strings.HasPrefix(p.From, "bob@"+compDomain) {
			continue
		}
		switch p.Type {
		case "subscribed":
			subscribed = true
		case "", "available":
			available = true
		}
	}
	if !subscribed || !available {
		t.Fatalf("alice: subscribed=%v available=%v, want both (RFC 8048 §5.2.1, §6.3)", subscribed, available)
	}

	// Unregister: registration alone gave "open", so its end gives "closed".
	peers.RunSipp(t, "register.xml", w.stox.SIPAddr(), "-p", port, "-s", "bob", "-key", "domain", sipDomain,
		"-au", "bob", "-ap", "bobpw", "-key", "expires", "0").Check(t)
	for deadline := time.Now().Add(15 * time.Second); ; {
		p, ok := w.alice.TryNext(500 * time.Millisecond)
		if ok && p.Kind == "presence" && strings.HasPrefix(p.From, "bob@"+compDomain) && p.Type == "unavailable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alice never saw bob unavailable after he unregistered")
		}
	}
}

// RFC 8048 §5.2.1 and §6.3 through a trunk: carol is a user of Kamailio's
// presence server (she PUBLISHed there), so stox creates a notification
// dialog toward Kamailio on alice's behalf; Kamailio's first NOTIFY
// (active, with carol's PIDF) becomes <presence type='subscribed'/> and
// carol's presence, note and all.
func TestRFC8048XMPPWatcherViaKamailioPresence(t *testing.T) {
	tw := newTrunkWorld(t)
	peers.RunSipp(t, "publish.xml", tw.kam.Addr(), "-s", "carol", "-key", "domain", sipDomain, "-key", "note", "at my desk").Check(t)

	tw.alice.SendPresence(t, "carol@"+compDomain, "subscribe", "", "")
	var subscribed, available bool
	var status string
	for deadline := time.Now().Add(15 * time.Second); !(subscribed && available) && time.Now().Before(deadline); {
		p, ok := tw.alice.TryNext(500 * time.Millisecond)
		if !ok || p.Kind != "presence" || !strings.HasPrefix(p.From, "carol@"+compDomain) {
			continue
		}
		switch p.Type {
		case "subscribed":
			subscribed = true
		case "":
			available, status = true, p.Status
		}
	}
	if !subscribed || !available {
		t.Fatalf("alice: subscribed=%v available=%v (RFC 8048 §5.2.1)\nKamailio:\n%s", subscribed, available, strings.Join(tw.kamLines(), "\n"))
	}
	if status != "at my desk" {
		t.Errorf("status %q, want the PIDF note (RFC 8048 §6.3)", status)
	}
	if ls := tw.kamLines("KAM REQ SUBSCRIBE sip:carol@"+sipDomain, "src="+tw.stox.SIPAddr()); len(ls) == 0 {
		t.Errorf("Kamailio logged no SUBSCRIBE for carol from stox:\n%s", strings.Join(tw.kamLines(), "\n"))
	}
}

// RFC 8048 §5 state that lasts (the store keeps notification dialogs):
// with Postgres, a SIP watcher's notification dialog survives a restart of stox: after it,
// alice's next change still reaches the phone, in the same dialog, with
// nothing asked of either user.
func TestRFC8048SubscriptionSurvivesRestart(t *testing.T) {
	peers.Require(t, "baresip")
	w := newWorld(t, StoxConfig{DSN: storetest.NewDatabase(t), Accounts: map[string]string{"bob": "bobpw"}, Presence: `coalesce = "100ms"`})
	b := peers.StartBaresip(t, "bob", sipDomain, "bobpw", w.stox.SIPAddr(),
		peers.BaresipContacts("sip:alice@localhost"), peers.BaresipPresence())
	b.WaitRegistered(t, 10*time.Second)
	if sub := w.alice.NextPresence(t, 15*time.Second); sub.Type != "subscribe" {
		t.Fatalf("alice got %s, want a subscribe", sub)
	}
	time.Sleep(500 * time.Millisecond)
	// baresip 1.0 shows RPID busy as Busy and reads RPID away as closed,
	// so the case moves alice between dnd and plain available.
	w.alice.SendPresence(t, "", "", "dnd", "")
	waitStatus(t, b, "Online", "Busy")

	w.stox.Stop(t)
	w.stox.Start(t)
	time.Sleep(500 * time.Millisecond)
	w.alice.SendPresence(t, "", "", "", "after the restart")
	waitStatus(t, b, "Busy", "Online")
	if n := strings.Count(b.LogText(), "Subscribing to"); n != 1 {
		t.Errorf("baresip subscribed %d times; the dialog should have survived", n)
	}
}
