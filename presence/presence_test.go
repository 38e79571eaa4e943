package presence

import (
	"runtime"
	"testing"
)

// TestNewIdleFootprint: a new service's event queue costs its slots, not
// 65,536 events held by value (15 MB of an idle stox's heap before the
// queue held pointers; docs/perf.md).
func TestNewIdleFootprint(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	svc := New(Config{Domains: doms}, &fakeXMPP{}, &fakeSIP{}, newFakeStore(), &fakeLoc{})
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(svc)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("New allocated %d bytes, want ≤ 1 MiB", got)
	}
}
