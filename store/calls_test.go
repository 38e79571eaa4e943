package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"stox.dev/stox/mapping"
)

// callT0 is a start time with nanoseconds in a non-UTC zone: stores keep it
// as UTC microseconds.
var callT0 = time.Date(2026, 12, 5, 8, 0, 0, 123456789, time.FixedZone("CET", 3600))

// fullDialog has every DialogRecord field set, a route set of two.
func fullDialog() *mapping.DialogRecord {
	return &mapping.DialogRecord{
		CallID:       "a84b4c76e66710@pc33.example",
		LocalTag:     "1928301774",
		RemoteTag:    "a6c85cf",
		LocalURI:     "sip:alice@stox.example",
		RemoteURI:    "sip:bob@sip.example;user=phone",
		RemoteTarget: "sip:bob@192.0.2.4:5070;transport=tcp",
		RouteSet:     []string{"<sip:p1.example;lr>", "<sip:p2.example;lr;ftag=ü>"},
		LocalCSeq:    math.MaxUint32,
		Destination:  "tcp:192.0.2.4:5070",
	}
}

// callAt is a started call id, not yet answered.
func callAt(id string, started time.Time) mapping.CallRecord {
	return mapping.CallRecord{
		ID:        id,
		Direction: mapping.XMPPToSIP,
		XMPPPeer:  mapping.JID{Local: "juliet", Domain: "xmpp.example", Resource: "balcony"},
		Contact:   mapping.JID{Local: "+15551234", Domain: "sip.stox.example", Resource: "phone"},
		SID:       "sid-" + id,
		SIPPeer:   "sip:+15551234@sip.example",
		Codec:     "PCMU/8000",
		Started:   started,
	}
}

// storedCall is r as a store gives it back.
func storedCall(r mapping.CallRecord) mapping.CallRecord {
	r = copyCall(r)
	r.Started, r.Answered, r.Ended = normTime(r.Started), normTime(r.Answered), normTime(r.Ended)
	return r
}

func openCalls(t *testing.T, s Store) []mapping.CallRecord {
	t.Helper()
	rs, err := s.OpenCalls(t.Context())
	must(t, err)
	return rs
}

// A record is inserted when the call starts and updated when it is
// answered and when it ends; it is open until it ends.
func testCallPutUpdate(t *testing.T, s Store) {
	ctx := t.Context()
	r := callAt("c1", callT0)
	must(t, s.PutCall(ctx, r))
	equal(t, "open after start", openCalls(t, s), []mapping.CallRecord{storedCall(r)})

	r.Answered = callT0.Add(3 * time.Second)
	r.Dialog = fullDialog()
	must(t, s.PutCall(ctx, r))
	equal(t, "open after answer", openCalls(t, s), []mapping.CallRecord{storedCall(r)})

	// Every column is replaced, also back to empty.
	r.Codec, r.SID, r.Dialog = "opus/48000/2", "", nil
	must(t, s.PutCall(ctx, r))
	equal(t, "open after a replace", openCalls(t, s), []mapping.CallRecord{storedCall(r)})

	r.Ended, r.Outcome = callT0.Add(time.Minute), "answered"
	must(t, s.PutCall(ctx, r))
	equal(t, "open after end", len(openCalls(t, s)), 0)

	stats, err := s.CallStats(ctx, callT0.Add(-time.Hour))
	must(t, err)
	equal(t, "stats", stats, map[string]int{"answered": 1})
}

