package presence

import (
	"context"
	"errors"
	"testing"
	"time"

	"stox.dev/stox/mapping"
)

const (
	carolGW  = `carol\40sip.other@gw.example`
	carolAOR = "sip:carol@sip.other"
	bobLocal = "bob@gw.example"
)

const pidfOpen = `<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:carol@sip.other"><tuple id="ID-desk"><status><basic>open</basic></status><note>In office</note></tuple></presence>`

// remoteActive subscribes alice to carol (a SIP user elsewhere) and
// activates the dialog with a PIDF NOTIFY.
func remoteActive(t *testing.T, h *harness) mapping.Dialog {
	t.Helper()
	h.svc.ReceivePresence(pres(alice, carolGW, "subscribe"))
	eventually(t, "SUBSCRIBE", func() bool { return len(h.sip.getSubs()) >= 1 })
	d := h.sip.getSubs()[0].d
	out := h.svc.Notify(context.Background(), mapping.NotifyRequest{CallID: d.CallID, LocalTag: d.LocalTag, RemoteTag: "rtag",
		CSeq: 1, Event: "presence", State: "active", Expires: time.Hour, ContentType: pidfType, Body: []byte(pidfOpen)})
	if out.Status != 200 {
		t.Fatalf("NOTIFY: %+v", out)
	}
	h.waitStanza(isType(carolGW, alice, "subscribed"))
	h.waitStanza(isType(carolGW+"/desk", alice, ""))
	return d
}

// RFC 8048 §5.2.1: subscribe → SUBSCRIBE; pending NOTIFY silent; first
// active → subscribed then the translated PIDF (§6.3).
func TestXMPPWatcherRemote(t *testing.T) {
	h := start(t, nil, nil)
	h.svc.ReceivePresence(pres(alice, carolGW, "subscribe"))
	eventually(t, "SUBSCRIBE", func() bool { return len(h.sip.getSubs()) == 1 })
	sc := h.sip.getSubs()[0]
	if sc.exp != time.Hour || sc.d.LocalCSeq != 1 || sc.d.RemoteURI != carolAOR || sc.d.LocalURI != aliceURI || sc.d.RemoteTag != "" {
		t.Fatalf("SUBSCRIBE: %+v", sc)
	}
	d := sc.d
	nr := mapping.NotifyRequest{CallID: d.CallID, LocalTag: d.LocalTag, RemoteTag: "rtag", CSeq: 1, Event: "presence", State: "pending"}
	if out := h.svc.Notify(context.Background(), nr); out.Status != 200 {
		t.Fatalf("pending: %+v", out)
	}
	h.barrier()
	if len(h.x.sent()) != 0 {
		t.Fatalf("pending must be silent: %+v", h.x.sent())
	}
	nr.CSeq, nr.State, nr.ContentType, nr.Body, nr.Contact = 2, "active", pidfType, []byte(pidfOpen), "sip:carol@192.0.2.9"
	if out := h.svc.Notify(context.Background(), nr); out.Status != 200 {
		t.Fatalf("active: %+v", out)
	}
	h.waitStanza(isType(carolGW, alice, "subscribed"))
	p := h.waitStanza(isType(carolGW+"/desk", alice, ""))
	if len(p.Status) != 1 || p.Status[0].Value != "In office" {
		t.Fatalf("§6.3 translation: %+v", p)
	}
	h.flush()
	s, ok := h.st.get(mapping.XMPPWatcher, alice, carolAOR)
	if !ok || !s.Authorize || s.State != mapping.SubActive || s.Dialog.RemoteTarget != "sip:carol@192.0.2.9" {
		t.Fatalf("stored %+v", s)
	}
	// Dialog checks (RFC 3261 §12.2.2, RFC 6665).
	for _, tc := range []struct {
		name string
		mod  func(*mapping.NotifyRequest)
		want int
	}{
		{"lower CSeq 500", func(r *mapping.NotifyRequest) { r.CSeq = 1 }, 500},
		{"unknown dialog 481", func(r *mapping.NotifyRequest) { r.CallID = "nope" }, 481},
		{"other event 489", func(r *mapping.NotifyRequest) { r.CSeq = 9; r.Event = "dialog" }, 489},
		{"not PIDF 415", func(r *mapping.NotifyRequest) { r.CSeq = 9; r.ContentType = "text/plain" }, 415},
	} {
		r := nr
		tc.mod(&r)
		if out := h.svc.Notify(context.Background(), r); out.Status != tc.want {
			t.Errorf("%s: %+v", tc.name, out)
		}
	}
}

