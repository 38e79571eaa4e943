package conformance

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// The RFC 8048 cases off the happy path: refusals, refreshes, cancellation
// and polling, in both directions. SIP watchers are sipp
// (pres_subscribe.xml) authenticated with digest as bob; SIP presentities
// that refuse or retry are sipp UASes stox reaches as its outbound proxy.

const presCoalesce = `coalesce = "100ms"`

// sippWatcher is one SIP notification dialog driven by sipp with
// pres_subscribe.xml: bob@sip.localhost (digest bob/bobpw) watching
// presentity. Every run uses the same local port (the Contact stox
// notifies) and Call-ID (-cid_str), so a second run continues the dialog
// of the first: sipp's -auth_uri is one per run, and the initial SUBSCRIBE
// (Request-URI the presentity) and an in-dialog one (Request-URI stox's
// Contact) need different digest URIs (RFC 3261 §22.4, which stox checks).
type sippWatcher struct {
	stox       *Stox
	user, pw   string
	presentity string // alice@localhost
	port       int
	callID     string
	fromTag    string
	cseq       int

	toTag, target string // from the 2xx to the initial SUBSCRIBE
}

func newSippWatcher(t *testing.T, s *Stox, presentity string) *sippWatcher {
	t.Helper()
	n := time.Now().UnixNano()
	return &sippWatcher{
		stox: s, user: "bob", pw: "bobpw", presentity: presentity,
		port:   peers.FreePort(t, "udp+tcp"),
		callID: fmt.Sprintf("pres-%d@127.0.0.1", n), fromTag: fmt.Sprintf("w%d", n),
	}
}

// sippNotify is one NOTIFY the watcher received (pres_subscribe.xml log).
type sippNotify struct {
	State, ContentType, Body string
	Length                   int
}

func (n sippNotify) String() string {
	return fmt.Sprintf("NOTIFY Subscription-State=%q Content-Type=%q Content-Length=%d body=%q", n.State, n.ContentType, n.Length, n.Body)
}

// subRun is the outcome of one pres_subscribe.xml run.
type subRun struct {
	peers.SippResult
	Code     int    // final status of the SUBSCRIBE
	ToTag    string // of the 2xx
	Contact  string // of the 2xx
	Expires  string // of the 2xx
	Notifies []sippNotify
}

var (
	presRespRE   = regexp.MustCompile(`RESPONSE (\d+) totag=(\S*) contact=(\S*) expires=(\S*)`)
	presFinalRE  = regexp.MustCompile(`SIP/2.0 (?:3\d\d|40[02-689]|4[1-9]\d|[56]\d\d) [^\r\n]*`)
	presNotifyRE = regexp.MustCompile(`(?s)NOTIFY state=(.*?) ctype=(.*?) clen=(\d*) BODY<<(.*?)>>BODY`)
)

func (w *sippWatcher) run(t *testing.T, ruri, to, authURI, event string, expires int, until string) subRun {
	t.Helper()
	r := peers.RunSipp(t, "pres_subscribe.xml", w.stox.SIPAddr(), "-p", strconv.Itoa(w.port), "-cid_str", w.callID,
		"-s", w.user, "-au", w.user, "-ap", w.pw, "-auth_uri", authURI,
		"-key", "ruri", ruri, "-key", "to", to, "-key", "domain", sipDomain, "-key", "from_tag", w.fromTag,
		"-key", "event", event, "-key", "expires", strconv.Itoa(expires),
		"-key", "cseq1", strconv.Itoa(w.cseq+1), "-key", "cseq2", strconv.Itoa(w.cseq+2), "-key", "until", until)
	w.cseq += 2
	if r.ExitCode != 0 {
		// Name a refusal plainly before the full dump.
		if m := presFinalRE.FindStringSubmatch(r.Trace); m != nil {
			t.Errorf("SUBSCRIBE %s refused: %s", ruri, m[0])
		}
	}
	r.Check(t)
	out := subRun{SippResult: r}
	if m := presRespRE.FindStringSubmatch(r.Logs); m != nil {
		out.Code, _ = strconv.Atoi(m[1])
		out.ToTag, out.Contact, out.Expires = m[2], m[3], m[4]
	} else {
		t.Fatalf("sipp logged no final response:\n%s\ntrace:\n%s", r.Logs, r.Trace)
	}
	for _, m := range presNotifyRE.FindAllStringSubmatch(r.Logs, -1) {
		n, _ := strconv.Atoi(m[3])
		out.Notifies = append(out.Notifies, sippNotify{State: strings.TrimSpace(m[1]), ContentType: strings.TrimSpace(m[2]),
			Length: n, Body: strings.TrimSpace(m[4])})
	}
	return out
}