// OpenCalls lists the calls not ended, oldest first, then by ID.
func testCallOpenOrder(t *testing.T, s Store) {
	ctx := t.Context()
	put := func(r mapping.CallRecord) {
		t.Helper()
		must(t, s.PutCall(ctx, r))
	}
	late, early, tieB, tieA := callAt("late", callT0.Add(time.Hour)), callAt("early", callT0.Add(-time.Hour)), callAt("tie-b", callT0), callAt("tie-a", callT0)
	ended := callAt("ended", callT0.Add(-2*time.Hour))
	ended.Ended, ended.Outcome = callT0, "busy"
	for _, r := range []mapping.CallRecord{late, ended, tieB, early, tieA} {
		put(r)
	}
	var ids []string
	for _, r := range openCalls(t, s) {
		ids = append(ids, r.ID)
	}
	equal(t, "open calls", ids, []string{"early", "tie-a", "tie-b", "late"})
	// A microsecond apart is apart; below that, the stores cannot tell.
	put(callAt("a-usec-later", callT0.Add(-time.Hour+time.Microsecond)))
	ids = ids[:0]
	for _, r := range openCalls(t, s) {
		ids = append(ids, r.ID)
	}
	equal(t, "open calls", ids, []string{"early", "a-usec-later", "tie-a", "tie-b", "late"})
}

// CallStats counts calls started at or after since by outcome; calls still
// up count under "".
func testCallStats(t *testing.T, s Store) {
	ctx := t.Context()
	since := callT0
	empty, err := s.CallStats(ctx, since)
	must(t, err)
	equal(t, "stats of no calls", empty, map[string]int{})
	i := 0
	put := func(started time.Time, outcome string) {
		t.Helper()
		i++
		r := callAt(fmt.Sprintf("c%d", i), started)
		if outcome != "" {
			r.Ended, r.Outcome = started.Add(time.Minute), outcome
		}
		must(t, s.PutCall(ctx, r))
	}
	put(since, "answered") // at since: counted
	put(since.Add(time.Second), "answered")
	put(since.Add(time.Second), "busy")
	put(since.Add(2*time.Second), "no-answer")
	put(since.Add(3*time.Second), "")                // still up
	put(since.Add(-time.Microsecond), "answered")    // before since
	put(since.Add(-time.Hour), "failed")             // before since
	put(since.Add(999*time.Nanosecond), "cancelled") // within since's microsecond
	stats, err := s.CallStats(ctx, since)
	must(t, err)
	equal(t, "stats", stats, map[string]int{"answered": 2, "busy": 1, "no-answer": 1, "": 1, "cancelled": 1})
	stats, err = s.CallStats(ctx, since.Add(-time.Hour))
	must(t, err)
	equal(t, "stats since an hour before", stats, map[string]int{"answered": 3, "busy": 1, "no-answer": 1, "": 1, "cancelled": 1, "failed": 1})
}

// PurgeCalls deletes the calls that ended before a time, never open ones.
func testCallPurge(t *testing.T, s Store) {
	ctx := t.Context()
	before := callT0
	endedAt := func(id string, ended time.Time) mapping.CallRecord {
		r := callAt(id, ended.Add(-time.Hour))
		r.Ended, r.Outcome = ended, "answered"
		return r
	}
	keep := []mapping.CallRecord{
		endedAt("at-before", before),
		endedAt("after", before.Add(time.Microsecond)),
		callAt("open-old", before.Add(-48*time.Hour)),
	}
	gone := []mapping.CallRecord{
		endedAt("just-before", before.Add(-time.Microsecond)),
		endedAt("long-before", before.Add(-30*24*time.Hour)),
	}
	for _, r := range append(append([]mapping.CallRecord(nil), keep...), gone...) {
		must(t, s.PutCall(ctx, r))
	}
	n, err := s.PurgeCalls(ctx, before)
	must(t, err)
	equal(t, "purged", n, len(gone))
	n, err = s.PurgeCalls(ctx, before)
	must(t, err)
	equal(t, "purged again", n, 0)
	equal(t, "open calls", openCalls(t, s), []mapping.CallRecord{storedCall(keep[2])})
	stats, err := s.CallStats(ctx, time.Time{})
	must(t, err)
	equal(t, "kept calls", stats, map[string]int{"answered": 2, "": 1})
	// A purged ID may be put again.
	must(t, s.PutCall(ctx, gone[0]))
}

