package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.uber.org/zap"

	"stox.dev/stox/store"
)

// migrateCmd applies the embedded migrations; serve does the same at
// start, so this is for operators who migrate before a rollout.
func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_, path, _, err := configFlags("migrate", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if cfg.Store.DSN == "" {
		return errors.New("migrate: store.dsn is not set (the in-memory store has no schema)")
	}
	v, err := store.Migrate(ctx, cfg.Store.DSN, zap.NewNop())
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintf(stdout, "schema version %d\n", v)
	return nil
}
