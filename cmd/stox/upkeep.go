package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"stox.dev/stox/store"
)

// purgeEvery is how often stox purges expired bindings from Postgres.
const purgeEvery = time.Minute

// upkeep runs serve's housekeeping until ctx ends. With Postgres it purges
// expired bindings at start and every purgeEvery (one node at a time); with
// the memory store, which keeps no bindings of its own (the registrar holds
// them), it reloads the accounts file when it changes and on SIGHUP. SIGHUP
// never stops stox.
func upkeep(ctx context.Context, cfg Config, st gatewayStore, reg prometheus.Registerer, log *zap.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	g, gctx := errgroup.WithContext(ctx)
	reloads := false
	switch st := st.(type) {
	case *store.Postgres:
		purged := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stox_bindings_purged_total",
			Help: "Expired bindings removed from the store by the scheduled purge.",
		})
		reg.MustRegister(purged)
		g.Go(func() error {
			return store.PurgeBindings(gctx, st, purgeEvery, log.Named("purge"), func(n int) { purged.Add(float64(n)) })
		})
	case *store.Memory:
		if cfg.Store.AccountsFile != "" {
			reloads = true
			g.Go(func() error {
				return watchAccountsFile(gctx, cfg.Store.AccountsFile, st, accountsPoll, hup, log.Named("accounts"))
			})
		}
	}
	if cfg.Calls.RecordRetention.Duration > 0 && !cfg.Calls.Disabled {
		purged := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stox_call_records_purged_total",
			Help: "Ended call records older than calls.record_retention removed from the store.",
		})
		reg.MustRegister(purged)
		g.Go(func() error {
			return store.PurgeCallRecords(gctx, st, time.Hour, cfg.Calls.RecordRetention.Duration,
				log.Named("purge"), func(n int) { purged.Add(float64(n)) })
		})
	}
	if !reloads {
		g.Go(func() error {
			for {
				select {
				case <-gctx.Done():
					return nil
				case <-hup:
					log.Info("SIGHUP: nothing to reload (accounts are reloaded from store.accounts_file only)")
				}
			}
		})
	}
	return g.Wait()
}
