// Package storetest gives tests throwaway Postgres databases.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"stox.dev/stox/internal/testenv"
)

// AdminDSN is STOX_TEST_DSN, a server and database tests may CREATE
// DATABASE from, or by default the local server with trust authentication.
func AdminDSN() string {
	if dsn := os.Getenv("STOX_TEST_DSN"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewDatabase creates an empty database (stox_test_<random>) on the server
// of AdminDSN, drops it when tb ends and returns its DSN. Without a server it
// skips tb, or fails it when CI=true.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	admin := AdminDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		testenv.Missing(tb, "Postgres at STOX_TEST_DSN (%s) does not answer: %v", admin, err)
	}
	defer conn.Close(context.Background())
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := "stox_test_" + hex.EncodeToString(rnd[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
	})
	return WithDatabase(admin, name)
}

// WithDatabase returns dsn (URL or keyword/value form) pointing at database.
func WithDatabase(dsn, database string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + database
		return u.String()
	}
	return strings.TrimSpace(dsn) + " dbname=" + database
}
