package store

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"stox.dev/stox/mapping"
)

// Memory is the in-memory store (single node, nothing persisted). It is safe
// for concurrent use; each record kind has its own lock. Records go in and
// come out as copies, so callers never share memory with the store.
type Memory struct {
	accMu    sync.RWMutex
	accounts map[string]mapping.Account
	accGen   atomic.Uint64 // AccountsVersion

	bindMu   sync.RWMutex
	bindings map[BindingKey]mapping.Binding

	outMu  sync.Mutex
	nextID int64
	outbox map[int64]mapping.OutboxEntry

	subMu sync.RWMutex
	subs  map[subKey]mapping.Subscription

	presMu    sync.RWMutex
	presences map[string]mapping.Presence // by From.String()

	callMu sync.RWMutex
	calls  map[string]mapping.CallRecord // by ID
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty memory store.
func NewMemory() *Memory {
	return &Memory{
		accounts:  make(map[string]mapping.Account),
		bindings:  make(map[BindingKey]mapping.Binding),
		outbox:    make(map[int64]mapping.OutboxEntry),
		subs:      make(map[subKey]mapping.Subscription),
		presences: make(map[string]mapping.Presence),
		calls:     make(map[string]mapping.CallRecord),
	}
}

// Close does nothing; it makes Memory a Store.
func (m *Memory) Close() {}

// SchemaVersion returns the embedded latest schema version.
func (m *Memory) SchemaVersion(context.Context) (int, error) { return latestVersion, nil }

// Ping always succeeds.
func (m *Memory) Ping(context.Context) error { return nil }

// PutAccount inserts or replaces the account a.User. A zero Created is set
// to the current time.
func (m *Memory) PutAccount(_ context.Context, a mapping.Account) error {
	if err := checkAccount(a); err != nil {
		return fmt.Errorf("put account: %w", err)
	}
	a = normAccount(a, time.Now())
	m.accMu.Lock()
	m.accounts[a.User] = a
	m.accGen.Add(1)
	m.accMu.Unlock()
	return nil
}

// ReplaceAccounts makes as the store's accounts, all at once: accounts not in
// as are removed. Nothing changes when any account is invalid.
func (m *Memory) ReplaceAccounts(_ context.Context, as []mapping.Account) error {
	now := time.Now()
	accounts := make(map[string]mapping.Account, len(as))
	for _, a := range as {
		if err := checkAccount(a); err != nil {
			return fmt.Errorf("replace accounts: %w", err)
		}
		accounts[a.User] = normAccount(a, now)
	}
	m.accMu.Lock()
	m.accounts = accounts
	m.accGen.Add(1)
	m.accMu.Unlock()
	return nil
}

// AccountsVersion changes whenever an account is put, deleted or replaced,
// so a cache of accounts can tell that it is out of date.
func (m *Memory) AccountsVersion() uint64 { return m.accGen.Load() }

// Account returns the account of user and whether it exists.
func (m *Memory) Account(_ context.Context, user string) (mapping.Account, bool, error) {
	m.accMu.RLock()
	a, ok := m.accounts[user]
	m.accMu.RUnlock()
	return a, ok, nil
}

// Accounts returns every account sorted by user.
func (m *Memory) Accounts(context.Context) ([]mapping.Account, error) {
	m.accMu.RLock()
	as := make([]mapping.Account, 0, len(m.accounts))
	for _, a := range m.accounts {
		as = append(as, a)
	}
	m.accMu.RUnlock()
	sort.Slice(as, func(i, j int) bool { return as[i].User < as[j].User })
	return as, nil
}

// DeleteAccount removes user and reports whether it existed.
func (m *Memory) DeleteAccount(_ context.Context, user string) (bool, error) {
	m.accMu.Lock()
	_, ok := m.accounts[user]
	delete(m.accounts, user)
	m.accGen.Add(1)
	m.accMu.Unlock()
	return ok, nil
}

// PutBindings inserts or replaces each binding by (AOR, Contact); when bs
// holds the same key twice the later one wins. Nothing is stored when any
// binding is invalid.
func (m *Memory) PutBindings(_ context.Context, bs []mapping.Binding) error {
	for _, b := range bs {
		if err := checkBinding(b); err != nil {
			return fmt.Errorf("put bindings: %w", err)
		}
	}
	m.bindMu.Lock()
	for _, b := range bs {
		b.Expires = normTime(b.Expires)
		m.bindings[Key(b)] = b
	}
	m.bindMu.Unlock()
	return nil
}

// DeleteBindings removes the bindings with the given keys; absent keys are
// ignored.
func (m *Memory) DeleteBindings(_ context.Context, keys []BindingKey) error {
	m.bindMu.Lock()
	for _, k := range keys {
		delete(m.bindings, k)
	}
	m.bindMu.Unlock()
	return nil
}

// LiveBindings returns every binding with Expires after now, sorted by AOR
// then Contact.
func (m *Memory) LiveBindings(_ context.Context, now time.Time) ([]mapping.Binding, error) {
	now = normTime(now)
	m.bindMu.RLock()
	var bs []mapping.Binding
	for _, b := range m.bindings {
		if b.Expires.After(now) {
			bs = append(bs, b)
		}
	}
	m.bindMu.RUnlock()
	sortBindings(bs)
	return bs, nil
}

// PurgeExpiredBindings removes every binding with Expires at or before now
// and returns how many it removed.
func (m *Memory) PurgeExpiredBindings(_ context.Context, now time.Time) (int, error) {
	now = normTime(now)
	n := 0
	m.bindMu.Lock()
	for k, b := range m.bindings {
		if !b.Expires.After(now) {
			delete(m.bindings, k)
			n++
		}
	}
	m.bindMu.Unlock()
	return n, nil
}

// AppendOutbox stores copies of entries atomically and returns their ids in
// order. The ID field of the entries is ignored; a zero Accepted is set to
// the current time.
func (m *Memory) AppendOutbox(_ context.Context, entries []mapping.OutboxEntry) ([]int64, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	if err := checkMessages(entries); err != nil {
		return nil, fmt.Errorf("append outbox: %w", err)
	}
	now := time.Now()
	ids := make([]int64, len(entries))
	m.outMu.Lock()
	for i, e := range entries {
		m.nextID++
		e = normEntry(e, now)
		e.ID = m.nextID
		m.outbox[e.ID] = e
		ids[i] = e.ID
	}
	m.outMu.Unlock()
	return ids, nil
}

// DeleteOutbox removes the entries with the given ids; unknown ids are
// ignored.
func (m *Memory) DeleteOutbox(_ context.Context, ids []int64) error {
	m.outMu.Lock()
	for _, id := range ids {
		delete(m.outbox, id)
	}
	m.outMu.Unlock()
	return nil
}

// PendingOutbox returns copies of every entry not yet deleted, oldest first.
func (m *Memory) PendingOutbox(context.Context) ([]mapping.OutboxEntry, error) {
	m.outMu.Lock()
	es := make([]mapping.OutboxEntry, 0, len(m.outbox))
	for _, e := range m.outbox {
		es = append(es, copyEntry(e))
	}
	m.outMu.Unlock()
	sort.Slice(es, func(i, j int) bool { return es[i].ID < es[j].ID })
	return es, nil
}

// PutSubscription inserts or replaces a copy of s keyed by (Kind,
// JID.Bare(), AOR).
func (m *Memory) PutSubscription(_ context.Context, s mapping.Subscription) error {
	if err := checkSubscription(s); err != nil {
		return fmt.Errorf("put subscription: %w", err)
	}
	s = normSubscription(s)
	m.subMu.Lock()
	m.subs[subscriptionKey(s.Kind, s.JID, s.AOR)] = s
	m.subMu.Unlock()
	return nil
}

// DeleteSubscription removes the subscription keyed by (kind, jid.Bare(),
// aor); an absent one is ignored.
func (m *Memory) DeleteSubscription(_ context.Context, kind string, jid mapping.JID, aor string) error {
	if err := checkSubKey(kind, jid, aor); err != nil {
		return fmt.Errorf("delete subscription: %w", err)
	}
	m.subMu.Lock()
	delete(m.subs, subscriptionKey(kind, jid, aor))
	m.subMu.Unlock()
	return nil
}

// Subscriptions returns copies of every subscription sorted by Kind, bare
// JID string, then AOR.
func (m *Memory) Subscriptions(context.Context) ([]mapping.Subscription, error) {
	m.subMu.RLock()
	ss := make([]mapping.Subscription, 0, len(m.subs))
	for _, s := range m.subs {
		ss = append(ss, copySubscription(s))
	}
	m.subMu.RUnlock()
	sortSubscriptions(ss)
	return ss, nil
}

// PutPresence inserts or replaces a copy of p keyed by p.From.String().
func (m *Memory) PutPresence(_ context.Context, p mapping.Presence) error {
	if err := checkPresence(p); err != nil {
		return fmt.Errorf("put presence: %w", err)
	}
	p = copyPresence(p)
	m.presMu.Lock()
	m.presences[p.From.String()] = p
	m.presMu.Unlock()
	return nil
}

// DeletePresence removes the presence keyed by from.String(); an absent one
// is ignored.
func (m *Memory) DeletePresence(_ context.Context, from mapping.JID) error {
	if err := checkPresenceKey(from); err != nil {
		return fmt.Errorf("delete presence: %w", err)
	}
	m.presMu.Lock()
	delete(m.presences, from.String())
	m.presMu.Unlock()
	return nil
}

// Presences returns copies of every presence sorted by From.String().
func (m *Memory) Presences(context.Context) ([]mapping.Presence, error) {
	m.presMu.RLock()
	keys := make([]string, 0, len(m.presences))
	for k := range m.presences {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ps := make([]mapping.Presence, len(keys))
	for i, k := range keys {
		ps[i] = copyPresence(m.presences[k])
	}
	m.presMu.RUnlock()
	return ps, nil
}

func normAccount(a mapping.Account, now time.Time) mapping.Account {
	if a.Created.IsZero() {
		a.Created = now
	}
	a.Created = normTime(a.Created)
	return a
}

// normEntry returns a copy of e as a store keeps it.
func normEntry(e mapping.OutboxEntry, now time.Time) mapping.OutboxEntry {
	if e.Accepted.IsZero() {
		e.Accepted = now
	}
	e.Accepted = normTime(e.Accepted)
	return copyEntry(e)
}

// copyEntry returns e without memory shared with it.
func copyEntry(e mapping.OutboxEntry) mapping.OutboxEntry {
	if e.Message.Error != nil {
		f := *e.Message.Error
		e.Message.Error = &f
	}
	return e
}
