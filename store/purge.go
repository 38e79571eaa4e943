package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// BindingPurger is the part of a Store PurgeBindings uses.
type BindingPurger interface {
	PurgeExpiredBindings(ctx context.Context, now time.Time) (int, error)
}

// PurgeBindings removes expired bindings at once and then every
// interval until ctx ends, which returns nil. The registrar deletes a binding
// when it expires, but not one that expired while stox was down or whose
// delete was dropped; this catches those. A failed purge is logged and tried
// again at the next tick; a purge another node is running (ErrPurgeBusy) is
// skipped. purged, when not nil, is told how many rows each purge removed.
func PurgeBindings(ctx context.Context, st BindingPurger, every time.Duration, log *zap.Logger, purged func(n int)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := st.PurgeExpiredBindings(ctx, time.Now())
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrPurgeBusy):
			log.Debug("binding purge skipped: another node is purging")
		case err != nil:
			log.Warn("binding purge failed; retrying at the next interval", zap.Duration("interval", every), zap.Error(err))
		default:
			if purged != nil {
				purged(n)
			}
			if n > 0 {
				log.Info("purged expired bindings", zap.Int("count", n))
			} else {
				log.Debug("purged expired bindings", zap.Int("count", 0))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// CallPurger is the part of a Store PurgeCallRecords uses.
type CallPurger interface {
	PurgeCalls(ctx context.Context, before time.Time) (int, error)
}

// PurgeCallRecords removes the records of calls that ended more than
// retention ago, at once and then every interval until ctx ends, which
// returns nil (docs/store-calls.md, "Retention"). Open calls are never
// removed. A failed purge is logged and tried again at the next tick.
// purged, when not nil, is told how many records each purge removed.
func PurgeCallRecords(ctx context.Context, st CallPurger, every, retention time.Duration, log *zap.Logger, purged func(n int)) error {
	if every <= 0 || retention <= 0 {
		return fmt.Errorf("purge call records: interval %v and retention %v must be positive", every, retention)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := st.PurgeCalls(ctx, time.Now().Add(-retention))
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			log.Warn("call record purge failed; retrying at the next interval", zap.Duration("interval", every), zap.Error(err))
		default:
			if purged != nil {
				purged(n)
			}
			if n > 0 {
				log.Info("purged call records", zap.Int("count", n), zap.Duration("retention", retention))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