// Every field, the dialog's included, reads back as put: times as UTC
// microseconds, a nil dialog as nil, an empty route set as nil.
func testCallRoundTrip(t *testing.T, s Store) {
	ctx := t.Context()
	full := callAt("full", callT0)
	full.Direction = mapping.SIPToXMPP
	full.XMPPPeer = mapping.JID{Local: `o\27malley`, Domain: "xmpp.example", Resource: "res/with@odd chars ü"}
	full.Contact = mapping.JID{Local: "bob", Domain: "sip.stox.example"}
	full.Dialog = fullDialog()
	full.Answered = callT0.Add(1500 * time.Millisecond)
	full.Codec = "opus/48000/2"

	noRoutes := callAt("no-routes", callT0.Add(time.Second))
	noRoutes.Dialog = fullDialog()
	noRoutes.Dialog.RouteSet = []string{}
	noRoutes.XMPPPeer = mapping.JID{}                            // not known yet
	noRoutes.Contact = mapping.JID{Domain: "sip.stox.example"}   // domain only
	noRoutes.Dialog.LocalCSeq, noRoutes.Dialog.RemoteTag = 0, "" // zero values

	bare := mapping.CallRecord{ID: "bare", Started: callT0.Add(2 * time.Second)}

	for _, r := range []mapping.CallRecord{full, noRoutes, bare} {
		must(t, s.PutCall(ctx, r))
	}
	wantNoRoutes := storedCall(noRoutes)
	wantNoRoutes.Dialog.RouteSet = nil
	got := openCalls(t, s)
	equal(t, "open calls", got, []mapping.CallRecord{storedCall(full), wantNoRoutes, storedCall(bare)})
	equal(t, "started", got[0].Started, time.Date(2026, 12, 5, 7, 0, 0, 123456000, time.UTC))
	equal(t, "answered", got[0].Answered, time.Date(2026, 12, 5, 7, 0, 1, 623456000, time.UTC))
	equal(t, "route set", got[0].Dialog.RouteSet, fullDialog().RouteSet)
	if !got[1].Answered.IsZero() || !got[1].Ended.IsZero() || got[2].Dialog != nil {
		t.Fatalf("zero values did not read back zero: %+v", got)
	}
}

// Records go in and come out as copies.
func testCallNoAliasing(t *testing.T, s Store) {
	ctx := t.Context()
	r := callAt("c", callT0)
	r.Dialog = fullDialog()
	must(t, s.PutCall(ctx, r))
	r.Dialog.RouteSet[0] = "<sip:changed.example>"
	r.Dialog.CallID = "changed"
	got := openCalls(t, s)
	got[0].Dialog.RouteSet[1] = "<sip:changed-too.example>"
	want := storedCall(callAt("c", callT0))
	want.Dialog = fullDialog()
	equal(t, "stored call", openCalls(t, s), []mapping.CallRecord{want})
}

func testCallRejects(t *testing.T, s Store) {
	ctx := t.Context()
	bad := map[string]func(r *mapping.CallRecord){
		"empty ID":           func(r *mapping.CallRecord) { r.ID = "" },
		"zero Started":       func(r *mapping.CallRecord) { r.Started = time.Time{} },
		"NUL in SIPPeer":     func(r *mapping.CallRecord) { r.SIPPeer = "sip:a\x00@b" },
		"bad UTF-8 outcome":  func(r *mapping.CallRecord) { r.Outcome = "\xff" },
		"NUL in route":       func(r *mapping.CallRecord) { r.Dialog = fullDialog(); r.Dialog.RouteSet[1] = "\x00" },
		"bad UTF-8 call-id":  func(r *mapping.CallRecord) { r.Dialog = fullDialog(); r.Dialog.CallID = "\xc3" },
		"@ in local":         func(r *mapping.CallRecord) { r.XMPPPeer.Local = "a@b" },
		"/ in domain":        func(r *mapping.CallRecord) { r.Contact.Domain = "a/b" },
		"NUL in resource":    func(r *mapping.CallRecord) { r.XMPPPeer.Resource = "\x00" },
		"bad UTF-8 resource": func(r *mapping.CallRecord) { r.Contact.Resource = "\xfe" },
	}
	for name, spoil := range bad {
		r := callAt("c", callT0)
		spoil(&r)
		if err := s.PutCall(ctx, r); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: PutCall = %v, want ErrInvalid", name, err)
		}
	}
	equal(t, "open calls", len(openCalls(t, s)), 0)
}