// subscribe sends the initial SUBSCRIBE (Request-URI sip:presentity) and
// keeps the dialog's remote tag and target for resubscribe.
func (w *sippWatcher) subscribe(t *testing.T, expires int, until string) subRun {
	t.Helper()
	r := w.run(t, "sip:"+w.presentity, "<sip:"+w.presentity+">", w.presentity, "presence", expires, until)
	if r.Code/100 != 2 || r.ToTag == "" || r.Contact == "" {
		t.Fatalf("SUBSCRIBE: %d, To tag %q, Contact %q; want a 2xx establishing the dialog\n%s", r.Code, r.ToTag, r.Contact, r.Trace)
	}
	w.toTag, w.target = r.ToTag, r.Contact
	return r
}

// resubscribe sends a SUBSCRIBE inside the dialog (RFC 6665 §4.1.2.2:
// Request-URI the remote target, To with the remote tag).
func (w *sippWatcher) resubscribe(t *testing.T, expires int, until string) subRun {
	t.Helper()
	if w.toTag == "" {
		t.Fatal("resubscribe before subscribe")
	}
	return w.run(t, w.target, "<sip:"+w.presentity+">;tag="+w.toTag, strings.TrimPrefix(w.target, "sip:"), "presence", expires, until)
}

func notifyList(ns []sippNotify) string {
	var b strings.Builder
	for _, n := range ns {
		b.WriteString("\n  " + n.String())
	}
	return b.String()
}

// waitPresence waits for a presence stanza from from (bare JID, any
// resource) of type typ ("" available) and returns it; other stanzas are
// passed to seen, when not nil.
func waitPresence(t *testing.T, c *peers.XMPPClient, from, typ string, timeout time.Duration, seen func(peers.Stanza)) peers.Stanza {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		s, ok := c.TryNext(time.Until(deadline))
		if !ok {
			break
		}
		if s.Kind == "presence" && (s.From == from || strings.HasPrefix(s.From, from+"/")) && s.Type == typ {
			return s
		}
		if seen != nil {
			seen(s)
		}
	}
	t.Fatalf("%s got no presence type=%q from %s within %v", c.Bare, typ, from, timeout)
	return peers.Stanza{}
}

// RFC 8048 §5.3.1 (Examples 15 and 16): alice declines the SIP watcher's
// authorization request (<presence type='unsubscribed'/>), and stox ends
// the notification dialog with an empty NOTIFY terminated;reason=rejected.
// No NOTIFY before it carries alice's presence (§8.2).
func TestRFC8048DeclineTerminatesRejected(t *testing.T) {
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}, Presence: presCoalesce},
		peers.WithSubscriptions(peers.SubscriptionsDecline))
	sw := newSippWatcher(t, w.stox, "alice@localhost")
	r := sw.subscribe(t, 600, "terminated")

	if sub := w.alice.NextPresence(t, 5*time.Second); sub.Type != "subscribe" || sub.From != "bob@"+compDomain {
		t.Errorf("alice got %s, want a subscribe from bob@%s (RFC 8048 §5.3.1, Example 12)", sub, compDomain)
	}
	last := r.Notifies[len(r.Notifies)-1]
	if last.State != "terminated;reason=rejected" || last.Length != 0 || last.Body != "" {
		t.Errorf("final %s; want an empty NOTIFY with Subscription-State terminated;reason=rejected (RFC 8048 Example 16)%s", last, notifyList(r.Notifies))
	}
	for _, n := range r.Notifies[:len(r.Notifies)-1] {
		if !strings.HasPrefix(n.State, "pending") || n.Length != 0 {
			t.Errorf("before the refusal: %s; want only empty pending NOTIFYs (RFC 8048 §8.2)", n)
		}
	}
}