// RFC 8048 §5.2.1: 403, 489, 603 cancel the authorization permanently.
func TestXMPPWatcherPermanentFailure(t *testing.T) {
	for _, code := range []int{403, 489, 603} {
		t.Run(time.Duration(code).String(), func(t *testing.T) {
			h := start(t, nil, nil)
			h.sip.onSub = func(int, mapping.Dialog, time.Duration) (mapping.Response, mapping.Dialog, error) {
				return mapping.Response{Status: code}, mapping.Dialog{}, nil
			}
			h.svc.ReceivePresence(pres(alice, carolGW, "subscribe"))
			h.waitStanza(isType(carolGW, alice, "unsubscribed"))
			h.gone(mapping.XMPPWatcher, alice, carolAOR)
			if len(h.sip.getSubs()) != 1 {
				t.Fatal("retried a permanent failure")
			}
		})
	}
}

// RFC 8048 §5.2.1: 423 and 481 are transient, and so are timeouts/5xx
// (backoff); the authorization is kept and the SUBSCRIBE retried.
func TestXMPPWatcherTransientFailure(t *testing.T) {
	for _, tc := range []struct {
		name      string
		resp      mapping.Response
		err       error
		newDialog bool
		backoff   time.Duration // RetryBase; 0: at once (a new dialog)
	}{
		{"423 at the cap", mapping.Response{Status: 423}, nil, false, 10 * time.Millisecond},
		{"481 new dialog", mapping.Response{Status: 481}, nil, true, 0},
		{"timeout", mapping.Response{}, errors.New("timer F"), false, 10 * time.Millisecond},
		{"503", mapping.Response{Status: 503}, nil, false, 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, nil, nil)
			h.sip.onSub = func(n int, d mapping.Dialog, exp time.Duration) (mapping.Response, mapping.Dialog, error) {
				if n == 1 {
					return tc.resp, mapping.Dialog{}, tc.err
				}
				return h.sip.okSub(d, exp)
			}
			h.svc.ReceivePresence(pres(alice, carolGW, "subscribe"))
			h.quiet() // the failure handled, its retry armed
			if tc.backoff > 0 {
				h.clk.Advance(tc.backoff - time.Nanosecond)
				h.quiet()
				if n := len(h.sip.getSubs()); n != 1 {
					t.Fatalf("%d SUBSCRIBEs: retried before the backoff (%v) ran out", n, tc.backoff)
				}
			}
			h.clk.Advance(min(tc.backoff, time.Nanosecond))
			eventually(t, "retry", func() bool { return len(h.sip.getSubs()) >= 2 })
			s := h.sip.getSubs()
			if (s[0].d.CallID != s[1].d.CallID) != tc.newDialog {
				t.Fatalf("new dialog %v: %s / %s", tc.newDialog, s[0].d.CallID, s[1].d.CallID)
			}
			if s[1].d.LocalCSeq <= s[0].d.LocalCSeq {
				t.Fatal("CSeq did not increase")
			}
			if h.hasStanza(isType(carolGW, alice, "unsubscribed")) {
				t.Fatal("transient failure told the user")
			}
		})
	}
}

