package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"stox.dev/stox/internal/testenv"
	"stox.dev/stox/store/storetest"
)

// Postgres for tests: STOX_TEST_DSN names a server and a database we may
// CREATE DATABASE from (storetest.AdminDSN). Each run works in its own
// throwaway database (stox_test_<random>) and drops it at the end.

var (
	adminDSN   string // STOX_TEST_DSN or the default
	pgDown     string // why Postgres cannot be used; empty when it can
	suiteDSN   string // the run's database for the contract suite
	suiteOnce  sync.Once
	suiteStore *Postgres
	suiteErr   error
	createdDBs []string
	createdMu  sync.Mutex
)

func TestMain(m *testing.M) {
	adminDSN = storetest.AdminDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	conn, err := pgx.Connect(ctx, adminDSN)
	cancel()
	if err != nil {
		pgDown = fmt.Sprintf("Postgres at STOX_TEST_DSN (%s) does not answer: %v", adminDSN, err)
	} else {
		conn.Close(context.Background())
		if suiteDSN, err = createDB(); err != nil {
			pgDown = err.Error()
		}
	}
	code := m.Run()
	if suiteStore != nil {
		suiteStore.Close()
	}
	dropDBs()
	os.Exit(code)
}

// needPostgres skips tb when Postgres is unavailable, or fails it under CI.
func needPostgres(tb testing.TB) {
	tb.Helper()
	if pgDown == "" {
		return
	}
	testenv.Missing(tb, "%s", pgDown)
}

// createDB creates an empty database and returns its DSN; TestMain drops it.
func createDB() (string, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	name := "stox_test_" + hex.EncodeToString(rnd[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return "", fmt.Errorf("create test database: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create test database: %w", err)
	}
	createdMu.Lock()
	createdDBs = append(createdDBs, name)
	createdMu.Unlock()
	return storetest.WithDatabase(adminDSN, name), nil
}

func dropDBs() {
	if len(createdDBs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drop test databases:", err)
		return
	}
	defer conn.Close(ctx)
	for _, name := range createdDBs {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintln(os.Stderr, "drop test database:", err)
		}
	}
}

// postgresStore returns the run's Postgres store, emptied.
func postgresStore(tb testing.TB) Store {
	tb.Helper()
	needPostgres(tb)
	suiteOnce.Do(func() {
		suiteStore, suiteErr = OpenPostgres(context.Background(), suiteDSN, zap.NewNop())
	})
	if suiteErr != nil {
		tb.Fatal(suiteErr)
	}
	if _, err := suiteStore.pool.Exec(context.Background(), `TRUNCATE accounts, bindings, outbox, subscriptions, presences, calls RESTART IDENTITY`); err != nil {
		tb.Fatal(err)
	}
	return suiteStore
}

// stores lists every Store implementation; each opener returns an empty
// store (mautrix crypto/store_test.go style).
func stores() map[string]func(testing.TB) Store {
	return map[string]func(testing.TB) Store{
		"memory":   func(testing.TB) Store { return NewMemory() },
		"postgres": postgresStore,
	}
}
