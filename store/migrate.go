package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// migrationLock is the pg_advisory_lock key that serialises migrators
// ("stox" in ASCII).
const migrationLock = 0x73746f78

// Migrate connects to dsn and applies the embedded migrations not yet
// applied, then returns the schema version (for `stox migrate`). It is
// idempotent and safe when several processes start at once.
func Migrate(ctx context.Context, dsn string, log *zap.Logger) (version int, err error) {
	if log == nil {
		log = zap.NewNop()
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return migrate(ctx, conn, log)
}

// migrate applies pending migrations on conn under a session advisory lock,
// one transaction per file, each recorded in schema_migrations.
func migrate(ctx context.Context, conn *pgx.Conn, log *zap.Logger) (version int, err error) {
	return migrateTo(ctx, conn, log, latestVersion)
}

// migrateTo is migrate stopping at version target (tests build databases
// at an older version with it).
func migrateTo(ctx context.Context, conn *pgx.Conn, log *zap.Logger, target int) (version int, err error) {
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return 0, fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock)); uerr != nil && err == nil {
			err = fmt.Errorf("migrate: unlock: %w", uerr)
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY,
		applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return 0, fmt.Errorf("migrate: read version: %w", err)
	}
	if version > latestVersion {
		log.Warn("database schema is newer than this binary", zap.Int("db_version", version), zap.Int("binary_version", latestVersion))
		return version, nil
	}
	if version >= target {
		return version, nil
	}
	for _, m := range migrations[version:target] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// No arguments: simple protocol, so a file may hold many statements.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version)
			return err
		})
		if err != nil {
			return version, fmt.Errorf("migrate: %s: %w", m.name, err)
		}
		version = m.version
		log.Info("applied migration", zap.String("file", m.name), zap.Int("version", version))
	}
	return version, nil
}