// RFC 8048 §5.2.1: unsubscribe → SUBSCRIBE Expires 0 in the dialog, then
// unsubscribed; the final NOTIFY of the dialog still gets 200.
func TestXMPPWatcherUnsubscribe(t *testing.T) {
	h := start(t, nil, nil)
	d := remoteActive(t, h)
	h.svc.ReceivePresence(pres(alice, carolGW, "unsubscribe"))
	h.waitStanza(isType(carolGW, alice, "unsubscribed"))
	s := h.sip.getSubs()
	last := s[len(s)-1]
	if last.exp != 0 || last.d.CallID != d.CallID || last.d.RemoteTag != "rtag" {
		t.Fatalf("Expires 0 in dialog: %+v", last)
	}
	h.gone(mapping.XMPPWatcher, alice, carolAOR)
	out := h.svc.Notify(context.Background(), mapping.NotifyRequest{CallID: d.CallID, LocalTag: d.LocalTag, CSeq: 5, Event: "presence", State: "terminated", Reason: "timeout"})
	if out.Status != 200 {
		t.Fatalf("final NOTIFY: %+v", out)
	}
}

// RFC 6665 §4.1.3 reasons: rejected → unsubscribed; timeout → new dialog.
func TestXMPPWatcherTerminated(t *testing.T) {
	t.Run("rejected", func(t *testing.T) {
		h := start(t, nil, nil)
		d := remoteActive(t, h)
		h.svc.Notify(context.Background(), mapping.NotifyRequest{CallID: d.CallID, LocalTag: d.LocalTag, CSeq: 2, Event: "presence", State: "terminated", Reason: "rejected"})
		h.waitStanza(isType(carolGW, alice, "unsubscribed"))
	})
	t.Run("deactivated", func(t *testing.T) {
		h := start(t, nil, nil)
		d := remoteActive(t, h)
		h.svc.Notify(context.Background(), mapping.NotifyRequest{CallID: d.CallID, LocalTag: d.LocalTag, CSeq: 2, Event: "presence", State: "terminated", Reason: "deactivated"})
		eventually(t, "re-SUBSCRIBE", func() bool { return len(h.sip.getSubs()) >= 2 })
		if s := h.sip.getSubs()[1]; s.d.CallID == d.CallID || s.d.RemoteTag != "" {
			t.Fatalf("want a new dialog: %+v", s.d)
		}
	})
}

// RFC 8048 §8.1: before each refresh, a probe to the watcher's bare JID;
// refresh only when her server answers.
func TestXMPPWatcherProbeBeforeRefresh(t *testing.T) {
	h := start(t, nil, nil)
	h.sip.onSub = func(n int, d mapping.Dialog, exp time.Duration) (mapping.Response, mapping.Dialog, error) {
		r, nd, err := h.sip.okSub(d, exp)
		nd.Expires = h.clk.Now().Add(150 * time.Millisecond) // refresh at 4/5: 120 ms
		return r, nd, err
	}
	remoteActive(t, h)
	h.quiet()
	h.clk.Advance(120*time.Millisecond - time.Nanosecond)
	h.quiet()
	if h.hasStanza(isType(carolGW, alice, "probe")) {
		t.Fatal("probe before the refresh was due")
	}
	h.clk.Advance(time.Nanosecond)
	h.waitStanza(isType(carolGW, alice, "probe"))
	if len(h.sip.getSubs()) != 1 {
		t.Fatal("refreshed before the probe was answered")
	}
	h.svc.ReceivePresence(pres(alice+"/home", carolGW, ""))
	eventually(t, "refresh", func() bool { return len(h.sip.getSubs()) >= 2 })
	if s := h.sip.getSubs()[1]; s.d.RemoteTag != "rtag" || s.exp != time.Hour {
		t.Fatalf("in-dialog refresh: %+v", s)
	}
	// Next round: no answer → no refresh (let the dialog expire).
	h.quiet() // the refresh answered, the next one armed
	h.clk.Advance(120 * time.Millisecond)
	eventually(t, "second probe", func() bool {
		n := 0
		for _, p := range h.x.sent() {
			if p.Type == "probe" {
				n++
			}
		}
		return n >= 2
	})
	h.clk.Advance(h.svc.cfg.ProbeWait)
	h.quiet()
	if n := len(h.sip.getSubs()); n != 2 {
		t.Fatalf("refreshed without an answer: %d SUBSCRIBEs", n)
	}
}

