package sip

import "testing"

// A Config without MaxInFlight gets DefaultMaxInFlight, the default the
// command documents for sip.max_inflight.
func TestDefaultMaxInFlight(t *testing.T) {
	env := startStack(t, nil, nil)
	if got := env.stack.cfg.MaxInFlight; got != DefaultMaxInFlight {
		t.Errorf("MaxInFlight of a zero Config = %d, want DefaultMaxInFlight (%d)", got, DefaultMaxInFlight)
	}
}
