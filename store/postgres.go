package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/tracelog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"stox.dev/stox/mapping"
)

// DefaultMaxConns is the pool size unless the DSN sets pool_max_conns.
const DefaultMaxConns = 8

// Postgres is the pgx implementation of Store. It is safe for concurrent use.
type Postgres struct {
	pool *pgxpool.Pool
	log  *zap.Logger
}

var _ Store = (*Postgres)(nil)

// OpenPostgres parses dsn, builds a connection pool and applies the embedded
// migrations under an advisory lock (see Migrate). log may be nil; queries are
// logged at debug level.
func OpenPostgres(ctx context.Context, dsn string, log *zap.Logger) (*Postgres, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: parse dsn: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 30 * time.Second
	cfg.ConnConfig.Tracer = queryTracer(log)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	err = pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		_, err := migrate(ctx, c.Conn(), log)
		return err
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	return &Postgres{pool: pool, log: log}, nil
}

// queryTracer logs every query through log at debug level (pgx-zap is not
// available, docs/libraries.md). Query arguments are left out: they carry
// message bodies and digests.
func queryTracer(log *zap.Logger) pgx.QueryTracer {
	log = log.Named("pgx").WithOptions(zap.AddCallerSkip(3))
	return &tracelog.TraceLog{
		LogLevel: tracelog.LogLevelDebug,
		Logger: tracelog.LoggerFunc(func(_ context.Context, level tracelog.LogLevel, msg string, data map[string]any) {
			lvl := zapcore.DebugLevel
			if level <= tracelog.LogLevelWarn {
				lvl = zapcore.WarnLevel
			}
			ce := log.Check(lvl, msg)
			if ce == nil {
				return
			}
			fields := make([]zap.Field, 0, len(data))
			for k, v := range data {
				if k != "args" {
					fields = append(fields, zap.Any(k, v))
				}
			}
			ce.Write(fields...)
		}),
	}
}

// Close closes the pool, waiting for acquired connections to be released.
func (p *Postgres) Close() { p.pool.Close() }