// RFC 6121 §4.3, RFC 8048 §5.2.1 and §8.2: probes.
func TestXMPPWatcherProbe(t *testing.T) {
	h := start(t, nil, nil)
	h.svc.ReceivePresence(pres(alice, carolGW, "probe"))
	h.waitStanza(isType(carolGW, alice, "unsubscribed"))
	if len(h.sip.getSubs()) != 0 {
		t.Fatal("a probe without authorization must not reach SIP (§8.2)")
	}
	remoteActive(t, h)
	before := len(h.x.sent())
	h.svc.ReceivePresence(pres(alice, carolGW, "probe"))
	eventually(t, "re-SUBSCRIBE", func() bool { return len(h.sip.getSubs()) >= 2 })
	eventually(t, "last known presence", func() bool {
		for _, p := range h.x.sent()[before:] {
			if p.From.String() == carolGW+"/desk" && p.Type == "" {
				return true
			}
		}
		return false
	})
}

// Local user (stox is the presence agent): registration-based presence,
// BindingsChanged, PUBLISH (RFC 3903) etag lifecycle.
func TestXMPPWatcherLocal(t *testing.T) {
	h := start(t, nil, func(c *Config) { c.Coalesce = 20 * time.Millisecond })
	h.svc.ReceivePresence(pres(alice, bobLocal, "subscribe"))
	h.waitStanza(isType(bobLocal, alice, "subscribed"))
	h.waitStanza(isType(bobLocal, alice, "unavailable"))
	if len(h.sip.getSubs()) != 0 {
		t.Fatal("a local user needs no SUBSCRIBE")
	}
	h.loc.setBindings(bobAOR, 1)
	h.svc.BindingsChanged(t.Context(), bobAOR, 1)
	h.waitStanza(isType(bobLocal, alice, "")) // the first broadcast: at once

	ctx := context.Background()
	bob := mustParseURI(bobAOR)
	body := []byte(`<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:bob@sip.example"><tuple id="ID-desk"><status><basic>open</basic></status><note>On the phone</note></tuple></presence>`)
	for _, tc := range []struct {
		name string
		r    mapping.PublishRequest
		want int
	}{
		{"415", mapping.PublishRequest{Presentity: bob, Expires: -1, ContentType: "text/plain", Body: []byte("hi")}, 415},
		{"423", mapping.PublishRequest{Presentity: bob, Expires: 30 * time.Second, ContentType: pidfType, Body: body}, 423},
		{"412", mapping.PublishRequest{Presentity: bob, ETag: "nope", Expires: -1}, 412},
		{"403 other domain", mapping.PublishRequest{Presentity: mustParseURI(carolAOR), Expires: -1, ContentType: pidfType, Body: body}, 403},
		{"404 no account", mapping.PublishRequest{Presentity: mustParseURI("sip:zed@sip.example"), Expires: -1, ContentType: pidfType, Body: body}, 404},
	} {
		if out := h.svc.Publish(ctx, tc.r); out.Status != tc.want {
			t.Errorf("%s: %+v", tc.name, out)
		}
	}
	out := h.svc.Publish(ctx, mapping.PublishRequest{Presentity: bob, Expires: -1, ContentType: pidfType, Body: body})
	if out.Status != 200 || out.ETag == "" || out.Expires != time.Hour {
		t.Fatalf("initial PUBLISH: %+v", out)
	}
	h.quiet()
	if h.hasStanza(isType(bobLocal+"/desk", alice, "")) {
		t.Fatal("a second broadcast within the coalescing window went out at once (RFC 3856 §6.10)")
	}
	h.clk.Advance(20 * time.Millisecond) // the end of the window the first broadcast opened
	p := h.waitStanza(isType(bobLocal+"/desk", alice, ""))
	if len(p.Status) == 0 || p.Status[0].Value != "On the phone" {
		t.Fatalf("published state: %+v", p)
	}
	ref := h.svc.Publish(ctx, mapping.PublishRequest{Presentity: bob, ETag: out.ETag, Expires: 1800 * time.Second})
	if ref.Status != 200 || ref.ETag == "" || ref.ETag == out.ETag || ref.Expires != 1800*time.Second {
		t.Fatalf("refresh: %+v", ref)
	}
	if o := h.svc.Publish(ctx, mapping.PublishRequest{Presentity: bob, ETag: out.ETag, Expires: -1}); o.Status != 412 {
		t.Fatalf("old etag: %+v", o)
	}
	// Registration changes do not override PUBLISH state.
	before := len(h.x.sent())
	h.svc.BindingsChanged(t.Context(), bobAOR, 0)
	h.barrier()
	h.clk.Advance(20 * time.Millisecond)
	h.quiet()
	if len(h.x.sent()) != before {
		t.Fatal("binding change overrode PUBLISH state")
	}
	if o := h.svc.Publish(ctx, mapping.PublishRequest{Presentity: bob, ETag: ref.ETag, Expires: 0}); o.Status != 200 {
		t.Fatalf("remove: %+v", o)
	}
	// Back to registration (bindings: 1): the desk resource goes, bob@gw is available.
	h.waitStanza(isType(bobLocal+"/desk", alice, "unavailable"))
	// Probe: last known presence.
	n := len(h.x.sent())
	h.svc.ReceivePresence(pres(alice, bobLocal, "probe"))
	eventually(t, "probe answer", func() bool { return len(h.x.sent()) > n })
	// unsubscribe: unsubscribed, no SIP.
	h.svc.ReceivePresence(pres(alice, bobLocal, "unsubscribe"))
	h.waitStanza(isType(bobLocal, alice, "unsubscribed"))
	h.gone(mapping.XMPPWatcher, alice, bobAOR)
}

