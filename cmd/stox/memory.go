package main

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"go.uber.org/zap"
)

// A burst of REGISTERs (or MESSAGEs) over UDP keeps every server
// transaction alive for Timer J, 32 s (RFC 3261 §17.2.2): 100,000
// REGISTERs in 20 s take the heap to ~530 MiB. Once they have died and a
// GC has run, the runtime holds that memory as free heap, and its
// background scavenger leaves it alone until the GC after that one — in
// an idle gateway the forced GC two minutes later — so RSS stays at the
// burst's peak meanwhile (~620 MB; 580 MB of it returnable).
// releaseAfterBursts returns it within releaseEvery of that first GC, at
// the price of one debug.FreeOSMemory per burst (56 ms wall, under 0.1 s
// CPU, for 515 MiB on the 2-core load machine).
const (
	releaseEvery = 15 * time.Second
	// releaseFloor: free heap below this is never worth a forced GC.
	releaseFloor = 64 << 20
)

// shouldRelease is the policy: the heap holds more free memory, not yet
// returned to the OS, than both releaseFloor and the heap the GC aims for
// (goal: the live heap plus GOGC's headroom). In a steady state free heap
// stays below the goal, because the heap never grows much beyond it; only
// a heap that has shrunk — a burst's transactions gone — leaves more.
func shouldRelease(free, goal uint64) bool {
	return free > releaseFloor && free > goal
}

// gcFloor is the least heap goal stox lets the GC aim for. An idle stox
// holds about 6 MB of live heap, so with GOGC=100 the GC would run after
// every 6 MB allocated: three collections, about 10 ms of CPU, in one
// presence change fanned out to 1,000 SIP watchers (docs/perf.md, "Idle
// footprint, registrations, presence fan-out"). While the live heap is
// under half of gcFloor, GOGC is raised so that the goal stays at gcFloor.
// An idle process allocates little, and the runtime forces a collection
// every two minutes anyway, so its RSS stays near its live heap; memory is
// only touched as a burst fills the heap up to the floor.
const (
	gcFloor      = 32 << 20
	gcFloorEvery = time.Second
)

// gcPercent is the GOGC for a live heap of live bytes: 100 from gcFloor/2
// up, else what makes the goal, live·(1+GOGC/100), gcFloor.
func gcPercent(live uint64) int {
	if live >= gcFloor/2 {
		return 100
	}
	live = max(live, 1<<20)
	return int((gcFloor - live) * 100 / live)
}

var releaseMetrics = []string{
	"/memory/classes/heap/free:bytes", // free, not yet returned to the OS
	"/gc/heap/goal:bytes",
	"/gc/heap/live:bytes",
}

// releaseAfterBursts checks the heap every interval until ctx ends and
// calls debug.FreeOSMemory when shouldRelease says so. runtime/metrics
// does not stop the world; FreeOSMemory forces a GC and then returns all
// free heap pages to the OS. Every gcFloorEvery it also sets GOGC to
// gcPercent of the live heap, unless the operator set GOGC; the previous
// value is restored when ctx ends.
func releaseAfterBursts(ctx context.Context, every time.Duration, log *zap.Logger) error {
	s := make([]metrics.Sample, len(releaseMetrics))
	for i, n := range releaseMetrics {
		s[i].Name = n
	}
	value := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	// GOGC follows the live heap within gcFloorEvery: a burst that grows
	// it finds GOGC back at 100 a second later.
	var floorTick <-chan time.Time
	if os.Getenv("GOGC") == "" {
		ft := time.NewTicker(gcFloorEvery)
		defer ft.Stop()
		floorTick = ft.C
		defer debug.SetGCPercent(debug.SetGCPercent(100))
	}
	pct := 100
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-floorTick:
			metrics.Read(s)
			if live := value(2); live > 0 && gcPercent(live) != pct { // 0: no GC yet
				pct = gcPercent(live)
				debug.SetGCPercent(pct)
			}
			continue
		case <-t.C:
		}
		metrics.Read(s)
		free, goal, live := value(0), value(1), value(2)
		if free == 0 || !shouldRelease(free, goal) {
			continue
		}
		begin := time.Now()
		debug.FreeOSMemory()
		metrics.Read(s)
		log.Info("returned free heap to the OS after a burst",
			zap.Uint64("free_mib", free>>20), zap.Uint64("live_mib", live>>20), zap.Uint64("goal_mib", goal>>20),
			zap.Uint64("free_after_mib", value(0)>>20), zap.Duration("took", time.Since(begin)))
	}
}
