// Package clock is the time source of stox's capabilities: the current
// time and one-shot timers, behind an interface so that tests can drive
// time by hand (Fake) instead of sleeping on the wall clock.
//
// It holds only what the capabilities use: Now, and AfterFunc for the
// deadlines they keep (presence's timer heap, im's acknowledgement and
// grace timers). Network transaction bounds (context.WithTimeout around a
// SIP request) stay on the real clock: the stack's own transaction timers
// run on it.
package clock

import "time"

// Clock tells the time and runs a function once a duration has passed.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f once d has elapsed, as time.AfterFunc does. f must
	// not assume it runs on any particular goroutine.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not started; it reports whether it
	// did (false: the call already ran, is running or was stopped).
	Stop() bool
}

// Real returns the wall clock (package time).
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