// RFC 8048 §5.3.3 (Example 17): the SIP watcher ends an active dialog with
// an in-dialog SUBSCRIBE Expires: 0; stox answers 200, sends a NOTIFY with
// a PIDF whose basic status is closed and Subscription-State
// terminated;reason=timeout, and tells alice <presence type='unavailable'/>
// from bob.
func TestRFC8048UnsubscribeExpiresZero(t *testing.T) {
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}, Presence: presCoalesce},
		peers.WithSubscriptions(peers.SubscriptionsApprove))
	sw := newSippWatcher(t, w.stox, "alice@localhost")
	r := sw.subscribe(t, 600, "open")
	if last := r.Notifies[len(r.Notifies)-1]; !strings.HasPrefix(last.State, "active") {
		t.Fatalf("alice approved and is online; last %s, want active with her PIDF%s", last, notifyList(r.Notifies))
	}
	if sub := w.alice.NextPresence(t, 5*time.Second); sub.Type != "subscribe" {
		t.Fatalf("alice got %s, want bob's subscribe", sub)
	}

	u := sw.resubscribe(t, 0, "terminated")
	if u.Code != 200 || u.Expires != "0" {
		t.Errorf("SUBSCRIBE Expires 0: %d with Expires %q, want 200 with Expires 0 (RFC 6665 §4.2.1.1)", u.Code, u.Expires)
	}
	last := u.Notifies[len(u.Notifies)-1]
	if last.State != "terminated;reason=timeout" {
		t.Errorf("final %s; want Subscription-State terminated;reason=timeout (RFC 8048 §5.3.3 step 1)%s", last, notifyList(u.Notifies))
	}
	if !strings.HasPrefix(last.ContentType, "application/pidf+xml") || !strings.Contains(last.Body, "<basic>closed</basic>") || strings.Contains(last.Body, "<basic>open</basic>") {
		t.Errorf("final %s; want a PIDF with basic status closed only (RFC 8048 §5.3.3 step 1)", last)
	}
	if len(u.Notifies) != 1 {
		t.Errorf("%d NOTIFYs after the unsubscribe, want 1:%s", len(u.Notifies), notifyList(u.Notifies))
	}
	waitPresence(t, w.alice, "bob@"+compDomain, "unavailable", 5*time.Second, func(s peers.Stanza) {
		t.Logf("alice also got %s", s)
	})
}

// RFC 8048 §5.3.2: a refresh of the notification dialog gets a NOTIFY;
// when stox has no meaningful information about the contact's
// availability, that NOTIFY MUST be empty. Construction: alice pre-approves
// bob (RFC 6121 §3.4, which Prosody stores without telling anyone) and
// logs out, so stox has never received a presence stanza of hers; bob's
// SUBSCRIBE is approved by Prosody on her behalf (<presence
// type='subscribed'/>, no presence follows, she is offline), the dialog
// becomes active, and the refresh finds nothing known: "no meaningful
// state" is "no presence of alice ever reached stox", not "she is
// unavailable" (that is known state: a closed tuple).
func TestRFC8048RefreshWithoutStateIsEmpty(t *testing.T) {
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}, Presence: presCoalesce},
		peers.WithSubscriptions(peers.SubscriptionsApprove))
	w.alice.SendPresence(t, "bob@"+compDomain, "subscribed", "", "")
	// The ping's answer comes after Prosody has processed the pre-approval.
	if res := w.alice.IQ(t, "localhost", "get", `<ping xmlns="urn:xmpp:ping"/>`, 5*time.Second); res.Type != "result" {
		t.Fatalf("ping: %s", res)
	}
	w.alice.Quit()

	sw := newSippWatcher(t, w.stox, "alice@localhost")
	r := sw.subscribe(t, 600, "active")
	for _, n := range r.Notifies {
		if n.Length != 0 {
			t.Errorf("%s: stox has no presence of alice, so no NOTIFY may carry a body (RFC 8048 §5.3.2, §8.2)", n)
		}
	}

	f := sw.resubscribe(t, 600, "any")
	if f.Code != 200 {
		t.Errorf("refresh: %d, want 200", f.Code)
	}
	if len(f.Notifies) == 0 {
		t.Fatal("no NOTIFY after the refresh (RFC 6665 §4.2.1.2, RFC 8048 §5.3.2)")
	}
	n := f.Notifies[0]
	if !strings.HasPrefix(n.State, "active") || n.Length != 0 || n.Body != "" || n.ContentType != "" {
		t.Errorf("refresh: %s; want an empty NOTIFY (no Content-Type, Content-Length: 0), state active (RFC 8048 §5.3.2 MUST)", n)
	}
}

