package presence

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"stox.dev/stox/mapping"
)

const (
	alice    = "alice@xmpp.example"
	bobGW    = "bob@gw.example"
	bobAOR   = "sip:bob@sip.example"
	aliceURI = "sip:alice@xmpp.example"
)

var subN int

func subReq(exp time.Duration) mapping.SubscribeRequest {
	subN++
	return mapping.SubscribeRequest{
		Dialog: mapping.Dialog{CallID: fmt.Sprintf("c%d", subN), LocalTag: "lt", RemoteTag: "rt",
			LocalURI: aliceURI, RemoteURI: bobAOR, RemoteTarget: "sip:bob@192.0.2.1", RemoteCSeq: 1, Event: "presence"},
		Watcher: mustParseURI(bobAOR), Presentity: mustParseURI(aliceURI), Event: "presence",
		Expires: exp, Initial: true,
	}
}

func refresh(r mapping.SubscribeRequest, exp time.Duration) mapping.SubscribeRequest {
	r.Initial = false
	r.Expires = exp
	r.Dialog.RemoteCSeq++
	return r
}

// activeSub runs the RFC 8048 §5.3.1 happy path up to the empty active NOTIFY.
func activeSub(t *testing.T, h *harness) mapping.SubscribeRequest {
	t.Helper()
	r := subReq(-1)
	if out := h.svc.Subscribe(context.Background(), r); out.Status != 200 {
		t.Fatalf("SUBSCRIBE: %+v", out)
	}
	h.waitNotifies(1)
	h.svc.ReceivePresence(pres(alice, bobGW, "subscribed"))
	h.waitNotifies(2)
	return r
}

// RFC 8048 §5.3.1, §6.2, Examples 13-15; RFC 6665 §4.2.1.2.
func TestSIPWatcherHappyPath(t *testing.T) {
	h := start(t, nil, nil)
	out := h.svc.Subscribe(context.Background(), subReq(-1))
	if out.Status != 200 || out.Expires != time.Hour {
		t.Fatalf("RFC 3856 §6.4 default expires: %+v", out)
	}
	h.waitStanza(isType(bobGW, alice, "subscribe"))
	n := h.waitNotifies(1)
	if n[0].state != "pending;expires=3600" || n[0].body != "" {
		t.Fatalf("RFC 6665 §4.2.1.2 initial NOTIFY: %+v", n[0])
	}
	if n[0].d.LocalCSeq != 1 || n[0].d.CallID == "" {
		t.Fatalf("dialog: %+v", n[0].d)
	}
	h.svc.ReceivePresence(pres(alice, bobGW, "subscribed"))
	n = h.waitNotifies(2)
	if !has(n[1].state, "active;expires=") || n[1].body != "" || n[1].d.LocalCSeq != 2 {
		t.Fatalf("Example 14 empty active NOTIFY: %+v", n[1])
	}
	h.svc.ReceivePresence(pres(alice+"/phone", bobGW, ""))
	n = h.waitNotifies(3)
	if !has(n[2].state, "active") || n[2].ct != pidfType || !has(n[2].body, `id="ID-phone"`) || !has(n[2].body, "open") {
		t.Fatalf("§6.2 PIDF NOTIFY: %+v", n[2])
	}
	h.flush()
	s, ok := h.st.get(mapping.SIPWatcher, alice, bobAOR)
	if !ok || s.State != mapping.SubActive || s.Dialog.Expires.IsZero() {
		t.Fatalf("stored: %+v %v", s, ok)
	}
	if len(h.st.press) != 1 {
		t.Fatalf("last known presence stored: %v", h.st.press)
	}
	// A second resource going away: closed tuple for it (§6.2).
	h.svc.ReceivePresence(pres(alice+"/laptop", bobGW, ""))
	h.svc.ReceivePresence(pres(alice+"/laptop", bobGW, "unavailable"))
	h.quiet()
	if got := len(h.sip.getNotifies()); got != 3 {
		t.Fatalf("%d NOTIFYs: changes within the coalescing window went out at once (RFC 3856 §6.10)", got)
	}
	h.clk.Advance(h.svc.cfg.Coalesce)
	n = h.waitNotifies(4)
	last := n[len(n)-1]
	if !has(last.body, `id="ID-laptop"`) || !has(last.body, "closed") || !has(last.body, `id="ID-phone"`) {
		t.Fatalf("closed tuple for departed resource: %s", last.body)
	}
}