// Ping checks that the database answers.
func (p *Postgres) Ping(ctx context.Context) error {
	if err := p.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// SchemaVersion returns the highest migration version applied.
func (p *Postgres) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := p.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// PutAccount inserts or replaces the account a.User. A zero Created is set
// to the current time.
func (p *Postgres) PutAccount(ctx context.Context, a mapping.Account) error {
	if err := checkAccount(a); err != nil {
		return fmt.Errorf("put account: %w", err)
	}
	a = normAccount(a, time.Now())
	_, err := p.pool.Exec(ctx, `
		INSERT INTO accounts (user_name, realm, ha1_md5, ha1_sha256, display, created)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (user_name) DO UPDATE SET realm = excluded.realm, ha1_md5 = excluded.ha1_md5,
			ha1_sha256 = excluded.ha1_sha256, display = excluded.display, created = excluded.created`,
		a.User, a.Realm, a.HA1MD5, a.HA1SHA256, a.Display, a.Created)
	if err != nil {
		return fmt.Errorf("put account %q: %w", a.User, err)
	}
	return nil
}

const accountCols = `user_name, realm, ha1_md5, ha1_sha256, display, created`

func scanAccount(row pgx.CollectableRow) (mapping.Account, error) {
	var a mapping.Account
	err := row.Scan(&a.User, &a.Realm, &a.HA1MD5, &a.HA1SHA256, &a.Display, &a.Created)
	a.Created = a.Created.UTC()
	return a, err
}

// Account returns the account of user and whether it exists.
func (p *Postgres) Account(ctx context.Context, user string) (mapping.Account, bool, error) {
	rows, _ := p.pool.Query(ctx, `SELECT `+accountCols+` FROM accounts WHERE user_name = $1`, user)
	a, err := pgx.CollectExactlyOneRow(rows, scanAccount)
	if errors.Is(err, pgx.ErrNoRows) {
		return mapping.Account{}, false, nil
	}
	if err != nil {
		return mapping.Account{}, false, fmt.Errorf("account %q: %w", user, err)
	}
	return a, true, nil
}

// Accounts returns every account sorted by user.
func (p *Postgres) Accounts(ctx context.Context) ([]mapping.Account, error) {
	rows, _ := p.pool.Query(ctx, `SELECT `+accountCols+` FROM accounts ORDER BY user_name COLLATE "C"`)
	as, err := pgx.CollectRows(rows, scanAccount)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	return as, nil
}

// DeleteAccount removes user and reports whether it existed.
func (p *Postgres) DeleteAccount(ctx context.Context, user string) (bool, error) {
	tag, err := p.pool.Exec(ctx, `DELETE FROM accounts WHERE user_name = $1`, user)
	if err != nil {
		return false, fmt.Errorf("delete account %q: %w", user, err)
	}
	return tag.RowsAffected() > 0, nil
}

// PutBindings inserts or replaces each binding by (AOR, Contact) in one
// statement; when bs holds the same key twice the later one wins. Nothing is
// stored when any binding is invalid.
func (p *Postgres) PutBindings(ctx context.Context, bs []mapping.Binding) error {
	if len(bs) == 0 {
		return nil
	}
	// ON CONFLICT cannot touch a row twice in one statement: keep the last.
	last := make(map[BindingKey]int, len(bs))
	for i, b := range bs {
		if err := checkBinding(b); err != nil {
			return fmt.Errorf("put bindings: %w", err)
		}
		last[Key(b)] = i
	}
	n := len(last)
	aor, contact, source, callID, ua := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	cseq, expires := make([]int64, 0, n), make([]time.Time, 0, n)
	for i, b := range bs {
		if last[Key(b)] != i {
			continue
		}
		aor, contact, source, callID, ua = append(aor, b.AOR), append(contact, b.Contact), append(source, b.Source), append(callID, b.CallID), append(ua, b.UserAgent)
		cseq, expires = append(cseq, int64(b.CSeq)), append(expires, normTime(b.Expires))
	}
	_, err := p.pool.Exec(ctx, `
		INSERT INTO bindings (aor, contact, source, call_id, cseq, expires, user_agent)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::timestamptz[], $7::text[])
		ON CONFLICT (aor, contact) DO UPDATE SET source = excluded.source, call_id = excluded.call_id,
			cseq = excluded.cseq, expires = excluded.expires, user_agent = excluded.user_agent`,
		aor, contact, source, callID, cseq, expires, ua)
	if err != nil {
		return fmt.Errorf("put bindings: %w", err)
	}
	return nil
}

// DeleteBindings removes the bindings with the given keys in one statement;
// absent keys are ignored.
func (p *Postgres) DeleteBindings(ctx context.Context, keys []BindingKey) error {
	if len(keys) == 0 {
		return nil
	}
	aor, contact := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		aor[i], contact[i] = k.AOR, k.Contact
	}
	_, err := p.pool.Exec(ctx, `
		DELETE FROM bindings b USING unnest($1::text[], $2::text[]) AS k(aor, contact)
		WHERE b.aor = k.aor AND b.contact = k.contact`, aor, contact)
	if err != nil {
		return fmt.Errorf("delete bindings: %w", err)
	}
	return nil
}

// LiveBindings returns every binding with Expires after now, sorted by AOR
// then Contact.
func (p *Postgres) LiveBindings(ctx context.Context, now time.Time) ([]mapping.Binding, error) {
	rows, _ := p.pool.Query(ctx, `
		SELECT aor, contact, source, call_id, cseq, expires, user_agent FROM bindings
		WHERE expires > $1 ORDER BY aor COLLATE "C", contact COLLATE "C"`, normTime(now))
	bs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mapping.Binding, error) {
		var b mapping.Binding
		var cseq int64
		err := row.Scan(&b.AOR, &b.Contact, &b.Source, &b.CallID, &cseq, &b.Expires, &b.UserAgent)
		b.CSeq, b.Expires = uint32(cseq), b.Expires.UTC()
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("live bindings: %w", err)
	}
	return bs, nil
}