func TestXMPPWatcherLocalDenied(t *testing.T) {
	no := false
	h := start(t, nil, func(c *Config) { c.AutoAuthorizeLocal = &no })
	h.svc.ReceivePresence(pres(alice, bobLocal, "subscribe"))
	h.waitStanza(isType(bobLocal, alice, "unsubscribed"))
}

// RFC 8048 §5, docs/architecture.md: a new Service over the same Store resumes:
// SIP watchers probed, NOTIFY CSeq above anything sent, XMPP watcher
// refresh re-armed (probe first, §8.1).
func TestRestart(t *testing.T) {
	st := newFakeStore()
	h := start(t, st, nil)
	activeSub(t, h)
	h.svc.ReceivePresence(pres(alice+"/phone", bobGW, ""))
	n := h.waitNotifies(3)
	lastCSeq := n[2].d.LocalCSeq
	remoteActive(t, h)
	h.flush()
	h.stop()
	st.mu.Lock() // make alice's refresh due at once
	k := subKey{mapping.XMPPWatcher, alice, carolAOR}
	xs := st.subs[k]
	xs.RetryAt = epoch
	st.subs[k] = xs
	st.mu.Unlock()

	h2 := start(t, st, nil)
	h2.waitStanza(isType(bobGW, alice, "probe"))
	h2.svc.mu.Lock() // held by the resume that sent the probe: once it is ours, every timer is armed
	restored := len(h2.svc.subs)
	h2.svc.mu.Unlock()
	if restored != 2 {
		t.Fatalf("%d subscriptions restored, want 2", restored)
	}
	h2.clk.Advance(0)                              // the refresh is due at once
	h2.waitStanza(isType(carolGW, alice, "probe")) // refresh of alice's dialog: probe first
	h2.svc.ReceivePresence(pres(alice+"/phone", bobGW, ""))
	m := h2.waitNotifies(1)[0]
	if m.d.LocalCSeq <= lastCSeq || !has(m.body, "ID-phone") || !has(m.state, "active") {
		t.Fatalf("resumed NOTIFY: CSeq %d after %d, %+v", m.d.LocalCSeq, lastCSeq, m)
	}
	h2.flush()
	s, _ := st.get(mapping.SIPWatcher, alice, bobAOR)
	if s.Dialog.LocalCSeq < m.d.LocalCSeq {
		t.Fatalf("CSeq beyond the headroom must be stored before sending: %d < %d", s.Dialog.LocalCSeq, m.d.LocalCSeq)
	}
	h2.svc.ReceivePresence(pres(alice+"/home", carolGW, ""))
	eventually(t, "refresh after restart", func() bool { return len(h2.sip.getSubs()) >= 1 })
}