// RFC 8048 §7.2: SUBSCRIBE with Expires: 0 is a one-time request for the
// current state: 200 (Expires: 0) and a single NOTIFY, terminated, with a
// PIDF only for a watcher alice has authorized whose presence stox knows
// (§8.2: nothing to anyone else).
func TestRFC8048PollExpiresZero(t *testing.T) {
	peers.Require(t, "sipp")
	poll := func(t *testing.T, w *world) sippNotify {
		t.Helper()
		r := newSippWatcher(t, w.stox, "alice@localhost").subscribe(t, 0, "terminated")
		if r.Code != 200 || r.Expires != "0" {
			t.Errorf("poll: %d with Expires %q, want 200 with Expires 0", r.Code, r.Expires)
		}
		if len(r.Notifies) != 1 || !strings.HasPrefix(r.Notifies[0].State, "terminated") {
			t.Fatalf("poll: want exactly one NOTIFY, terminated (RFC 8048 §7.2, RFC 3856 §6.4), got:%s", notifyList(r.Notifies))
		}
		return r.Notifies[0]
	}
	t.Run("unauthorized", func(t *testing.T) {
		w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}, Presence: presCoalesce})
		if n := poll(t, w); n.Length != 0 || n.Body != "" {
			t.Errorf("%s: bob is not authorized, so the NOTIFY must not carry alice's presence (RFC 8048 §8.2)", n)
		}
	})
	t.Run("authorized", func(t *testing.T) {
		w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}, Presence: presCoalesce},
			peers.WithSubscriptions(peers.SubscriptionsApprove))
		// bob's phone holds a subscription alice approved; she is online.
		newSippWatcher(t, w.stox, "alice@localhost").subscribe(t, 600, "open")
		n := poll(t, w)
		if !strings.HasPrefix(n.ContentType, "application/pidf+xml") || !strings.Contains(n.Body, "<basic>open</basic>") {
			t.Errorf("%s: want alice's current state, a PIDF with basic open (RFC 8048 §7.2)", n)
		}
	})
}

// presUASWorld is stox with a sipp presentity (pres_subscribe_uas.xml,
// key status) as its outbound proxy and trusted peer: every SUBSCRIBE stox
// sends for a SIP user it does not register reaches that UAS, which
// answers as told.
func presUASWorld(t *testing.T, status string) (*world, *peers.SippUAS) {
	t.Helper()
	peers.Require(t, "sipp")
	uas := peers.StartSippUAS(t, "pres_subscribe_uas.xml", "-key", "status", status, "-key", "presentity", "dave@"+sipDomain)
	w := newWorld(t, StoxConfig{OutboundProxy: "udp:" + uas.Addr(), TrustedPeers: []string{"127.0.0.1/32"}, Presence: presCoalesce})
	return w, uas
}

var uasSubRE = regexp.MustCompile(`GOT SUBSCRIBE call=(\d+) callid=\s*(\S+) .* expires=(\d*)`)

// uasSubscribes returns the SUBSCRIBEs the UAS logged: call number,
// Call-ID and Expires of each.
func uasSubscribes(u *peers.SippUAS) [][3]string {
	text, _ := os.ReadFile(u.Log)
	var out [][3]string
	for _, m := range uasSubRE.FindAllStringSubmatch(string(text), -1) {
		out = append(out, [3]string{m[1], m[2], m[3]})
	}
	return out
}

// RFC 8048 §5.2.1: 403, 489 and 603 to stox's SUBSCRIBE are permanent: the
// authorization is cancelled, alice MUST get <presence type='unsubscribed'/>
// from dave, and stox does not try again.
func TestRFC8048PermanentRefusalUnsubscribes(t *testing.T) {
	for _, status := range []string{"403", "489", "603"} {
		t.Run(status, func(t *testing.T) {
			w, uas := presUASWorld(t, status)
			dave := "dave@" + compDomain
			w.alice.SendPresence(t, dave, "subscribe", "", "")
			waitPresence(t, w.alice, dave, "unsubscribed", 10*time.Second, func(s peers.Stanza) {
				if s.Kind == "presence" && strings.HasPrefix(s.From, dave) {
					t.Errorf("alice got %s from dave before unsubscribed; want nothing else (RFC 8048 §5.2.1)", s)
				}
			})
			// stox's backoff starts at 1 s: a retry would show by now.
			time.Sleep(1500 * time.Millisecond)
			if subs := uasSubscribes(uas); len(subs) != 1 {
				t.Errorf("the presentity got %d SUBSCRIBEs, want 1 (a %s is permanent): %v", len(subs), status, subs)
			}
			for _, s := range w.alice.Pending() {
				if s.Kind == "presence" && strings.HasPrefix(s.From, dave) {
					t.Errorf("after the refusal alice got %s", s)
				}
			}
		})
	}
}