// purgeLock is the transaction-level advisory lock key that lets one node
// purge at a time ("stoxp" in ASCII; migrationLock is "stox").
const purgeLock = 0x73746f7870

// PurgeExpiredBindings removes every binding with Expires at or before now
// and returns how many it removed. Nodes sharing the database purge one at a
// time: while another holds the purge lock it skips and returns ErrPurgeBusy.
func (p *Postgres) PurgeExpiredBindings(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(purgeLock)).Scan(&locked); err != nil {
			return err
		}
		if !locked {
			return ErrPurgeBusy
		}
		tag, err := tx.Exec(ctx, `DELETE FROM bindings WHERE expires <= $1`, normTime(now))
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purge expired bindings: %w", err)
	}
	return int(n), nil
}

// AppendOutbox stores entries with one statement, hence one transaction and
// one commit, and returns their ids in order. The ID field of the entries is
// ignored; a zero Accepted is set to the current time.
func (p *Postgres) AppendOutbox(ctx context.Context, entries []mapping.OutboxEntry) ([]int64, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	if err := checkMessages(entries); err != nil {
		return nil, fmt.Errorf("append outbox: %w", err)
	}
	now := time.Now()
	msgs, accepted, attempts := make([]string, len(entries)), make([]time.Time, len(entries)), make([]int32, len(entries))
	for i, e := range entries {
		b, err := json.Marshal(toWire(e.Message))
		if err != nil {
			return nil, fmt.Errorf("append outbox: encode message %d: %w", i, err)
		}
		e = normEntry(e, now)
		msgs[i], accepted[i], attempts[i] = string(b), e.Accepted, int32(e.Attempts)
	}
	// The sequence hands out ids in the order rows are inserted, which is
	// the ORDER BY; RETURNING order is unspecified, so sort the ids.
	rows, _ := p.pool.Query(ctx, `
		INSERT INTO outbox (message, accepted, attempts)
		SELECT m::jsonb, a, n FROM unnest($1::text[], $2::timestamptz[], $3::int4[]) WITH ORDINALITY AS t(m, a, n, ord)
		ORDER BY ord
		RETURNING id`, msgs, accepted, attempts)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("append outbox: %w", err)
	}
	if len(ids) != len(entries) {
		return nil, fmt.Errorf("append outbox: inserted %d rows for %d entries", len(ids), len(entries))
	}
	slices.Sort(ids)
	return ids, nil
}

// DeleteOutbox removes the entries with the given ids; unknown ids are
// ignored.
func (p *Postgres) DeleteOutbox(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := p.pool.Exec(ctx, `DELETE FROM outbox WHERE id = ANY($1::int8[])`, ids); err != nil {
		return fmt.Errorf("delete outbox: %w", err)
	}
	return nil
}

// PendingOutbox returns every entry not yet deleted, oldest (lowest id)
// first.
func (p *Postgres) PendingOutbox(ctx context.Context) ([]mapping.OutboxEntry, error) {
	rows, _ := p.pool.Query(ctx, `SELECT id, message, accepted, attempts FROM outbox ORDER BY id`)
	es, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mapping.OutboxEntry, error) {
		var e mapping.OutboxEntry
		var msg []byte
		var attempts int32
		if err := row.Scan(&e.ID, &msg, &e.Accepted, &attempts); err != nil {
			return e, err
		}
		var w wireMessage
		if err := json.Unmarshal(msg, &w); err != nil {
			return e, fmt.Errorf("entry %d: decode message: %w", e.ID, err)
		}
		e.Message, e.Accepted, e.Attempts = w.message(), e.Accepted.UTC(), int(attempts)
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("pending outbox: %w", err)
	}
	return es, nil
}

