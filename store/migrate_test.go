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
