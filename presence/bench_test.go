package presence

import (
	"context"
	"fmt"
	"testing"
	"time"

	"stox.dev/stox/mapping"
)

// BenchmarkFanout1000 (RFC 3856 §6.10 fan-out): one XMPP user watched by
// 1,000 active SIP watcher subscriptions; one presence change reaches stox
// as the XMPP server sends it, one stanza per subscriber JID at D, and
// becomes 1,000 NOTIFYs. The clock runs from the first stanza to the
// 1,000th NOTIFY seen by the fake SIPLink. Coalesce is 1 µs so that every
// iteration is a "first change" (with the default 5 s the first change
// also goes out at once; later ones wait for the window by design).
func BenchmarkFanout1000(b *testing.B) {
	const n = 1000
	h := start(b, nil, func(c *Config) { c.Coalesce = time.Microsecond })
	ctx := context.Background()
	watchers := make([]mapping.JID, n)
	for i := range n {
		aor := fmt.Sprintf("sip:w%d@sip.example", i)
		r := subReq(time.Hour)
		r.Dialog.CallID = fmt.Sprintf("bench-%d", i)
		r.Watcher = mustParseURI(aor)
		if out := h.svc.Subscribe(ctx, r); out.Status != 200 {
			b.Fatalf("%+v", out)
		}
		watchers[i] = mustJID(fmt.Sprintf("w%d@gw.example", i))
		h.svc.ReceivePresence(mapping.Presence{From: mustJID(alice), To: watchers[i], Type: "subscribed"})
	}
	eventually(b, "setup NOTIFYs", func() bool {
		h.svc.mu.Lock()
		defer h.svc.mu.Unlock()
		for _, sb := range h.svc.subs {
			if sb.s.State != mapping.SubActive || sb.due || sb.inflight || sb.queued {
				return false
			}
		}
		return len(h.svc.subs) == n
	})
	h.quiet()
	h.sip.count = make(chan struct{}, 4*n)
	shows := []string{"away", "dnd", "xa", "chat"}
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.clk.Advance(time.Microsecond) // past the window: every change is a first one
		t0 := time.Now()
		for _, w := range watchers {
			h.svc.ReceivePresence(mapping.Presence{From: mustJID(alice + "/phone"), To: w, Show: shows[i%len(shows)]})
		}
		for range n {
			select {
			case <-h.sip.count:
			case <-time.After(5 * time.Second):
				b.Fatal("NOTIFYs missing")
			}
		}
		total += time.Since(t0)
	}
	b.StopTimer()
	per := total / time.Duration(b.N)
	b.ReportMetric(float64(n)/per.Seconds(), "notifies/s")
	b.ReportMetric(float64(per.Milliseconds()), "ms-to-last")
}
