package store

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"stox.dev/stox/mapping"
)

// The contract suite: every test runs against every implementation.
var contract = []struct {
	name string
	fn   func(t *testing.T, s Store)
}{
	{"Health", testHealth},
	{"Accounts", testAccounts},
	{"Bindings", testBindings},
	{"BindingsExpiry", testBindingsExpiry},
	{"OutboxRoundTrip", testOutboxRoundTrip},
	{"OutboxOrderAndDelete", testOutboxOrderAndDelete},
	{"OutboxNoAliasing", testOutboxNoAliasing},
	{"OutboxRejectsBadText", testOutboxRejectsBadText},
	{"OutboxConcurrentAppends", testOutboxConcurrentAppends},
	{"OutboxLargeBatch", testOutboxLargeBatch},
	{"SubscriptionRoundTrip", testSubscriptionRoundTrip},
	{"SubscriptionKinds", testSubscriptionKinds},
	{"SubscriptionNoAliasing", testSubscriptionNoAliasing},
	{"SubscriptionRejects", testSubscriptionRejects},
	{"SubscriptionMany", testSubscriptionMany},
	{"PresenceRoundTrip", testPresenceRoundTrip},
	{"PresenceNoAliasing", testPresenceNoAliasing},
	{"PresenceRejects", testPresenceRejects},
	{"PresenceStateConcurrentPuts", testPresenceStateConcurrentPuts},
	{"CallPutUpdate", testCallPutUpdate},
	{"CallOpenOrder", testCallOpenOrder},
	{"CallStats", testCallStats},
	{"CallPurge", testCallPurge},
	{"CallRoundTrip", testCallRoundTrip},
	{"CallNoAliasing", testCallNoAliasing},
	{"CallRejects", testCallRejects},
	{"CallConcurrentPuts", testCallConcurrentPuts},
}

