package main

import "testing"

func TestRSSSettled(t *testing.T) {
	const mib = float64(1 << 20)
	flat := []int64{600000, 600000, 600000, 600000}
	for _, tc := range []struct {
		name              string
		samples           []int64
		unreleased, inuse float64
		want              bool
	}{
		{"too few samples", []int64{600000, 600000, 600000}, 0, 50 * mib, false},
		// Flat RSS, but the freed transactions are still held: the
		// scavenger has not started on them yet.
		{"flat, burst still held", flat, 530 * mib, 58 * mib, false},
		{"flat, returned", flat, 26 * mib, 58 * mib, true},
		{"dropping", []int64{600000, 400000, 200000, 113000}, 26 * mib, 58 * mib, false},
		{"dropped by less than the tolerance", []int64{114000, 114000, 113500, 113000}, 26 * mib, 58 * mib, true},
		{"rising", []int64{113000, 113500, 114000, 115000}, 26 * mib, 58 * mib, true},
		{"heap figures unknown", flat, -1, -1, true},
	} {
		if got := rssSettled(tc.samples, 3, 1024, tc.unreleased, tc.inuse); got != tc.want {
			t.Errorf("%s: rssSettled = %v, want %v", tc.name, got, tc.want)
		}
	}
}