// Concurrent puts of distinct and of one shared record all land; the shared
// one holds one writer's record whole.
func testCallConcurrentPuts(t *testing.T, s Store) {
	ctx := t.Context()
	const workers, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r := callAt(fmt.Sprintf("w%d-%d", w, i), callT0.Add(time.Duration(w*each+i)*time.Millisecond))
				shared := callAt("shared", callT0.Add(-time.Hour))
				shared.Dialog = fullDialog()
				shared.Dialog.LocalCSeq = uint32(w)
				shared.Codec = fmt.Sprintf("codec-%d", w)
				for _, err := range []error{s.PutCall(ctx, r), s.PutCall(ctx, shared)} {
					if err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	open := openCalls(t, s)
	equal(t, "open calls", len(open), workers*each+1)
	got := open[0]
	equal(t, "first open call", got.ID, "shared")
	equal(t, "shared call is one writer's", got.Codec, fmt.Sprintf("codec-%d", got.Dialog.LocalCSeq))
	for i, r := range open[1:] {
		equal(t, "order", r.ID, fmt.Sprintf("w%d-%d", i/each, i%each))
	}
}

func TestSplitJID(t *testing.T) {
	for _, j := range []mapping.JID{
		{},
		{Domain: "d.example"},
		{Local: "l", Domain: "d.example"},
		{Local: "l", Domain: "d.example", Resource: "r/with@/x"},
		{Domain: "d.example", Resource: "@r"},
		{Local: `a\40b`, Domain: "d.example", Resource: "/"},
	} {
		must(t, checkCallJID(j))
		equal(t, j.String(), splitJID(j.String()), j)
	}
}

// A version-3 database holding accounts migrates to version 4; the calls
// table has its indexes, and a record's absent parts are SQL NULLs (what
// docs/store-calls.md tells operators to query for).
func TestMigrateCallsFromV3(t *testing.T) {
	needPostgres(t)
	ctx := t.Context()
	dsn := migratedTo(t, 3)
	conn, err := pgx.Connect(ctx, dsn)
	must(t, err)
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `INSERT INTO accounts (user_name, realm) VALUES ('kept', 'r')`)
	must(t, err)

	p, err := OpenPostgres(ctx, dsn, zaptest.NewLogger(t))
	must(t, err)
	defer p.Close()
	v, err := p.SchemaVersion(ctx)
	must(t, err)
	equal(t, "version", v, 4)
	_, ok, err := p.Account(ctx, "kept")
	must(t, err)
	equal(t, "account kept", ok, true)

	rows, _ := conn.Query(ctx, `SELECT indexname::text FROM pg_indexes WHERE tablename = 'calls' ORDER BY indexname`)
	idx, err := pgx.CollectRows(rows, pgx.RowTo[string])
	must(t, err)
	equal(t, "indexes", idx, []string{"calls_ended_idx", "calls_open_idx", "calls_pkey", "calls_started_idx"})

	must(t, p.PutCall(ctx, callAt("c", callT0)))
	var dialogNull, answeredNull, endedNull bool
	var peer string
	must(t, conn.QueryRow(ctx, `SELECT dialog IS NULL, answered IS NULL, ended IS NULL, xmpp_peer FROM calls WHERE id = 'c'`).
		Scan(&dialogNull, &answeredNull, &endedNull, &peer))
	equal(t, "NULLs", []bool{dialogNull, answeredNull, endedNull}, []bool{true, true, true})
	equal(t, "xmpp_peer", peer, "juliet@xmpp.example/balcony")

	r := callAt("c", callT0)
	r.Dialog = fullDialog()
	must(t, p.PutCall(ctx, r))
	var callID string
	var routes int
	must(t, conn.QueryRow(ctx, `SELECT dialog->>'call_id', jsonb_array_length(dialog->'route_set') FROM calls WHERE id = 'c'`).
		Scan(&callID, &routes))
	equal(t, "dialog call_id", callID, r.Dialog.CallID)
	equal(t, "dialog routes", routes, 2)
}

