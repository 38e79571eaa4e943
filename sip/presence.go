package sip

import (
	"context"
	"sync/atomic"

	"stox.dev/stox/mapping"
)

// PresenceHandler is what the SIP stack needs from the presence service
// (docs/presence-contract.md): it decides SUBSCRIBE (stox as notifier,
// RFC 6665 §4.2), NOTIFY (stox as subscriber, §4.1.3) and PUBLISH (stox as
// the presence agent of its own users, RFC 3903). Each method is called on
// the transaction's goroutine and blocks until its final outcome.
type PresenceHandler interface {
	Subscribe(ctx context.Context, r mapping.SubscribeRequest) mapping.SubscribeOutcome
	Notify(ctx context.Context, r mapping.NotifyRequest) mapping.Outcome
	Publish(ctx context.Context, r mapping.PublishRequest) mapping.PublishOutcome
}

// RegistrationObserver is optional: when the PresenceHandler implements it,
// the registrar reports every change of an AOR's live binding count. Calls
// come from one goroutine owned by Run, outside the registrar's locks, and
// are coalesced per AOR: live is the count at the time of the call.
type RegistrationObserver interface {
	BindingsChanged(aor string, live int)
}

type presenceBox struct{ h PresenceHandler }

// presenceSlot holds the handler; a zero value means none.
type presenceSlot = atomic.Pointer[presenceBox]

// SetPresence sets the presence service; call it before Run. With nil (the
// default) SUBSCRIBE and PUBLISH are answered 489 and NOTIFY 481.
func (s *Stack) SetPresence(h PresenceHandler) {
	if h == nil {
		s.pres.Store(nil)
		return
	}
	s.pres.Store(&presenceBox{h})
}

func (s *Stack) presence() PresenceHandler {
	if b := s.pres.Load(); b != nil {
		return b.h
	}
	return nil
}
