package sip

import (
	"fmt"
	"hash/fnv"
	"runtime"
	"testing"
	"time"
	"unique"

	"go.uber.org/zap/zaptest"

	"stox.dev/stox/mapping"
)

// TestFnv64 pins fnv64 to hash/fnv's FNV-1a: Call-ID hashes are written to
// the store ("fnv64:…") and compared after a restart.
func TestFnv64(t *testing.T) {
	for _, s := range []string{"", "a", "a84b4c76e66710@pc33.atlanta.com", "sip:alice@example.com"} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got, want := fnv64(s), h.Sum64(); got != want {
			t.Errorf("fnv64(%q) = %x, want %x", s, got, want)
		}
	}
}

func TestBindingStrings(t *testing.T) {
	b := newBinding("sip:alice@192.0.2.1:5060;transport=udp", "udp:192.0.2.1:5060")
	b.ua = unique.Make("")
	if b.contact() != "sip:alice@192.0.2.1:5060;transport=udp" || b.source() != "udp:192.0.2.1:5060" {
		t.Errorf("contact %q source %q", b.contact(), b.source())
	}
	m := b.toMapping("sip:alice@example.com")
	if m.Contact != b.contact() || m.Source != b.source() {
		t.Errorf("toMapping: %+v", m)
	}
}

// TestCompact checks that packing keeps every AOR and binding as it was.
func TestCompact(t *testing.T) {
	r := &registrar{m: make(map[string][]binding)}
	ua := unique.Make("UA/1")
	want := map[string][]mapping.Binding{}
	for i := range 50 {
		aor := fmt.Sprintf("sip:u%d@example.com", i)
		for j := range i%3 + 1 {
			b := newBinding(fmt.Sprintf("sip:u%d@192.0.2.%d:5060", i, j), fmt.Sprintf("udp:198.51.100.%d:%d", j, 5000+i))
			b.ua, b.expires, b.callID, b.cseq = ua, int64(1000+i), uint64(i), uint32(j)
			r.m[aor] = append(r.m[aor], b)
			want[aor] = append(want[aor], b.toMapping(aor))
		}
	}
	r.churn = 7
	r.compact()
	if r.churn != 0 || len(r.m) != len(want) {
		t.Fatalf("churn %d, %d AORs, want 0 and %d", r.churn, len(r.m), len(want))
	}
	for aor, ws := range want {
		bs := r.m[aor]
		if len(bs) != len(ws) || cap(bs) != len(bs) {
			t.Fatalf("%s: len %d cap %d, want %d", aor, len(bs), cap(bs), len(ws))
		}
		for i := range bs {
			if got := bs[i].toMapping(aor); got != ws[i] {
				t.Errorf("%s[%d] = %+v, want %+v", aor, i, got, ws[i])
			}
		}
	}
}

// TestSweepCompacts checks that the sweeper packs the bindings once a burst
// of changes is over, and not while it goes on.
func TestSweepCompacts(t *testing.T) {
	s, err := New(Config{Listen: []string{"udp:127.0.0.1:0"}, Domain: testDomain,
		NonceSecret: []byte("0123456789abcdef"), Logger: zaptest.NewLogger(t)}, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	r, now := s.reg, time.Now()
	for i := range 200 {
		b := newBinding(fmt.Sprintf("sip:u%d@192.0.2.1", i), "udp:192.0.2.1:5060")
		b.ua, b.expires = unique.Make(""), now.Unix()+int64(i%2)*3600 // every other one expired
		r.m[fmt.Sprintf("sip:u%d@%s", i, testDomain)] = []binding{b}
	}
	r.count, r.churn = 200, 200
	r.sweep(now) // removes 100: churn 300, all of it new
	if r.churn != 300 || len(r.m) != 100 {
		t.Fatalf("after the first sweep: churn %d, %d AORs", r.churn, len(r.m))
	}
	r.sweep(now) // nothing new: compact
	if r.churn != 0 || len(r.m) != 100 {
		t.Fatalf("after the second sweep: churn %d, %d AORs", r.churn, len(r.m))
	}
	if bs := s.Bindings("sip:u1@" + testDomain); len(bs) != 1 || bs[0].Contact != "sip:u1@192.0.2.1" || bs[0].Source != "udp:192.0.2.1:5060" {
		t.Fatalf("u1 after compact: %+v", bs)
	}
}

// TestRegistrarIdleFootprint: a new registrar's write queue costs its
// slots, not 65,536 binding changes held by value (7.5 MiB of an idle
// stox's heap before the queue held pointers; docs/perf.md).
func TestRegistrarIdleFootprint(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := newRegistrar(&Stack{})
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(r)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("newRegistrar allocated %d bytes, want ≤ 1 MiB", got)
	}
}
