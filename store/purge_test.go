package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"stox.dev/stox/mapping"
	"stox.dev/stox/store/storetest"
)

// purgeDB opens a Postgres store on a database of the test's own.
func purgeDB(t *testing.T) *Postgres {
	t.Helper()
	p, err := OpenPostgres(t.Context(), storetest.NewDatabase(t), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func bindingRows(t *testing.T, p *Postgres) int {
	t.Helper()
	var n int
	if err := p.pool.QueryRow(context.Background(), `SELECT count(*) FROM bindings`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// putBindings stores n bindings of aor expiring at exp.
func putBindings(t *testing.T, p *Postgres, aor string, n int, exp time.Time) {
	t.Helper()
	var bs []mapping.Binding
	for i := range n {
		bs = append(bs, binding(aor, fmt.Sprintf("sip:%d@192.0.2.1", i), 1, exp))
	}
	must(t, p.PutBindings(t.Context(), bs))
}

// Bindings that expired while nobody deleted them (stox down, a dropped
// delete) leave the table: PurgeBindings purges once at start and then on
// its schedule, and the row count falls to the live bindings each time.
func TestPurgeBindingsSchedule(t *testing.T) {
	p := purgeDB(t)
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	putBindings(t, p, "sip:live@s.example", 2, future)
	putBindings(t, p, "sip:gone@s.example", 5, past)
	if n := bindingRows(t, p); n != 7 {
		t.Fatalf("rows before: %d, want 7", n)
	}

	ctx, cancel := context.WithCancel(t.Context())
	purged := make(chan int, 100)
	done := make(chan error, 1)
	go func() {
		done <- PurgeBindings(ctx, p, 50*time.Millisecond, zaptest.NewLogger(t), func(n int) { purged <- n })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("PurgeBindings: %v", err)
		}
	}()
	waitRows := func(what string, want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for bindingRows(t, p) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d binding rows after 5 s, want %d", what, bindingRows(t, p), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitRows("first purge", 2)
	// Expired rows written after the first purge go at a later tick.
	putBindings(t, p, "sip:late@s.example", 3, past)
	waitRows("scheduled purge", 2)
	total := 0
	for total < 8 {
		select {
		case n := <-purged:
			total += n
		case <-time.After(5 * time.Second):
			t.Fatalf("purge callback reported %d rows, want 8", total)
		}
	}
}

// One node purges at a time: while another session holds the purge lock,
// PurgeExpiredBindings skips with ErrPurgeBusy and deletes nothing.
func TestPurgeOneNodeAtATime(t *testing.T) {
	p := purgeDB(t)
	ctx := t.Context()
	putBindings(t, p, "sip:gone@s.example", 3, time.Now().Add(-time.Hour))

	tx, err := p.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(purgeLock)); err != nil {
		t.Fatal(err)
	}
	n, err := p.PurgeExpiredBindings(ctx, time.Now())
	if !errors.Is(err, ErrPurgeBusy) || n != 0 {
		t.Errorf("purge while another node holds the lock: %d, %v; want 0, ErrPurgeBusy", n, err)
	}
	if rows := bindingRows(t, p); rows != 3 {
		t.Errorf("rows after the skipped purge: %d, want 3", rows)
	}
	must(t, tx.Rollback(ctx))

	n, err = p.PurgeExpiredBindings(ctx, time.Now())
	if err != nil || n != 3 {
		t.Errorf("purge once the lock is free: %d, %v; want 3, nil", n, err)
	}
}
