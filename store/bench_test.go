package store

import (
	"fmt"
	"testing"
	"time"

	"stox.dev/stox/mapping"
)

// go test -run '^$' -bench . -benchtime 2s ./store

func BenchmarkAppendOutbox(b *testing.B) {
	for name, open := range stores() {
		for _, size := range []int{1, 64, 256} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, size), func(b *testing.B) {
				s := open(b)
				es := make([]mapping.OutboxEntry, size)
				for i := range es {
					es[i] = mapping.OutboxEntry{Message: fullMessage(i)}
				}
				b.ResetTimer()
				for b.Loop() {
					if _, err := s.AppendOutbox(b.Context(), es); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

func BenchmarkPutBindings(b *testing.B) {
	const population = 10000 // refreshes cycle over this many bindings
	for name, open := range stores() {
		for _, size := range []int{1, 64, 256} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, size), func(b *testing.B) {
				s := open(b)
				exp := time.Now().Add(time.Hour)
				next := 0
				bs := make([]mapping.Binding, size)
				b.ResetTimer()
				for b.Loop() {
					for i := range bs {
						bs[i] = binding(fmt.Sprintf("sip:u%d@s.example", next%population), "sip:u@192.0.2.1", uint32(next), exp)
						next++
					}
					if err := s.PutBindings(b.Context(), bs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "bindings/s")
			})
		}
	}
}

// BenchmarkPutSubscription upserts full subscriptions (3-entry route set,
// PIDF-sized body) cycling over a population of keys, as refreshes do.
func BenchmarkPutSubscription(b *testing.B) {
	const population = 10000
	body := make([]byte, 600) // a typical PIDF document
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	for name, open := range stores() {
		b.Run(name, func(b *testing.B) {
			s := open(b)
			next := 0
			for b.Loop() {
				sub := fullSubscription(mapping.SIPWatcher, next%population)
				sub.LastBody, sub.Attempts = body, next
				next++
				if err := s.PutSubscription(b.Context(), sub); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}
