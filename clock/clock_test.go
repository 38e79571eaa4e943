package clock

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestFakeRunsDueTimersInOrder(t *testing.T) {
	c := NewFake(t0)
	var got []string
	at := func(name string) func() {
		return func() { got = append(got, fmt.Sprintf("%s@%v", name, c.Now().Sub(t0))) }
	}
	c.AfterFunc(3*time.Second, at("c"))
	c.AfterFunc(time.Second, at("a"))
	c.AfterFunc(2*time.Second, at("b1"))
	c.AfterFunc(2*time.Second, at("b2")) // same deadline: armed order
	late := c.AfterFunc(10*time.Second, at("late"))
	stopped := c.AfterFunc(time.Second, at("stopped"))
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop: want true once, then false")
	}
	c.Advance(2500 * time.Millisecond)
	if want := []string{"a@1s", "b1@2s", "b2@2s"}; !slices.Equal(got, want) {
		t.Fatalf("after 2.5s ran %v, want %v", got, want)
	}
	if c.Now() != t0.Add(2500*time.Millisecond) {
		t.Fatalf("Now = %v after Advance(2.5s)", c.Now())
	}
	c.Advance(time.Second)
	if want := []string{"a@1s", "b1@2s", "b2@2s", "c@3s"}; !slices.Equal(got, want) {
		t.Fatalf("after 3.5s ran %v, want %v", got, want)
	}
	if c.Armed() != 1 || !late.Stop() || c.Armed() != 0 {
		t.Fatal("the 10 s timer should be the one left armed")
	}
}

func TestFakeTimersArmedByATimer(t *testing.T) {
	c := NewFake(t0)
	var got []time.Duration
	var tick func()
	tick = func() {
		got = append(got, c.Now().Sub(t0))
		c.AfterFunc(time.Second, tick) // a periodic deadline re-armed from its callback
	}
	c.AfterFunc(time.Second, tick)
	c.Advance(3 * time.Second)
	if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("ran at %v, want %v", got, want)
	}
}

func TestFakeDueTimerWaitsForAdvance(t *testing.T) {
	c := NewFake(t0)
	ran := false
	c.AfterFunc(-time.Second, func() { ran = true })
	if ran {
		t.Fatal("AfterFunc ran f itself")
	}
	c.Advance(0)
	if !ran {
		t.Fatal("a due timer did not run on Advance(0)")
	}
	if c.Now() != t0 {
		t.Fatalf("a past deadline moved the time back or forth: %v", c.Now())
	}
}

func TestFakeLivelockPanics(t *testing.T) {
	c := NewFake(t0)
	var again func()
	again = func() { c.AfterFunc(0, again) } // a deadline always due
	c.AfterFunc(time.Second, again)
	defer func() {
		if recover() == nil {
			t.Fatal("Advance returned although timers kept falling due")
		}
	}()
	c.Advance(time.Second)
}

func TestFakeWaitArmed(t *testing.T) {
	c := NewFake(t0)
	c.AfterFunc(time.Minute, func() {})
	go func() { c.AfterFunc(time.Second, func() {}) }()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := c.WaitArmed(ctx, time.Second); err != nil {
		t.Fatalf("WaitArmed(1s): %v", err)
	}
	short, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if err := c.WaitArmed(short, 2*time.Second); err == nil {
		t.Fatal("WaitArmed(2s) returned nil with no timer armed for 2 s")
	}
}

func TestRealClock(t *testing.T) {
	done := make(chan struct{})
	Real().AfterFunc(time.Millisecond, func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("real AfterFunc did not run")
	}
	if d := time.Since(Real().Now()); d < 0 || d > time.Minute {
		t.Fatalf("real Now is %v off", d)
	}
}

// A deadline tested without waiting for it: the fake's time moves only
// when the test says so.
func ExampleFake() {
	c := NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c.AfterFunc(8*time.Second, func() { fmt.Println("timed out at", c.Now().Format(time.TimeOnly)) })
	c.Advance(7 * time.Second)
	fmt.Println("7 s later, still waiting")
	c.Advance(time.Second)
	// Output:
	// 7 s later, still waiting
	// timed out at 00:00:08
}