// A registration change waits for room in a full event queue instead of
// being dropped (a dropped change would leave watchers with a stale
// open/closed); it gives up only when its context ends.
func TestBindingsChangedWaitsForRoom(t *testing.T) {
	svc := New(Config{Domains: doms, EventQueue: 1}, &fakeXMPP{}, &fakeSIP{}, newFakeStore(), &fakeLoc{})
	svc.BindingsChanged(t.Context(), bobAOR, 1) // fills the queue; Run is not consuming
	ctx, cancel := context.WithCancel(t.Context())
	returned := make(chan struct{})
	go func() { defer close(returned); svc.BindingsChanged(ctx, bobAOR, 0) }()
	select {
	case <-returned:
		t.Fatal("BindingsChanged returned with the queue full: the change was dropped")
	case <-time.After(100 * time.Millisecond):
	}
	<-svc.events // room: the waiting change goes in
	select {
	case <-returned:
	case <-time.After(2 * time.Second):
		t.Fatal("BindingsChanged still blocked with room in the queue")
	}
	if ev := <-svc.events; ev.aor != bobAOR || ev.live != 0 {
		t.Fatalf("queued %+v, want %s=0", ev, bobAOR)
	}
	cancel()
	svc.BindingsChanged(ctx, bobAOR, 1) // fills the queue
	svc.BindingsChanged(ctx, bobAOR, 0) // full and cancelled: returns
}

// A stored XMPP-watcher subscription whose AOR does not parse (a row
// written by something else than stox) is left out at start, beside a
// good one: no stanza goes out from an address made of a malformed AOR.
func TestRestartSkipsMalformedAOR(t *testing.T) {
	st := newFakeStore()
	for _, aor := range []string{"sip:bad aor@sip.example", carolAOR} {
		_ = st.PutSubscription(t.Context(), mapping.Subscription{Kind: mapping.XMPPWatcher, JID: mustJID(alice),
			AOR: aor, State: mapping.SubActive, Authorize: true, RetryAt: epoch,
			Dialog: mapping.Dialog{CallID: "c-" + aor, LocalTag: "t", RemoteTag: "r", Expires: epoch.Add(time.Hour)}})
	}
	h := start(t, st, nil)
	h.clk.Advance(0) // both refreshes would be due at once
	h.waitStanza(isType(carolGW, alice, "probe"))
	h.svc.mu.Lock()
	restored := len(h.svc.subs)
	h.svc.mu.Unlock()
	if restored != 1 {
		t.Fatalf("%d subscriptions restored, want the 1 with a well-formed AOR", restored)
	}
	h.quiet()
	for _, p := range h.x.sent() {
		if p.From.Local == "" || p.From.Domain != doms.XMPP {
			t.Errorf("stanza from %q (a malformed AOR's address): %+v", p.From, p)
		}
	}
}
