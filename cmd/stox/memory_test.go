package main

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestShouldRelease(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name       string
		free, goal uint64
		want       bool
	}{
		// After 100,000 REGISTERs: the transactions are gone, 533 MiB of
		// free heap against a 115 MiB goal.
		{"after a burst", 533 * mib, 115 * mib, true},
		// During the burst the heap is in use, and the goal is high.
		{"during a burst", 4 * mib, 1100 * mib, false},
		// Steady state: free heap is what the GC will reuse before its goal.
		{"steady state", 50 * mib, 120 * mib, false},
		{"free just under the goal", 200 * mib, 201 * mib, false},
		{"free equal to the goal", 200 * mib, 200 * mib, false},
		// A small process: never a forced GC for less than the floor.
		{"under the floor", 60 * mib, 8 * mib, false},
		{"at the floor", releaseFloor, 8 * mib, false},
		{"just over the floor", releaseFloor + 1, 8 * mib, true},
	} {
		if got := shouldRelease(tc.free, tc.goal); got != tc.want {
			t.Errorf("%s: shouldRelease(free %d MiB, goal %d MiB) = %v, want %v", tc.name, tc.free/mib, tc.goal/mib, got, tc.want)
		}
	}
}

// releaseAfterBursts is serve's goroutine: it ends, without an error, with
// serve's context, at whatever point of its loop the context ends (no
// sleep: what it does on a tick is shouldRelease's, tested above).
func TestReleaseAfterBurstsStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- releaseAfterBursts(ctx, time.Microsecond, zap.NewNop()) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("releaseAfterBursts did not stop with its context")
	}
}

// The GC aims at gcFloor while the live heap is small, and GOGC is the
// default once it is not (gcPercent).
func TestGCPercent(t *testing.T) {
	const mib = 1 << 20
	for _, live := range []uint64{0, 1 * mib, 6 * mib, 10 * mib, 15 * mib} {
		p := gcPercent(live)
		l := max(live, mib)
		if goal := l + l*uint64(p)/100; goal > gcFloor || goal < gcFloor-gcFloor/100 {
			t.Errorf("live %d MiB: GOGC %d aims at %d MiB, want %d MiB", live/mib, p, goal/mib, gcFloor/mib)
		}
	}
	for _, live := range []uint64{gcFloor / 2, gcFloor, 500 * mib} {
		if p := gcPercent(live); p != 100 {
			t.Errorf("live %d MiB: GOGC %d, want 100", live/mib, p)
		}
	}
}
