package store

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"stox.dev/stox/mapping"
)

func TestMigrationsEmbedded(t *testing.T) {
	if LatestVersion() < 1 || len(migrations) != LatestVersion() {
		t.Fatalf("LatestVersion %d, %d migrations", LatestVersion(), len(migrations))
	}
}

// Two processes starting at once on an empty database: one migrates, the
// other waits on the advisory lock and finds nothing to do.
func TestMigrateConcurrent(t *testing.T) {
	needPostgres(t)
	dsn, err := createDB()
	must(t, err)
	ctx := t.Context()
	log := zaptest.NewLogger(t)

	var wg sync.WaitGroup
	versions := make([]int, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { versions[i], errs[i] = Migrate(ctx, dsn, log) })
	}
	wg.Wait()
	for i := range 2 {
		must(t, errs[i])
		equal(t, "version", versions[i], LatestVersion())
	}

	// Idempotent.
	v, err := Migrate(ctx, dsn, log)
	must(t, err)
	equal(t, "version on rerun", v, LatestVersion())

	conn, err := pgx.Connect(ctx, dsn)
	must(t, err)
	defer conn.Close(context.WithoutCancel(ctx))
	var n, maxV int
	must(t, conn.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &maxV))
	equal(t, "rows in schema_migrations", n, LatestVersion())
	equal(t, "max version", maxV, LatestVersion())

	p, err := OpenPostgres(ctx, dsn, log)
	must(t, err)
	defer p.Close()
	v, err = p.SchemaVersion(ctx)
	must(t, err)
	equal(t, "SchemaVersion", v, LatestVersion())
}

func TestMigrateBadDSN(t *testing.T) {
	if _, err := Migrate(t.Context(), "postgres://%zz", nil); err == nil {
		t.Fatal("Migrate with a malformed DSN succeeded")
	}
	if _, err := OpenPostgres(t.Context(), "postgres://%zz", nil); err == nil {
		t.Fatal("OpenPostgres with a malformed DSN succeeded")
	}
}

// Queries are logged at debug level, without their arguments.
func TestQueryLogging(t *testing.T) {
	needPostgres(t)
	core, logs := observer.New(zapcore.DebugLevel)
	p, err := OpenPostgres(t.Context(), suiteDSN, zap.New(core))
	must(t, err)
	defer p.Close()
	_, _, err = p.Account(t.Context(), "secret-user")
	must(t, err)
	found := false
	for _, e := range logs.FilterLoggerName("pgx").All() {
		m := e.ContextMap()
		if sql, _ := m["sql"].(string); e.Level == zapcore.DebugLevel && sql != "" && e.Message == "Query" {
			found = true
		}
		if _, ok := m["args"]; ok {
			t.Fatalf("query arguments logged: %v", m)
		}
	}
	if !found {
		t.Fatalf("no debug Query entry among %d pgx log entries", logs.Len())
	}
}

// migratedTo returns a fresh database migrated to version v.
func migratedTo(t *testing.T, v int) string {
	t.Helper()
	dsn, err := createDB()
	must(t, err)
	conn, err := pgx.Connect(t.Context(), dsn)
	must(t, err)
	defer conn.Close(context.WithoutCancel(t.Context()))
	got, err := migrateTo(t.Context(), conn, zaptest.NewLogger(t), v)
	must(t, err)
	equal(t, "version", got, v)
	return dsn
}

// A database at version 2 (first-shape presence tables, even holding rows)
// migrates to the latest version: the v2 tables are gone and the presence
// state works.
func TestMigrateFromV2(t *testing.T) {
	needPostgres(t)
	ctx := t.Context()
	dsn := migratedTo(t, 2)
	conn, err := pgx.Connect(ctx, dsn)
	must(t, err)
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `
		INSERT INTO authorizations (jid, aor, state) VALUES ('a@x', 'sip:a@y', 'both');
		INSERT INTO notification_dialogs (call_id, local_tag, expires, state) VALUES ('c', 'l', now(), 'active');
		INSERT INTO presence (entity, document) VALUES ('a@x', '{}');
		INSERT INTO accounts (user_name, realm) VALUES ('kept', 'r')`)
	must(t, err)

	v, err := Migrate(ctx, dsn, zaptest.NewLogger(t))
	must(t, err)
	equal(t, "version", v, LatestVersion())

	rows, _ := conn.Query(ctx, `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = 'public' ORDER BY table_name`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	must(t, err)
	equal(t, "tables", tables, []string{"accounts", "bindings", "calls", "outbox", "presences", "schema_migrations", "subscriptions"})

	p, err := OpenPostgres(ctx, dsn, zaptest.NewLogger(t))
	must(t, err)
	defer p.Close()
	_, ok, err := p.Account(ctx, "kept")
	must(t, err)
	equal(t, "account kept", ok, true)
	sub := fullSubscription(mapping.SIPWatcher, 1)
	must(t, p.PutSubscription(ctx, sub))
	subs, err := p.Subscriptions(ctx)
	must(t, err)
	equal(t, "subscriptions", subs, []mapping.Subscription{stored(sub)})
	must(t, p.PutPresence(ctx, fullPresence("r")))
	ps, err := p.Presences(ctx)
	must(t, err)
	equal(t, "presences", ps, []mapping.Presence{fullPresence("r")})
}

// Two processes upgrading a version-2 database at once both succeed.
func TestMigrateConcurrentFromV2(t *testing.T) {
	needPostgres(t)
	dsn := migratedTo(t, 2)
	var wg sync.WaitGroup
	versions, errs := make([]int, 2), make([]error, 2)
	for i := range 2 {
		wg.Go(func() { versions[i], errs[i] = Migrate(t.Context(), dsn, zaptest.NewLogger(t)) })
	}
	wg.Wait()
	for i := range 2 {
		must(t, errs[i])
		equal(t, "version", versions[i], LatestVersion())
	}
}