// PutSubscription inserts or replaces s keyed by (Kind, JID.Bare(), AOR)
// in one statement.
func (p *Postgres) PutSubscription(ctx context.Context, s mapping.Subscription) error {
	if err := checkSubscription(s); err != nil {
		return fmt.Errorf("put subscription: %w", err)
	}
	s = normSubscription(s)
	dialog, err := json.Marshal(toWireDialog(s.Dialog))
	if err != nil {
		return fmt.Errorf("put subscription: encode dialog: %w", err)
	}
	k := subscriptionKey(s.Kind, s.JID, s.AOR)
	_, err = p.pool.Exec(ctx, `
		INSERT INTO subscriptions (kind, jid, aor, jid_local, jid_domain, state, dialog, last_body, updated, retry_at, attempts, authorize)
		VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12)
		ON CONFLICT (kind, jid, aor) DO UPDATE SET jid_local = excluded.jid_local, jid_domain = excluded.jid_domain,
			state = excluded.state, dialog = excluded.dialog, last_body = excluded.last_body, updated = excluded.updated,
			retry_at = excluded.retry_at, attempts = excluded.attempts, authorize = excluded.authorize`,
		k.kind, k.jid, k.aor, s.JID.Local, s.JID.Domain, s.State, string(dialog), s.LastBody,
		nullTime(s.Updated), nullTime(s.RetryAt), int64(s.Attempts), s.Authorize)
	if err != nil {
		return fmt.Errorf("put subscription %s %s %s: %w", k.kind, k.jid, k.aor, err)
	}
	return nil
}

// DeleteSubscription removes the subscription keyed by (kind, jid.Bare(),
// aor); an absent one is ignored.
func (p *Postgres) DeleteSubscription(ctx context.Context, kind string, jid mapping.JID, aor string) error {
	if err := checkSubKey(kind, jid, aor); err != nil {
		return fmt.Errorf("delete subscription: %w", err)
	}
	k := subscriptionKey(kind, jid, aor)
	if _, err := p.pool.Exec(ctx, `DELETE FROM subscriptions WHERE kind = $1 AND jid = $2 AND aor = $3`, k.kind, k.jid, k.aor); err != nil {
		return fmt.Errorf("delete subscription %s %s %s: %w", k.kind, k.jid, k.aor, err)
	}
	return nil
}

// Subscriptions returns every subscription sorted by Kind, bare JID string,
// then AOR.
func (p *Postgres) Subscriptions(ctx context.Context) ([]mapping.Subscription, error) {
	rows, _ := p.pool.Query(ctx, `
		SELECT kind, aor, jid_local, jid_domain, state, dialog, last_body, updated, retry_at, attempts, authorize
		FROM subscriptions ORDER BY kind COLLATE "C", jid COLLATE "C", aor COLLATE "C"`)
	ss, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mapping.Subscription, error) {
		var s mapping.Subscription
		var dialog []byte
		var updated, retryAt *time.Time
		var attempts int64
		if err := row.Scan(&s.Kind, &s.AOR, &s.JID.Local, &s.JID.Domain, &s.State, &dialog, &s.LastBody, &updated, &retryAt, &attempts, &s.Authorize); err != nil {
			return s, err
		}
		var w wireDialog
		if err := json.Unmarshal(dialog, &w); err != nil {
			return s, fmt.Errorf("subscription %s %s %s: decode dialog: %w", s.Kind, s.JID, s.AOR, err)
		}
		d, err := w.dialog()
		if err != nil {
			return s, fmt.Errorf("subscription %s %s %s: %w", s.Kind, s.JID, s.AOR, err)
		}
		s.Dialog, s.LastBody, s.Attempts = d, cloneOrNil(s.LastBody), int(attempts)
		s.Updated, s.RetryAt = timeOrZero(updated), timeOrZero(retryAt)
		return s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	return ss, nil
}

