package main

import (
	"context"
	"errors"
	"os"
	"time"

	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// accountsPoll is how often a running stox checks its accounts file for
// changes (README: changes take effect within 5 seconds).
const accountsPoll = 2 * time.Second

// accountReplacer is the memory store's side of a reload.
type accountReplacer interface {
	ReplaceAccounts(ctx context.Context, as []mapping.Account) error
}

// watchAccountsFile makes the accounts in path the store's, now and whenever
// the file changes (its identity, size or modification time, checked every
// poll) or a signal arrives on reload (SIGHUP), until ctx ends. A file that
// does not parse, or is gone, leaves the accounts as they are and is logged
// once per change; the next good version is loaded.
func watchAccountsFile(ctx context.Context, path string, st accountReplacer, poll time.Duration, reload <-chan os.Signal, log *zap.Logger) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	var last os.FileInfo // the version last read, good or bad; nil: none or gone
	check := func(force bool) {
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if last != nil || force {
				log.Warn("accounts file is gone; keeping the accounts loaded", zap.String("path", path))
			}
			last = nil
			return
		case err != nil:
			log.Error("accounts file: stat failed; keeping the accounts loaded", zap.String("path", path), zap.Error(err))
			return
		case !force && last != nil && os.SameFile(last, fi) && fi.Size() == last.Size() && fi.ModTime().Equal(last.ModTime()):
			return
		}
		last = fi
		as, err := readAccountsFile(path)
		if err == nil {
			err = st.ReplaceAccounts(ctx, as)
		}
		if err != nil {
			log.Error("accounts file not reloaded; keeping the accounts loaded", zap.String("path", path), zap.Error(err))
			return
		}
		log.Info("accounts file reloaded", zap.String("path", path), zap.Int("accounts", len(as)))
	}
	check(false)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			check(false)
		case <-reload:
			check(true)
		}
	}
}