// RFC 3856 §6.10: 3 changes within the interval → 2 NOTIFYs, the last state wins.
func TestSIPWatcherCoalescing(t *testing.T) {
	h := start(t, nil, nil)
	activeSub(t, h)
	send := func(show string) {
		p := pres(alice+"/phone", bobGW, "")
		p.Show = show
		h.svc.ReceivePresence(p)
	}
	window := h.svc.cfg.Coalesce
	send("away") // no time passes: the first change goes out at once
	n := h.waitNotifies(3)
	if !has(n[2].body, ">away<") {
		t.Fatalf("the first change goes out at once: %s", n[2].body)
	}
	h.clk.Advance(window / 2)
	send("dnd")
	send("xa")
	h.quiet()
	if got := len(h.sip.getNotifies()); got != 3 {
		t.Fatalf("%d NOTIFYs: a change within the interval went out at once", got)
	}
	h.clk.Advance(window/2 - time.Nanosecond)
	h.quiet()
	if got := len(h.sip.getNotifies()); got != 3 {
		t.Fatalf("%d NOTIFYs: the merged change went out before the interval ended", got)
	}
	h.clk.Advance(time.Nanosecond)
	h.waitNotifies(4)
	h.quiet()
	n = h.sip.getNotifies()
	if len(n) != 4 {
		t.Fatalf("want 2 presence NOTIFYs for 3 changes, got %d", len(n)-2)
	}
	if !has(n[3].body, ">xa<") || has(n[3].body, "dnd") {
		t.Fatalf("last state wins: %s", n[3].body)
	}
	if d := n[3].d.LocalCSeq - n[2].d.LocalCSeq; d != 1 {
		t.Fatalf("CSeq step %d", d)
	}
}

// RFC 8048 §5.3.1, Example 16: a declined authorization.
func TestSIPWatcherDeclined(t *testing.T) {
	h := start(t, nil, nil)
	h.svc.Subscribe(context.Background(), subReq(-1))
	h.waitNotifies(1)
	h.svc.ReceivePresence(pres(alice, bobGW, "unsubscribed"))
	n := h.waitNotifies(2)
	if n[1].state != "terminated;reason=rejected" || n[1].body != "" {
		t.Fatalf("got %+v", n[1])
	}
	h.gone(mapping.SIPWatcher, alice, bobAOR)
}

// RFC 8048 §5.3.2: a refresh gets the current PIDF, or an EMPTY NOTIFY
// when nothing is known (MUST).
func TestSIPWatcherRefresh(t *testing.T) {
	for _, tc := range []struct {
		name  string
		known bool
	}{{"unknown state: empty", false}, {"known state: PIDF", true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, nil, nil)
			r := activeSub(t, h)
			want := 2
			if tc.known {
				h.svc.ReceivePresence(pres(alice+"/phone", bobGW, ""))
				want = 3
				h.waitNotifies(want)
			}
			out := h.svc.Subscribe(context.Background(), refresh(r, 1800*time.Second))
			if out.Status != 200 || out.Expires != 1800*time.Second {
				t.Fatalf("refresh: %+v", out)
			}
			n := h.waitNotifies(want + 1)[want]
			if n.state != "active;expires=1800" {
				t.Fatalf("state %q", n.state)
			}
			if tc.known != has(n.body, "ID-phone") || !tc.known && n.body != "" {
				t.Fatalf("body %q", n.body)
			}
			bad := refresh(r, time.Hour)
			bad.Dialog.CallID = "other"
			if out := h.svc.Subscribe(context.Background(), bad); out.Status != 481 {
				t.Fatalf("unknown dialog: %+v", out)
			}
		})
	}
}

// RFC 8048 §5.3.3: Expires 0 → NOTIFY closed + terminated;reason=timeout,
// XMPP unavailable to the contact, subscription deleted.
func TestSIPWatcherExpiresZero(t *testing.T) {
	h := start(t, nil, nil)
	r := activeSub(t, h)
	h.svc.ReceivePresence(pres(alice+"/phone", bobGW, ""))
	h.waitNotifies(3)
	if out := h.svc.Subscribe(context.Background(), refresh(r, 0)); out.Status != 200 || out.Expires != 0 {
		t.Fatalf("%+v", out)
	}
	n := h.waitNotifies(4)[3]
	if n.state != "terminated;reason=timeout" || !has(n.body, "closed") || has(n.body, "open") {
		t.Fatalf("%+v", n)
	}
	h.waitStanza(isType(bobGW, alice, "unavailable"))
	h.gone(mapping.SIPWatcher, alice, bobAOR)
	if out := h.svc.Subscribe(context.Background(), refresh(r, time.Hour)); out.Status != 481 {
		t.Fatalf("after Expires 0: %+v", out)
	}
}