// PutPresence inserts or replaces the presence keyed by p.From.String() in
// one statement.
func (p *Postgres) PutPresence(ctx context.Context, pr mapping.Presence) error {
	if err := checkPresence(pr); err != nil {
		return fmt.Errorf("put presence: %w", err)
	}
	doc, err := json.Marshal(toWirePresence(pr))
	if err != nil {
		return fmt.Errorf("put presence: encode: %w", err)
	}
	from := pr.From.String()
	_, err = p.pool.Exec(ctx, `
		INSERT INTO presences (from_jid, presence, updated) VALUES ($1, $2::jsonb, now())
		ON CONFLICT (from_jid) DO UPDATE SET presence = excluded.presence, updated = excluded.updated`,
		from, string(doc))
	if err != nil {
		return fmt.Errorf("put presence %s: %w", from, err)
	}
	return nil
}

// DeletePresence removes the presence keyed by from.String(); an absent one
// is ignored.
func (p *Postgres) DeletePresence(ctx context.Context, from mapping.JID) error {
	if err := checkPresenceKey(from); err != nil {
		return fmt.Errorf("delete presence: %w", err)
	}
	if _, err := p.pool.Exec(ctx, `DELETE FROM presences WHERE from_jid = $1`, from.String()); err != nil {
		return fmt.Errorf("delete presence %s: %w", from, err)
	}
	return nil
}

// Presences returns every presence sorted by From.String().
func (p *Postgres) Presences(ctx context.Context) ([]mapping.Presence, error) {
	rows, _ := p.pool.Query(ctx, `SELECT from_jid, presence FROM presences ORDER BY from_jid COLLATE "C"`)
	ps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mapping.Presence, error) {
		var from string
		var doc []byte
		if err := row.Scan(&from, &doc); err != nil {
			return mapping.Presence{}, err
		}
		var w wirePresence
		if err := json.Unmarshal(doc, &w); err != nil {
			return mapping.Presence{}, fmt.Errorf("presence %s: decode: %w", from, err)
		}
		return w.presence(), nil
	})
	if err != nil {
		return nil, fmt.Errorf("presences: %w", err)
	}
	return ps, nil
}

// nullTime is NULL for the zero time, else t as normTime keeps it.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = normTime(t)
	return &t
}

func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// wireMessage is the JSON form of mapping.XMPPMessage in outbox.message. It
// is spelled out so that renaming a Go field cannot orphan stored rows.
type wireMessage struct {
	ID      string       `json:"id,omitempty"`
	From    wireJID      `json:"from"`
	To      wireJID      `json:"to"`
	Type    string       `json:"type,omitempty"`
	Lang    string       `json:"lang,omitempty"`
	Body    string       `json:"body,omitempty"`
	Subject string       `json:"subject,omitempty"`
	Thread  string       `json:"thread,omitempty"`
	Error   *wireFailure `json:"error,omitempty"`
}

type wireJID struct {
	Local    string `json:"local,omitempty"`
	Domain   string `json:"domain,omitempty"`
	Resource string `json:"resource,omitempty"`
}

type wireFailure struct {
	Condition  string `json:"condition"`
	Status     int    `json:"status,omitempty"`
	Text       string `json:"text,omitempty"`
	Address    string `json:"address,omitempty"`
	RetryAfter int64  `json:"retry_after_ns,omitempty"`
}

func toWire(m mapping.XMPPMessage) wireMessage {
	w := wireMessage{
		ID: m.ID, Type: m.Type, Lang: m.Lang, Body: m.Body, Subject: m.Subject, Thread: m.Thread,
		From: wireJID(m.From), To: wireJID(m.To), Error: toWireFailure(m.Error),
	}
	return w
}

func (w wireMessage) message() mapping.XMPPMessage {
	m := mapping.XMPPMessage{
		ID: w.ID, Type: w.Type, Lang: w.Lang, Body: w.Body, Subject: w.Subject, Thread: w.Thread,
		From: mapping.JID(w.From), To: mapping.JID(w.To),
	}
	m.Error = w.Error.failure()
	return m
}
