package sip

import (
	"context"

	"github.com/emiago/sipgo/sip"

	"stox.dev/stox/mapping"
)

// The stack serves the capabilities registered with it before Run: one small
// interface per capability, each registered once by cmd/stox. A request for
// a capability nobody registered gets the answer it got before that
// capability existed (docs/architecture.md, "Registering a capability").

// MessageHandler serves pager-mode MESSAGE requests (RFC 3428; package im).
// ReceiveSIP is called on the transaction's goroutine and blocks until the
// final outcome. Without one, MESSAGE is answered 405 with Allow.
type MessageHandler interface {
	ReceiveSIP(ctx context.Context, m mapping.SIPMessage) mapping.Outcome
}

// PresenceHandler serves the RFC 8048 requests (package presence): SUBSCRIBE
// with stox as notifier (RFC 6665 §4.2), NOTIFY with stox as subscriber
// (§4.1.3) and PUBLISH with stox as the presence agent of its own users
// (RFC 3903). Each method is called on the transaction's goroutine and
// blocks until its final outcome. Without one, SUBSCRIBE is answered 489,
// NOTIFY 481 and PUBLISH 405, and PUBLISH is not in Allow.
type PresenceHandler interface {
	Subscribe(ctx context.Context, r mapping.SubscribeRequest) mapping.SubscribeOutcome
	Notify(ctx context.Context, r mapping.NotifyRequest) mapping.Outcome
	Publish(ctx context.Context, r mapping.PublishRequest) mapping.PublishOutcome
}

// RegistrationObserver is told of every change of an AOR's live binding
// count (REGISTER, un-REGISTER, expiry found by the sweep). Calls come from
// one goroutine owned by Run, outside the registrar's locks, coalesced per
// AOR: live is the count when the call is made, and a call is skipped when
// the count is the one last reported. The call may block (the registrar is
// not held up by it; later changes coalesce meanwhile) until ctx, Run's, is
// done.
type RegistrationObserver interface {
	BindingsChanged(ctx context.Context, aor string, live int)
}

// HandleMessages registers the capability that serves MESSAGE.
func (s *Stack) HandleMessages(h MessageHandler) {
	s.register("message", func() bool { ok := s.messages == nil; s.messages = h; return ok })
}

// HandlePresence registers the capability that serves SUBSCRIBE, NOTIFY and
// PUBLISH.
func (s *Stack) HandlePresence(h PresenceHandler) {
	s.register("presence", func() bool { ok := s.presence == nil; s.presence = h; return ok })
}

// ObserveRegistrations registers the observer of binding changes.
func (s *Stack) ObserveRegistrations(o RegistrationObserver) {
	s.register("registration observer", func() bool { ok := s.regObserver == nil; s.regObserver = o; return ok })
}

// register applies set, which reports false when a handler of that kind was
// already there. Registration is wiring done by cmd/stox before Run; doing
// it twice or late is a programming error.
func (s *Stack) register(what string, set func() bool) {
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if running {
		panic("sip: " + what + " registered after Run")
	}
	if !set() {
		panic("sip: " + what + " handler registered twice")
	}
}

// allowHeader is the Allow header: the methods the stack itself handles and
// those of the registered capabilities (RFC 3261 §20.5).
func (s *Stack) allowHeader() sip.Header {
	v := "ACK, BYE, CANCEL, OPTIONS, REGISTER"
	if s.messages != nil {
		v += ", MESSAGE"
	}
	if s.presence != nil {
		v += ", NOTIFY, PUBLISH, SUBSCRIBE"
	}
	if s.calls != nil {
		v += ", INVITE, INFO, UPDATE"
	}
	return sip.NewHeader("Allow", v)
}