// RFC 8048 §7.2: an initial SUBSCRIBE with Expires 0 is a poll.
func TestSIPWatcherPoll(t *testing.T) {
	t.Run("nothing known: probe and empty NOTIFY", func(t *testing.T) {
		h := start(t, nil, nil)
		if out := h.svc.Subscribe(context.Background(), subReq(0)); out.Status != 200 {
			t.Fatalf("%+v", out)
		}
		n := h.waitNotifies(1)[0]
		if n.state != "terminated;reason=timeout" || n.body != "" {
			t.Fatalf("%+v", n)
		}
		h.waitStanza(isType(bobGW, alice, "probe"))
		h.flush()
		if len(h.st.subs) != 0 {
			t.Fatal("a poll stores nothing")
		}
	})
	t.Run("authorized and known: PIDF", func(t *testing.T) {
		h := start(t, nil, nil)
		h.svc.ReceivePresence(pres(alice+"/phone", bobGW, "")) // the server sends presence only to authorized subscribers
		h.barrier()
		h.svc.Subscribe(context.Background(), subReq(0))
		n := h.waitNotifies(1)[0]
		if n.state != "terminated;reason=timeout" || !has(n.body, "ID-phone") {
			t.Fatalf("%+v", n)
		}
		if h.hasStanza(isType(bobGW, alice, "probe")) {
			t.Fatal("probe although the state is known")
		}
	})
}

// RFC 8048 §5.3.3, long-lived model: expiry without refresh acts as Expires 0.
func TestSIPWatcherExpiryTimer(t *testing.T) {
	st := newFakeStore()
	st.subs[subKey{mapping.SIPWatcher, alice, bobAOR}] = mapping.Subscription{
		Kind: mapping.SIPWatcher, JID: mustJID(alice), AOR: bobAOR, State: mapping.SubActive,
		Dialog: mapping.Dialog{CallID: "c1", LocalTag: "lt", RemoteTag: "rt", LocalCSeq: 7, Event: "presence",
			Expires: epoch.Add(120 * time.Millisecond)},
	}
	h := start(t, st, nil)
	h.waitStanza(isType(bobGW, alice, "probe"))
	h.clk.Advance(120*time.Millisecond - time.Nanosecond)
	h.quiet()
	if n := h.sip.getNotifies(); len(n) != 0 {
		t.Fatalf("NOTIFY before the subscription expired: %+v", n)
	}
	h.clk.Advance(time.Nanosecond)
	n := h.waitNotifies(1)[0]
	if n.state != "terminated;reason=timeout" || !has(n.body, "closed") {
		t.Fatalf("%+v", n)
	}
	h.waitStanza(isType(bobGW, alice, "unavailable"))
	h.gone(mapping.SIPWatcher, alice, bobAOR)
}

// RFC 6665 §4.2.2: 481 (and the other listed codes) or two timeouts
// remove the subscription; the contact gets unavailable from the watcher.
func TestSIPWatcherNotifyFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp mapping.Response
		err  error
		want int // NOTIFYs before removal
	}{
		{"481", mapping.Response{Status: 481}, nil, 1},
		{"timeout twice", mapping.Response{}, errors.New("timer F"), 2},
		{"408 twice", mapping.Response{Status: 408}, nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, nil, nil)
			activeSub(t, h)
			h.sip.mu.Lock()
			h.sip.onNotify = func(mapping.Dialog, string) (mapping.Response, error) { return tc.resp, tc.err }
			h.sip.mu.Unlock()
			h.svc.ReceivePresence(pres(alice+"/phone", bobGW, ""))
			h.waitStanza(isType(bobGW, alice, "unavailable"))
			h.gone(mapping.SIPWatcher, alice, bobAOR)
			if got := len(h.sip.getNotifies()) - 2; got != tc.want {
				t.Fatalf("%d NOTIFYs after active, want %d", got, tc.want)
			}
		})
	}
}

// RFC 6665 §4.2.1.1 (489, 423), RFC 7247 §8 (sips 403), not an XMPP
// address 404, RFC 3856 §6.6 (PIDF required).
func TestSIPWatcherRejections(t *testing.T) {
	h := start(t, nil, nil)
	for _, tc := range []struct {
		name string
		mod  func(*mapping.SubscribeRequest)
		want int
	}{
		{"489 other event", func(r *mapping.SubscribeRequest) { r.Event = "dialog" }, 489},
		{"423 below 60 s", func(r *mapping.SubscribeRequest) { r.Expires = 30 * time.Second }, 423},
		{"404 a SIP user", func(r *mapping.SubscribeRequest) { r.Presentity = mustParseURI("sip:carol@sip.example") }, 404},
		{"403 sips", func(r *mapping.SubscribeRequest) { r.Presentity = mustParseURI("sips:alice@xmpp.example") }, 403},
		{"406 no PIDF", func(r *mapping.SubscribeRequest) { r.Accept = []string{"application/xpidf+xml"} }, 406},
		{"200 capped", func(r *mapping.SubscribeRequest) { r.Expires = 7200 * time.Second }, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := subReq(time.Hour)
			tc.mod(&r)
			out := h.svc.Subscribe(context.Background(), r)
			if out.Status != tc.want {
				t.Fatalf("got %+v", out)
			}
			if tc.want == 423 && out.MinExpires != time.Minute {
				t.Fatalf("Min-Expires %v", out.MinExpires)
			}
			if tc.want == 200 && out.Expires != time.Hour {
				t.Fatalf("cap: %v", out.Expires)
			}
		})
	}
}
