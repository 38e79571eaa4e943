package clock

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Fake is a Clock for tests: its time moves only when Advance is called,
// and the timers that fall due then run on Advance's goroutine, in order
// of their deadlines (ties in the order they were armed), before Advance
// returns. A timer armed with a duration of zero or less is due at once:
// it runs on the next Advance, Advance(0) included, never inside AfterFunc
// (its caller may hold a lock the function takes).
type Fake struct {
	adv sync.Mutex // one Advance at a time, so callbacks run in order

	mu      sync.Mutex
	now     time.Time
	seq     uint64
	armed   []*fakeTimer  // unordered; Advance picks the earliest
	changed chan struct{} // closed and replaced whenever armed grows
}

// maxSameInstant bounds the timers one Advance runs at a single instant.
const maxSameInstant = 100000

type fakeTimer struct {
	c   *Fake
	at  time.Time
	seq uint64
	f   func()
}

// NewFake returns a fake clock reading start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms a timer that runs f once Advance has moved the time d past
// now.
func (c *Fake) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, at: c.now.Add(max(d, 0)), seq: c.seq, f: f}
	c.armed = append(c.armed, t)
	close(c.changed)
	c.changed = make(chan struct{})
	return t
}

// Stop disarms the timer; it reports whether the timer was still armed.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.c.remove(t)
}

func (c *Fake) remove(t *fakeTimer) bool {
	for i, a := range c.armed {
		if a == t {
			last := len(c.armed) - 1
			c.armed[i] = c.armed[last]
			c.armed[last] = nil
			c.armed = c.armed[:last]
			return true
		}
	}
	return false
}

// Advance moves the time forward by d, running every timer that falls due
// on the way, the time reading each one's deadline while it runs. Timers
// armed by those functions run too when they fall due within d. Code that
// keeps arming timers already due would never let Advance return: after
// maxSameInstant of them at one instant it panics instead, so the test
// fails rather than hangs.
func (c *Fake) Advance(d time.Duration) {
	c.adv.Lock()
	defer c.adv.Unlock()
	c.mu.Lock()
	end := c.now.Add(max(d, 0))
	same := 0
	for {
		var next *fakeTimer
		for _, t := range c.armed {
			if !t.at.After(end) && (next == nil || t.at.Before(next.at) || t.at.Equal(next.at) && t.seq < next.seq) {
				next = t
			}
		}
		if next == nil {
			break
		}
		c.remove(next)
		if next.at.After(c.now) {
			c.now, same = next.at, 0
		}
		if same++; same > maxSameInstant {
			c.mu.Unlock()
			panic(fmt.Sprintf("clock: %d timers ran at %v without time passing: code re-arms a deadline already due", same-1, c.now))
		}
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// Armed returns the number of timers armed and not yet run or stopped.
func (c *Fake) Armed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.armed)
}

// WaitArmed blocks until a timer is armed to fire d from now, so a test
// advances the time only once the code under test has armed the deadline
// it means to pass. It returns ctx's error if ctx ends first.
func (c *Fake) WaitArmed(ctx context.Context, d time.Duration) error {
	for {
		c.mu.Lock()
		ok, changed := false, c.changed
		for _, t := range c.armed {
			ok = ok || t.at.Equal(c.now.Add(d))
		}
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