func TestContract(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			open(t) // skips or fails the whole group when the store is unavailable
			for _, tc := range contract {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testHealth(t *testing.T, s Store) {
	ctx := t.Context()
	must(t, s.Ping(ctx))
	v, err := s.SchemaVersion(ctx)
	must(t, err)
	equal(t, "schema version", v, LatestVersion())
}

func testAccounts(t *testing.T, s Store) {
	ctx := t.Context()
	created := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	alice := mapping.Account{User: "alice", Realm: "sip.example", HA1MD5: "md5a", HA1SHA256: "sha256a", Display: "Alice", Created: created}
	for _, a := range []mapping.Account{
		alice,
		{User: "o'malley", Realm: "sip.example", HA1MD5: "m", Created: created},
		{User: "Zed", Realm: "sip.example", Created: created},
		{User: "fü", Realm: "sip.example", Created: created},
	} {
		must(t, s.PutAccount(ctx, a))
	}

	got, ok, err := s.Account(ctx, "alice")
	must(t, err)
	want := alice
	want.Created = time.Date(2026, 3, 1, 11, 0, 0, 123456000, time.UTC)
	equal(t, "ok", ok, true)
	equal(t, "account", got, want)

	_, ok, err = s.Account(ctx, "nobody")
	must(t, err)
	equal(t, "ok for a missing account", ok, false)

	// Replace.
	alice2 := mapping.Account{User: "alice", Realm: "other.example", HA1MD5: "md5b", HA1SHA256: "sha256b", Display: "Alice B", Created: created}
	must(t, s.PutAccount(ctx, alice2))
	got, _, err = s.Account(ctx, "alice")
	must(t, err)
	alice2.Created = want.Created
	equal(t, "replaced account", got, alice2)

	// Zero Created is set by the store.
	before := time.Now().Add(-time.Second)
	must(t, s.PutAccount(ctx, mapping.Account{User: "new", Realm: "sip.example"}))
	got, _, err = s.Account(ctx, "new")
	must(t, err)
	if got.Created.Before(before) || got.Created.After(time.Now().Add(time.Second)) {
		t.Fatalf("Created = %v, want about now", got.Created)
	}

	as, err := s.Accounts(ctx)
	must(t, err)
	var users []string
	for _, a := range as {
		users = append(users, a.User)
	}
	equal(t, "users in order", users, []string{"Zed", "alice", "fü", "new", "o'malley"})

	ok, err = s.DeleteAccount(ctx, "alice")
	must(t, err)
	equal(t, "deleted", ok, true)
	ok, err = s.DeleteAccount(ctx, "alice")
	must(t, err)
	equal(t, "deleted twice", ok, false)
	_, ok, err = s.Account(ctx, "alice")
	must(t, err)
	equal(t, "found after delete", ok, false)

	if err := s.PutAccount(ctx, mapping.Account{Realm: "x"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty user: err = %v, want ErrInvalid", err)
	}
}

func binding(aor, contact string, cseq uint32, exp time.Time) mapping.Binding {
	return mapping.Binding{AOR: aor, Contact: contact, Source: "udp:192.0.2.1:5060", CallID: "cid-" + contact, CSeq: cseq, Expires: exp, UserAgent: "ua/1"}
}

func testBindings(t *testing.T, s Store) {
	ctx := t.Context()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a1 := binding("sip:alice@s.example", "sip:alice@192.0.2.1:5060", 1, now.Add(time.Hour))
	a2 := binding("sip:alice@s.example", "sip:alice@198.51.100.7;transport=tcp", 7, now.Add(2*time.Hour))
	b1 := binding("sip:bob@s.example", "sip:bob@192.0.2.2", 4294967295, now.Add(30*time.Minute+1500*time.Nanosecond))
	must(t, s.PutBindings(ctx, []mapping.Binding{b1, a2, a1}))
	must(t, s.PutBindings(ctx, nil))

	live, err := s.LiveBindings(ctx, now)
	must(t, err)
	b1n := b1
	b1n.Expires = now.Add(30*time.Minute + time.Microsecond)
	equal(t, "live", live, []mapping.Binding{a1, a2, b1n})

	// Refresh a1 (same key, new REGISTER); the same key twice in one batch:
	// the later wins.
	a1r := a1
	a1r.CallID, a1r.CSeq, a1r.Expires, a1r.Source, a1r.UserAgent = "cid-new", 2, now.Add(3*time.Hour), "tcp:192.0.2.9:5070", "ua/2"
	stale := a1
	stale.CSeq = 99
	must(t, s.PutBindings(ctx, []mapping.Binding{stale, a1r}))
	live, err = s.LiveBindings(ctx, now)
	must(t, err)
	equal(t, "live after refresh", live, []mapping.Binding{a1r, a2, b1n})

	must(t, s.DeleteBindings(ctx, []BindingKey{Key(a2), {AOR: "sip:nobody@s.example", Contact: "x"}}))
	must(t, s.DeleteBindings(ctx, nil))
	live, err = s.LiveBindings(ctx, now)
	must(t, err)
	equal(t, "live after delete", live, []mapping.Binding{a1r, b1n})

	// An invalid binding stores nothing of its batch.
	err = s.PutBindings(ctx, []mapping.Binding{binding("sip:carol@s.example", "sip:c@x", 1, now.Add(time.Hour)), {AOR: "sip:x@s.example"}})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty contact: err = %v, want ErrInvalid", err)
	}
	live, err = s.LiveBindings(ctx, now)
	must(t, err)
	equal(t, "live after a rejected batch", len(live), 2)
}

func testBindingsExpiry(t *testing.T, s Store) {
	ctx := t.Context()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var bs []mapping.Binding
	for i := range 10 {
		// Expiries now-4s … now+5s: 5 at or before now (one exactly at now), 5 after.
		bs = append(bs, binding("sip:u@s.example", fmt.Sprintf("sip:u@192.0.2.%d", i), uint32(i), now.Add(time.Duration(i-4)*time.Second)))
	}
	must(t, s.PutBindings(ctx, bs))

	live, err := s.LiveBindings(ctx, now)
	must(t, err)
	equal(t, "live", live, bs[5:])

	n, err := s.PurgeExpiredBindings(ctx, now)
	must(t, err)
	equal(t, "purged", n, 5)
	n, err = s.PurgeExpiredBindings(ctx, now)
	must(t, err)
	equal(t, "purged again", n, 0)

	live, err = s.LiveBindings(ctx, now.Add(-time.Hour))
	must(t, err)
	equal(t, "all left after purge", live, bs[5:])
}

// fullMessage sets every field of XMPPMessage and Failure.
func fullMessage(i int) mapping.XMPPMessage {
	return mapping.XMPPMessage{
		ID:      fmt.Sprintf("id-%d", i),
		From:    mapping.JID{Local: `o\27malley`, Domain: "xmpp.example", Resource: "phone 📱"},
		To:      mapping.JID{Local: "fü", Domain: "sip.example", Resource: "r"},
		Type:    "error",
		Lang:    "de-CH",
		Body:    fmt.Sprintf("body %d <&>\"'\n\ttab, ünïcödé, 😀, \u200f RTL", i),
		Subject: "subject",
		Thread:  "thread-1",
		Error: &mapping.Failure{
			Condition:  mapping.Gone,
			Status:     410,
			Text:       "moved",
			Address:    "xmpp:new@xmpp.example",
			RetryAfter: 1500 * time.Millisecond,
		},
	}
}

func testOutboxRoundTrip(t *testing.T, s Store) {
	ctx := t.Context()
	accepted := time.Date(2026, 3, 1, 12, 0, 0, 987654321, time.FixedZone("X", -5*3600))
	minimal := mapping.XMPPMessage{To: mapping.JID{Domain: "d"}}
	in := []mapping.OutboxEntry{
		{ID: 999, Message: fullMessage(1), Accepted: accepted, Attempts: 3},
		{Message: minimal, Accepted: accepted},
		{Message: mapping.XMPPMessage{Body: "no accepted time"}},
	}
	before := time.Now().Add(-time.Second)
	ids, err := s.AppendOutbox(ctx, in)
	must(t, err)
	if len(ids) != 3 || ids[0] >= ids[1] || ids[1] >= ids[2] {
		t.Fatalf("ids = %v, want 3 increasing", ids)
	}
	got, err := s.PendingOutbox(ctx)
	must(t, err)
	wantAcc := time.Date(2026, 3, 1, 17, 0, 0, 987654000, time.UTC)
	want := []mapping.OutboxEntry{
		{ID: ids[0], Message: fullMessage(1), Accepted: wantAcc, Attempts: 3},
		{ID: ids[1], Message: minimal, Accepted: wantAcc},
		{ID: ids[2], Message: mapping.XMPPMessage{Body: "no accepted time"}, Accepted: got[2].Accepted},
	}
	equal(t, "pending", got, want)
	if got[1].Message.Error != nil {
		t.Fatal("nil Error came back non-nil")
	}
	if acc := got[2].Accepted; acc.Before(before) || acc.After(time.Now().Add(time.Second)) {
		t.Fatalf("zero Accepted stored as %v, want about now", acc)
	}

	ids2, err := s.AppendOutbox(ctx, nil)
	must(t, err)
	equal(t, "ids of an empty append", len(ids2), 0)
}

func testOutboxOrderAndDelete(t *testing.T, s Store) {
	ctx := t.Context()
	var all []int64
	for batch := range 3 {
		var es []mapping.OutboxEntry
		for i := range 4 {
			es = append(es, mapping.OutboxEntry{Message: mapping.XMPPMessage{Body: fmt.Sprint(batch*4 + i)}})
		}
		ids, err := s.AppendOutbox(ctx, es)
		must(t, err)
		all = append(all, ids...)
	}
	if !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != 12 {
		t.Fatalf("ids across batches = %v, want 12 increasing", all)
	}
	must(t, s.DeleteOutbox(ctx, []int64{all[0], all[5], all[11], 1 << 60}))
	must(t, s.DeleteOutbox(ctx, nil))
	got, err := s.PendingOutbox(ctx)
	must(t, err)
	var bodies []string
	var ids []int64
	for _, e := range got {
		bodies = append(bodies, e.Message.Body)
		ids = append(ids, e.ID)
	}
	equal(t, "bodies", bodies, []string{"1", "2", "3", "4", "6", "7", "8", "9", "10"})
	equal(t, "ids", ids, []int64{all[1], all[2], all[3], all[4], all[6], all[7], all[8], all[9], all[10]})
}

func testOutboxNoAliasing(t *testing.T, s Store) {
	ctx := t.Context()
	in := []mapping.OutboxEntry{{Message: fullMessage(1)}}
	_, err := s.AppendOutbox(ctx, in)
	must(t, err)
	in[0].Message.Body = "changed"
	in[0].Message.Error.Text = "changed"

	got, err := s.PendingOutbox(ctx)
	must(t, err)
	got[0].Message.Error.Status = 1
	again, err := s.PendingOutbox(ctx)
	must(t, err)
	equal(t, "message", again[0].Message, fullMessage(1))
}

func testOutboxRejectsBadText(t *testing.T, s Store) {
	ctx := t.Context()
	for _, m := range []mapping.XMPPMessage{
		{Body: "nul\x00byte"},
		{Subject: "bad \xff utf-8"},
		{Error: &mapping.Failure{Condition: mapping.Gone, Text: "\x00"}},
	} {
		_, err := s.AppendOutbox(ctx, []mapping.OutboxEntry{{Message: fullMessage(0)}, {Message: m}})
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("%+v: err = %v, want ErrInvalid", m, err)
		}
	}
	got, err := s.PendingOutbox(ctx)
	must(t, err)
	equal(t, "pending after rejected batches", len(got), 0)
}

func testOutboxConcurrentAppends(t *testing.T, s Store) {
	ctx := t.Context()
	const workers, rounds, batch = 16, 20, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	idsOf := make([][]int64, workers)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				es := make([]mapping.OutboxEntry, batch)
				for i := range es {
					es[i].Message = mapping.XMPPMessage{Body: fmt.Sprintf("%d/%d/%d", w, r, i)}
				}
				ids, err := s.AppendOutbox(ctx, es)
				if err != nil {
					errs <- err
					return
				}
				idsOf[w] = append(idsOf[w], ids...)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	byID := make(map[int64]string)
	for w, ids := range idsOf {
		if !slices.IsSorted(ids) {
			t.Fatalf("worker %d got ids out of order: %v", w, ids)
		}
		for k, id := range ids {
			if _, dup := byID[id]; dup {
				t.Fatalf("id %d handed out twice", id)
			}
			byID[id] = fmt.Sprintf("%d/%d/%d", w, k/batch, k%batch)
		}
	}
	got, err := s.PendingOutbox(ctx)
	must(t, err)
	equal(t, "pending count", len(got), workers*rounds*batch)
	for i, e := range got {
		if i > 0 && got[i-1].ID >= e.ID {
			t.Fatalf("pending not ordered by id at %d", i)
		}
		if byID[e.ID] != e.Message.Body {
			t.Fatalf("entry %d: body %q, want %q", e.ID, e.Message.Body, byID[e.ID])
		}
	}
}

func testOutboxLargeBatch(t *testing.T, s Store) {
	ctx := t.Context()
	const n = 5000
	es := make([]mapping.OutboxEntry, n)
	for i := range es {
		es[i] = mapping.OutboxEntry{Message: fullMessage(i), Attempts: i % 7}
	}
	ids, err := s.AppendOutbox(ctx, es)
	must(t, err)
	equal(t, "id count", len(ids), n)
	for i := 1; i < n; i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("ids not increasing at %d", i)
		}
	}
	got, err := s.PendingOutbox(ctx)
	must(t, err)
	equal(t, "pending count", len(got), n)
	for i, e := range got {
		if e.ID != ids[i] || !reflect.DeepEqual(e.Message, fullMessage(i)) || e.Attempts != i%7 {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	must(t, s.DeleteOutbox(ctx, ids[:n-1]))
	got, err = s.PendingOutbox(ctx)
	must(t, err)
	equal(t, "left after deleting all but one", len(got), 1)
	equal(t, "id left", got[0].ID, ids[n-1])
}
