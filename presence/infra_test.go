package presence

import (
	"context"
	"slices"
	"testing"
	"time"

	"stox.dev/stox/clock"
)

// The timer heap runs each deadline once, in deadline order (ties in the
// order they were set), at the clock's time, and nothing once Run is over.
func TestTimersOrderAndStop(t *testing.T) {
	clk := clock.NewFake(epoch)
	tm := newTimers(clk)
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { defer close(stopped); tm.run(ctx) }()
	var got []string
	at := func(name string, d time.Duration) {
		tm.at(epoch.Add(d), func() { got = append(got, name+"@"+clk.Now().Sub(epoch).String()) })
	}
	at("c", 3*time.Second)
	at("a", time.Second)
	at("b1", 2*time.Second)
	at("b2", 2*time.Second)
	tm.at(epoch.Add(time.Second), func() { at("nested", 500*time.Millisecond) }) // already due when set
	at("late", time.Hour)
	clk.Advance(3 * time.Second)
	if want := []string{"a@1s", "nested@1s", "b1@2s", "b2@2s", "c@3s"}; !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	cancel()
	<-stopped
	clk.Advance(2 * time.Hour)
	if len(got) != 5 {
		t.Fatalf("a deadline ran after Run ended: %v", got)
	}
}
