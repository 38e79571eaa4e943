package sip

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"stox.dev/stox/mapping"
)

// BenchmarkNotifyFanout1000 measures the SIP half of presence fan-out
// (RFC 3856 §6.10 goal: 1,000 watchers notified within 1 s): 1,000 NOTIFYs
// in 1,000 dialogs through the real stack over UDP loopback, 32 at a time as
// the presence service's workers send them, each answered 200 by a raw
// UAS. presence.BenchmarkFanout1000 measures the state-machine half.
func BenchmarkNotifyFanout1000(b *testing.B) {
	env := startStack(b, nil, nil)
	uas := newRawUAS(b, "200 OK")
	done := make(chan struct{})
	b.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-uas.got:
			case <-done:
				return
			}
		}
	}()
	body := []byte(`<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:alice@xmpp.test"><tuple id="ID-phone"><status><basic>open</basic></status></tuple></presence>`)
	const watchers, workers = 1000, 32
	ds := make([]mapping.Dialog, watchers)
	for i := range ds {
		d := testDialog("")
		d.RouteSet, d.Destination = nil, "udp:"+uas.addr()
		d.CallID = fmt.Sprintf("fan-%d@test", i)
		ds[i] = d
	}
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		jobs := make(chan int, watchers)
		for i := range ds {
			ds[i].LocalCSeq++
			jobs <- i
		}
		close(jobs)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := range jobs {
					res, err := env.stack.Notify(b.Context(), ds[i], "active;expires=3600", pidfType, body)
					if err != nil || res.Status != 200 {
						b.Errorf("notify %d: %+v %v", i, res, err)
						return
					}
				}
			})
		}
		wg.Wait()
		total += time.Since(start)
	}
	b.ReportMetric(float64(watchers*b.N)/total.Seconds(), "notifies/s")
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-last")
}
