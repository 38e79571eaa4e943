package store

import (
	"context"
	"errors"
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