// failingPurger fails its first purges, then passes to a store.
type failingPurger struct {
	mu    sync.Mutex
	fails int
	st    CallPurger
}

func (f *failingPurger) PurgeCalls(ctx context.Context, before time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return 0, errors.New("database gone")
	}
	return f.st.PurgeCalls(ctx, before)
}

// PurgeCallRecords removes the calls ended longer than the retention ago,
// at once and on its schedule, survives failed purges and never removes an
// open call.
func TestPurgeCallRecordsSchedule(t *testing.T) {
	m := NewMemory()
	ctx := t.Context()
	now := time.Now()
	ended := func(id string, ago time.Duration) mapping.CallRecord {
		r := callAt(id, now.Add(-ago-time.Minute))
		r.Ended, r.Outcome = now.Add(-ago), "answered"
		return r
	}
	for _, r := range []mapping.CallRecord{ended("old", 2*time.Hour), ended("recent", 10*time.Minute), callAt("open", now.Add(-48*time.Hour))} {
		must(t, m.PutCall(ctx, r))
	}
	count := func() int {
		stats, err := m.CallStats(ctx, time.Time{})
		must(t, err)
		n := 0
		for _, c := range stats {
			n += c
		}
		return n
	}

	pctx, cancel := context.WithCancel(ctx)
	purged := make(chan int, 100)
	done := make(chan error, 1)
	go func() {
		done <- PurgeCallRecords(pctx, &failingPurger{fails: 2, st: m}, 20*time.Millisecond, time.Hour, zaptest.NewLogger(t), func(n int) { purged <- n })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("PurgeCallRecords: %v", err)
		}
	}()
	wait := func(what string, want int) {
		t.Helper()
		total := 0
		for total < want {
			select {
			case n := <-purged:
				total += n
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: %d records purged after 5 s, want %d", what, total, want)
			}
		}
	}
	wait("first purges, after two failures", 1)
	equal(t, "records left", count(), 2)
	must(t, m.PutCall(ctx, ended("late", 3*time.Hour)))
	wait("scheduled purge", 1)
	equal(t, "records left", count(), 2)
	equal(t, "open calls", len(openCalls(t, m)), 1)
}

func TestPurgeCallRecordsRejectsNonPositive(t *testing.T) {
	for _, d := range [][2]time.Duration{{0, time.Hour}, {time.Minute, 0}, {-1, -1}} {
		if err := PurgeCallRecords(t.Context(), NewMemory(), d[0], d[1], zaptest.NewLogger(t), nil); err == nil {
			t.Errorf("interval %v, retention %v: no error", d[0], d[1])
		}
	}
}

// FuzzSplitJID: every JID PutCall accepts reads back from its stored
// string form exactly.
func FuzzSplitJID(f *testing.F) {
	f.Fuzz(func(t *testing.T, local, domain, resource string) {
		j := mapping.JID{Local: local, Domain: domain, Resource: resource}
		if checkCallJID(j) != nil {
			return
		}
		if got := splitJID(j.String()); got != j {
			t.Fatalf("splitJID(%q) = %#v, want %#v", j.String(), got, j)
		}
	})
}
