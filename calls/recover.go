package calls

import (
	"context"
	"time"

	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// leftBehind reads the records of calls a previous run did not end.
func (s *Service) leftBehind(ctx context.Context) []mapping.CallRecord {
	if s.store == nil {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	open, err := s.store.OpenCalls(lctx)
	if err != nil {
		s.log.Warn("calls left by a previous run not read", zap.Error(err))
	}
	return open
}

// recoverCalls ends the calls a previous run of stox left behind (it
// crashed or was killed): a BYE on the saved SIP dialog, a session-terminate
// to the XMPP device, and the record closed with outcome gateway-restart.
// The XMPP leg waits for the component link, up to a minute.
func (s *Service) recoverCalls(ctx context.Context, open []mapping.CallRecord) {
	if len(open) == 0 {
		return
	}
	s.log.Info("ending calls left by a previous run", zap.Int("calls", len(open)))
	if s.cfg.SIPReady != nil {
		select {
		case <-s.cfg.SIPReady:
		case <-ctx.Done():
			return
		}
	}
	for _, r := range open {
		if r.Dialog != nil {
			bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := s.s.ByeRecord(bctx, *r.Dialog, 0, "gateway restarted"); err != nil {
				s.log.Info("BYE for a call left behind", zap.String("call", r.ID), zap.Error(err))
			}
			cancel()
		}
	}
	deadline := time.Now().Add(time.Minute)
	for !s.x.Up() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, r := range open {
		if r.SID != "" && r.XMPPPeer.Resource != "" {
			j := mapping.Jingle{Action: mapping.ActSessionTerminate, SID: r.SID, Reason: mapping.NewJingleReason("gone", "gateway restarted")}
			jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := s.x.SendJingle(jctx, r.Contact, r.XMPPPeer, j); err != nil {
				s.log.Debug("session-terminate for a call left behind", zap.String("call", r.ID), zap.Error(err))
			}
			cancel()
		} else if r.SID != "" && r.Direction == mapping.SIPToXMPP {
			_ = s.x.SendJMI(mapping.JMI{From: r.Contact.Bare(), To: r.XMPPPeer.Bare(), Kind: "retract", ID: r.SID, Reason: "gone"})
		}
		r.Ended = s.cfg.Clock.Now()
		r.Outcome = "gateway-restart"
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := s.store.PutCall(pctx, r); err != nil {
			s.log.Warn("call record not closed", zap.String("call", r.ID), zap.Error(err))
		}
		cancel()
		s.cfg.Metrics.Ended(r.Direction, r.Outcome)
	}
}
