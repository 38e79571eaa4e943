package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"stox.dev/stox/mapping"
	"stox.dev/stox/store"
	"stox.dev/stox/store/storetest"
)

// With Postgres, serve's upkeep purges the bindings that expired without
// being deleted as soon as it starts, and counts them in
// stox_bindings_purged_total.
func TestUpkeepPurgesPostgres(t *testing.T) {
	pg := testPostgres(t)
	ctx := t.Context()
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	var bs []mapping.Binding
	for i, exp := range []time.Time{past, past, past, future} {
		bs = append(bs, mapping.Binding{AOR: "sip:u@sip.example", Contact: fmt.Sprintf("sip:u@192.0.2.%d", i), Source: "udp:192.0.2.1:5060", CallID: "c", CSeq: 1, Expires: exp})
	}
	must(t, pg.PutBindings(ctx, bs))

	reg := prometheus.NewRegistry()
	uctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- upkeep(uctx, defaults(), pg, reg, zaptest.NewLogger(t)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("upkeep: %v", err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		all, err := pg.LiveBindings(ctx, past.Add(-time.Hour)) // every row
		must(t, err)
		if len(all) == 1 && all[0].Expires.After(time.Now()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d binding rows 5 s after upkeep started, want the 1 live one", len(all))
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline = time.Now().Add(5 * time.Second)
	for purgedTotal(t, reg) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stox_bindings_purged_total = %v, want 3", purgedTotal(t, reg))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func purgedTotal(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "stox_bindings_purged_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

// testPostgres opens a store on a throwaway database (storetest.NewDatabase).
func testPostgres(t *testing.T) *store.Postgres {
	t.Helper()
	pg, err := store.OpenPostgres(t.Context(), storetest.NewDatabase(t), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	return pg
}
