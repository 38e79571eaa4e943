package sip

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// bindWatch reports changes of live binding counts to the presence
// service's RegistrationObserver without blocking the registrar: the
// registrar marks an AOR dirty (a set, so changes coalesce per AOR and
// nothing is dropped) and pokes wake, a channel of one; run, a goroutine
// of Run, reads the current count and calls the observer outside every
// registrar lock.
type bindWatch struct {
	mu    sync.Mutex
	dirty map[string]struct{}
	wake  chan struct{}
	// last is the count last reported (or loaded) of every AOR with live
	// bindings, by the AOR's 64-bit FNV-1a hash: 16 bytes a map slot where
	// a string key cost 24 (and could pin a copy of the AOR); a collision
	// among 100,000 AORs has a probability of about 3·10⁻¹⁰. Only run and
	// load touch it.
	last map[uint64]int32
}

func newBindWatch() bindWatch {
	return bindWatch{dirty: map[string]struct{}{}, wake: make(chan struct{}, 1), last: map[uint64]int32{}}
}

// seed records the counts loaded at start, so that the first change of a
// loaded AOR (even to 0) is reported; loading itself is not a change.
func (w *bindWatch) seed(counts map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for aor, n := range counts {
		w.last[fnv64(aor)] = int32(n)
	}
}

// mark notes that aor's count may have changed; it never blocks.
func (w *bindWatch) mark(aor string) {
	w.mu.Lock()
	w.dirty[aor] = struct{}{}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run delivers the marked changes until ctx is done.
func (w *bindWatch) run(ctx context.Context, s *Stack) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		w.mu.Lock()
		dirty := w.dirty
		w.dirty = make(map[string]struct{}) // not sized like a burst: it would stay that big
		w.mu.Unlock()
		obs := s.regObserver
		for aor := range dirty {
			n := len(s.Bindings(aor))
			h := fnv64(aor)
			w.mu.Lock()
			prev, seen := w.last[h]
			if seen && int(prev) == n || !seen && n == 0 {
				w.mu.Unlock()
				continue
			}
			if n == 0 {
				delete(w.last, h)
			} else {
				w.last[h] = int32(n)
			}
			w.mu.Unlock()
			if obs != nil && ctx.Err() == nil {
				w.call(ctx, s, obs, aor, n)
			}
		}
	}
}

func (w *bindWatch) call(ctx context.Context, s *Stack, obs RegistrationObserver, aor string, n int) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("sip: BindingsChanged panic", zap.Any("panic", p), zap.String("aor", aor), zap.Stack("stack"))
		}
	}()
	start := time.Now()
	obs.BindingsChanged(ctx, aor, n)
	if d := time.Since(start); d > time.Second {
		s.log.Warn("sip: BindingsChanged is slow", zap.String("aor", aor), zap.Duration("took", d))
	}
}