// RFC 8048 §5.2.1: 423 and 481 are transient: stox tries again (423: with
// the Min-Expires interval in the same dialog attempt, RFC 6665 §4.1.2.1;
// 481: in a new dialog, §4.1.2.4), the retry is accepted and the first
// NOTIFY gives alice subscribed and dave's presence; she never sees
// unsubscribed.
func TestRFC8048TransientRefusalRetries(t *testing.T) {
	for _, status := range []string{"423", "481"} {
		t.Run(status, func(t *testing.T) {
			w, uas := presUASWorld(t, status)
			dave := "dave@" + compDomain
			w.alice.SendPresence(t, dave, "subscribe", "", "")
			var subscribed, available bool
			var note string
			for deadline := time.Now().Add(10 * time.Second); !(subscribed && available) && time.Now().Before(deadline); {
				s, ok := w.alice.TryNext(time.Until(deadline))
				if !ok {
					break
				}
				if s.Kind != "presence" || !strings.HasPrefix(s.From, dave) {
					continue
				}
				switch s.Type {
				case "subscribed":
					subscribed = true
				case "":
					available, note = true, s.Status
				case "unsubscribed":
					t.Fatalf("alice got unsubscribed from dave after a %s; it is transient (RFC 8048 §5.2.1)", status)
				}
			}
			if !subscribed || !available {
				t.Fatalf("alice: subscribed=%v available=%v, want both after the retry (RFC 8048 §5.2.1, §6.3); SUBSCRIBEs: %v", subscribed, available, uasSubscribes(uas))
			}
			if note != "at the desk" {
				t.Errorf("status %q, want the PIDF note (RFC 8048 §6.3)", note)
			}
			subs := uasSubscribes(uas)
			if len(subs) != 2 {
				t.Fatalf("the presentity got %d SUBSCRIBEs, want 2 (refused, then retried): %v", len(subs), subs)
			}
			switch status {
			case "423":
				if subs[1][1] != subs[0][1] || subs[1][2] != "7200" {
					t.Errorf("retry after 423: %v; want the same Call-ID with Expires 7200 (Min-Expires, RFC 6665 §4.1.2.1)", subs)
				}
			case "481":
				if subs[1][1] == subs[0][1] {
					t.Errorf("retry after 481 reused Call-ID %s; want a new dialog (RFC 6665 §4.1.2.4)", subs[1][1])
				}
			}
		})
	}
}

// RFC 6665 §4.2.1.1 (and RFC 8048 §5: presence is the one package the
// gateway serves): a SUBSCRIBE for another event package is refused with
// 489 Bad Event and an Allow-Events header listing presence (§8.2.2).
func TestRFC8048OtherEventPackage489(t *testing.T) {
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}, Presence: presCoalesce})
	r := peers.RunSipp(t, "pres_subscribe_event.xml", w.stox.SIPAddr(), "-s", "bob", "-au", "bob", "-ap", "bobpw",
		"-auth_uri", "alice@localhost", "-key", "ruri", "sip:alice@localhost", "-key", "to", "<sip:alice@localhost>",
		"-key", "domain", sipDomain, "-key", "event", "dialog")
	r.Check(t)
	m := regexp.MustCompile(`REFUSED 489 allow-events=(.*)`).FindStringSubmatch(r.Logs)
	if m == nil {
		t.Fatalf("no 489 logged:\n%s", r.Logs)
	}
	if evs := strings.Split(m[1], ","); !slices.ContainsFunc(evs, func(e string) bool { return strings.TrimSpace(e) == "presence" }) {
		t.Errorf("Allow-Events %q, want presence listed (RFC 6665 §8.2.2)", m[1])
	}
	if p, ok := w.alice.TryNext(time.Second); ok && p.Kind == "presence" {
		t.Errorf("alice got %s for a refused SUBSCRIBE", p)
	}
}
