package presence

import (
	"context"
	"fmt"
	"testing"
	"time"

	"stox.dev/stox/mapping"
)

// watcherReq is an initial SUBSCRIBE from sip:<user>@sip.example to alice.
func watcherReq(user string) mapping.SubscribeRequest {
	r := subReq(-1)
	aor := "sip:" + user + "@sip.example"
	r.Watcher = mustParseURI(aor)
	r.Dialog.RemoteURI = aor
	r.Dialog.CallID = "c-" + user
	return r
}

// subscribesFrom counts the subscribe stanzas sent from the watcher's JID.
func (h *harness) subscribesFrom(from string) int {
	n := 0
	for _, p := range h.x.sent() {
		if p.Type == "subscribe" && p.From.String() == from && p.To.String() == alice {
			n++
		}
	}
	return n
}

// The link drops and comes back: every SIP watcher still pending asks the
// XMPP contact again (RFC 6121 §3.1.2), including one whose request could
// not be sent while the link was down; an authorized one is not asked
// again. The approvals that follow make each of them active.
func TestPendingAskedAgainAfterReconnect(t *testing.T) {
	h := start(t, nil, func(c *Config) { c.AskAgain = time.Hour; c.AskRate = 1000 })
	h.svc.LinkChanged(true)
	users := []string{"w1", "w2", "w3"}
	for _, u := range users {
		if out := h.svc.Subscribe(context.Background(), watcherReq(u)); out.Status != 200 {
			t.Fatalf("SUBSCRIBE %s: %+v", u, out)
		}
	}
	if out := h.svc.Subscribe(context.Background(), watcherReq("ok")); out.Status != 200 {
		t.Fatal(out)
	}
	h.waitStanza(isType("ok@gw.example", alice, "subscribe"))
	h.svc.ReceivePresence(pres(alice, "ok@gw.example", "subscribed"))
	eventually(t, "ok active", func() bool {
		for _, n := range h.sip.getNotifies() {
			if n.d.CallID == "c-ok" && has(n.state, "active") {
				return true
			}
		}
		return false
	})
	for _, u := range users {
		if n := h.subscribesFrom(u + "@gw.example"); n != 1 {
			t.Fatalf("%s: %d subscribes before the drop, want 1", u, n)
		}
	}

	h.svc.LinkChanged(false)
	h.x.setErr(mapping.ErrLinkDown)
	if out := h.svc.Subscribe(context.Background(), watcherReq("w4")); out.Status != 200 {
		t.Fatal(out)
	}
	users = append(users, "w4")
	h.quiet()
	h.x.setErr(nil)
	h.svc.LinkChanged(true)

	for _, u := range users {
		want := 2
		if u == "w4" {
			want = 1 // its first request never left
		}
		eventually(t, u+" asked again", func() bool { return h.subscribesFrom(u+"@gw.example") == want })
	}
	time.Sleep(50 * time.Millisecond)
	if n := h.subscribesFrom("ok@gw.example"); n != 1 {
		t.Fatalf("the authorized watcher was asked again: %d subscribes", n)
	}
	for _, u := range users {
		h.svc.ReceivePresence(pres(alice, u+"@gw.example", "subscribed"))
	}
	for _, u := range users {
		eventually(t, u+" active NOTIFY", func() bool {
			for _, n := range h.sip.getNotifies() {
				if n.d.CallID == "c-"+u && has(n.state, "active;expires=") {
					return true
				}
			}
			return false
		})
	}
	h.flush()
	for _, u := range users {
		if s, ok := h.st.get(mapping.SIPWatcher, alice, "sip:"+u+"@sip.example"); !ok || s.State != mapping.SubActive {
			t.Fatalf("%s stored %+v %v", u, s, ok)
		}
	}
}

// A request whose answer was lost without any reconnect is asked again
// after AskAgain, then after twice that, and no more once approved.
func TestPendingAskedAgainPeriodically(t *testing.T) {
	const again = 100 * time.Millisecond
	h := start(t, nil, func(c *Config) { c.AskAgain = again; c.AskRate = 1000 })
	h.svc.LinkChanged(true)
	if out := h.svc.Subscribe(context.Background(), watcherReq("w1")); out.Status != 200 {
		t.Fatal(out)
	}
	const from = "w1@gw.example"
	// repeatAfter advances the fake clock to the end of wait: the request
	// (the n-th subscribe) goes out then, not a nanosecond before.
	repeatAfter := func(wait time.Duration, n int) {
		t.Helper()
		h.quiet()
		h.clk.Advance(wait - time.Nanosecond)
		h.quiet()
		if got := h.subscribesFrom(from); got != n-1 {
			t.Fatalf("%d subscribes before %v had passed, want %d", got, wait, n-1)
		}
		h.clk.Advance(time.Nanosecond)
		eventually(t, fmt.Sprintf("subscribe %d", n), func() bool { return h.subscribesFrom(from) == n })
	}
	repeatAfter(again, 2)
	repeatAfter(2*again, 3)
	h.svc.ReceivePresence(pres(alice, from, "subscribed"))
	eventually(t, "active", func() bool {
		n := h.sip.getNotifies()
		return len(n) > 0 && has(n[len(n)-1].state, "active")
	})
	h.quiet()
	h.clk.Advance(time.Hour)
	h.quiet()
	if n := h.subscribesFrom(from); n != 3 {
		t.Fatalf("asked again after the approval: %d subscribes", n)
	}
}

// A reconnect with many pending watchers sends their repeats at AskRate,
// not at once.
func TestAskAgainPaced(t *testing.T) {
	const rate, n = 50, 20
	h := start(t, nil, func(c *Config) { c.AskAgain = time.Hour; c.AskRate = rate })
	h.svc.LinkChanged(true)
	for i := range n {
		if out := h.svc.Subscribe(context.Background(), watcherReq(fmt.Sprintf("w%d", i))); out.Status != 200 {
			t.Fatal(out)
		}
	}
	count := func() int {
		c := 0
		for _, p := range h.x.sent() {
			if p.Type == "subscribe" {
				c++
			}
		}
		return c
	}
	eventually(t, "first requests", func() bool { return count() == n })
	h.svc.LinkChanged(false)
	t0 := time.Now()
	h.svc.LinkChanged(true)
	time.Sleep(100 * time.Millisecond)
	if c := count() - n; c > 8 {
		t.Fatalf("%d repeats in the first 100 ms at %d/s", c, rate)
	}
	eventually(t, "all repeats", func() bool { return count() == 2*n })
	if d := time.Since(t0); d < (n-1)*time.Second/rate {
		t.Fatalf("%d repeats in %s, faster than %d/s", n, d, rate)
	}
}

// A request the link's queue refused is retried through the paced queue,
// without waiting for AskAgain.
func TestAskQueueFullRetried(t *testing.T) {
	h := start(t, nil, func(c *Config) { c.AskAgain = time.Hour; c.AskRate = 100 })
	h.svc.LinkChanged(true)
	h.x.setErr(mapping.ErrQueueFull)
	if out := h.svc.Subscribe(context.Background(), watcherReq("w1")); out.Status != 200 {
		t.Fatal(out)
	}
	time.Sleep(50 * time.Millisecond)
	if n := h.subscribesFrom("w1@gw.example"); n != 0 {
		t.Fatalf("%d subscribes through a full queue", n)
	}
	h.x.setErr(nil)
	eventually(t, "the request once the queue has room", func() bool { return h.subscribesFrom("w1@gw.example") == 1 })
}
