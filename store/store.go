// Package store persists what stox must keep: SIP accounts, registrations
// (bindings), the durable XMPP→SIP outbox (docs/architecture.md,
// "Durability contract"), presence state (subscriptions and last known
// presence, docs/presence-contract.md) and call records
// (docs/store-calls.md).
//
// Two implementations share one method set, Store: Memory, the default for a
// single node that persists nothing, and Postgres (pgx). Both are checked by
// one contract suite (contract_test.go).
//
// Both stores keep times at microsecond precision in UTC, the precision of
// a Postgres timestamptz, so a value reads back the same from either.
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"stox.dev/stox/mapping"
)

// Store is the method set both Memory and Postgres implement; cmd/stox holds
// whichever it opened as a Store.
type Store interface {
	// The outbox: accepted XMPP→SIP messages awaiting delivery (im.Outbox).
	AppendOutbox(ctx context.Context, entries []mapping.OutboxEntry) ([]int64, error)
	DeleteOutbox(ctx context.Context, ids []int64) error
	PendingOutbox(ctx context.Context) ([]mapping.OutboxEntry, error)

	SchemaVersion(ctx context.Context) (int, error)
	Ping(ctx context.Context) error
	Close()

	PutAccount(ctx context.Context, a mapping.Account) error
	Account(ctx context.Context, user string) (mapping.Account, bool, error)
	Accounts(ctx context.Context) ([]mapping.Account, error)
	DeleteAccount(ctx context.Context, user string) (bool, error)

	PutBindings(ctx context.Context, bs []mapping.Binding) error
	DeleteBindings(ctx context.Context, keys []BindingKey) error
	LiveBindings(ctx context.Context, now time.Time) ([]mapping.Binding, error)
	// PurgeExpiredBindings removes the bindings with Expires at or before
	// now and returns how many; it returns ErrPurgeBusy, having removed
	// nothing, while another node sharing the store is purging.
	PurgeExpiredBindings(ctx context.Context, now time.Time) (int, error)

	// Presence state, the presence.Store contract (docs/presence-contract.md).

	// PutSubscription inserts or replaces the subscription keyed by (Kind,
	// JID.Bare(), AOR); the JID is stored bare.
	PutSubscription(ctx context.Context, s mapping.Subscription) error
	// DeleteSubscription removes the subscription with that key; an absent
	// one is not an error.
	DeleteSubscription(ctx context.Context, kind string, jid mapping.JID, aor string) error
	// Subscriptions returns every subscription sorted by Kind, bare JID
	// string, then AOR.
	Subscriptions(ctx context.Context) ([]mapping.Subscription, error)
	// PutPresence inserts or replaces the last known presence of the XMPP
	// resource p.From (keyed by p.From.String(), the full JID).
	PutPresence(ctx context.Context, p mapping.Presence) error
	// DeletePresence removes the presence of from; an absent one is not an
	// error.
	DeletePresence(ctx context.Context, from mapping.JID) error
	// Presences returns every stored presence sorted by From.String().
	Presences(ctx context.Context) ([]mapping.Presence, error)

	// Call records (docs/store-calls.md), the calls.Store contract.

	// PutCall inserts the record r or replaces the one with its ID. It
	// refuses (ErrInvalid) an empty ID or a zero Started.
	PutCall(ctx context.Context, r mapping.CallRecord) error
	// OpenCalls returns the records with a zero Ended, oldest Started first
	// (then by ID): the calls a crashed stox left behind.
	OpenCalls(ctx context.Context) ([]mapping.CallRecord, error)
	// CallStats counts the calls with Started at or after since by Outcome;
	// calls still up count under "".
	CallStats(ctx context.Context, since time.Time) (map[string]int, error)
	// PurgeCalls removes the records of calls that ended before before and
	// returns how many; open calls stay.
	PurgeCalls(ctx context.Context, before time.Time) (int, error)
}

// BindingKey identifies a binding: its address-of-record and Contact URI.
type BindingKey struct{ AOR, Contact string }

// Key returns the key of b.
func Key(b mapping.Binding) BindingKey { return BindingKey{AOR: b.AOR, Contact: b.Contact} }

// ErrInvalid is wrapped by errors for records a store refuses (empty keys).
var ErrInvalid = errors.New("invalid record")

// ErrPurgeBusy is wrapped by PurgeExpiredBindings when another node is
// purging at the same time; this one skipped.
var ErrPurgeBusy = errors.New("another node is purging expired bindings")

//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations lists the embedded files ordered by the version number their
// name starts with ("0002_presence.sql" is version 2).
var migrations, latestVersion = loadMigrations()

func loadMigrations() ([]migration, int) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	var ms []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			panic(fmt.Sprintf("store: migration %s: name must start with a positive version number", n))
		}
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			panic(err)
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := range ms {
		if ms[i].version != i+1 {
			panic(fmt.Sprintf("store: migration %s: versions must be 1, 2, 3… without gaps", ms[i].name))
		}
	}
	return ms, len(ms)
}

// LatestVersion is the schema version of the embedded migrations.
func LatestVersion() int { return latestVersion }

// normTime brings t to what a timestamptz keeps: UTC, microseconds, no
// monotonic reading.
func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func checkAccount(a mapping.Account) error {
	if a.User == "" {
		return fmt.Errorf("%w: account with empty user", ErrInvalid)
	}
	return nil
}

func checkBinding(b mapping.Binding) error {
	if b.AOR == "" || b.Contact == "" {
		return fmt.Errorf("%w: binding with empty AOR or Contact", ErrInvalid)
	}
	return nil
}

func sortBindings(bs []mapping.Binding) {
	sort.Slice(bs, func(i, j int) bool {
		if bs[i].AOR != bs[j].AOR {
			return bs[i].AOR < bs[j].AOR
		}
		return bs[i].Contact < bs[j].Contact
	})
}

// checkMessages rejects text a jsonb column cannot hold exactly (NUL, invalid
// UTF-8); neither can appear in an XMPP stanza, so only a bug produces it.
func checkMessages(entries []mapping.OutboxEntry) error {
	for i, e := range entries {
		m := e.Message
		for _, s := range [...]string{m.ID, m.From.Local, m.From.Domain, m.From.Resource, m.To.Local, m.To.Domain, m.To.Resource, m.Type, m.Lang, m.Body, m.Subject, m.Thread} {
			if !validText(s) {
				return fmt.Errorf("%w: entry %d: message text holds NUL or invalid UTF-8", ErrInvalid, i)
			}
		}
		if f := m.Error; f != nil && (!validText(string(f.Condition)) || !validText(f.Text) || !validText(f.Address)) {
			return fmt.Errorf("%w: entry %d: error text holds NUL or invalid UTF-8", ErrInvalid, i)
		}
	}
	return nil
}

func validText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
