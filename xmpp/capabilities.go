package xmpp

import (
	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// The component serves the capabilities registered with it before Run: one
// small interface per capability, each registered once by cmd/stox. A
// stanza for a capability nobody registered gets the answer it got before
// that capability existed (docs/architecture.md, "Registering a capability").

// MessageHandler serves inbound <message/> stanzas addressed to the
// component, including error bounces that matched no pending message
// (package im). ReceiveXMPP runs on the stream's reader while mellium holds
// the session's locks: it must not block, and must not send on the
// component synchronously.
type MessageHandler interface {
	ReceiveXMPP(m mapping.XMPPMessage)
}

// PresenceHandler serves inbound <presence/> stanzas (package presence),
// with the same constraints as MessageHandler.
type PresenceHandler interface {
	ReceivePresence(p mapping.Presence)
}

// LinkObserver is told each time the component session goes up or down,
// from the supervisor goroutine. LinkChanged must not block.
type LinkObserver interface {
	LinkChanged(up bool)
}

// HandleMessages registers the capability that serves <message/> stanzas.
// Without one, messages are answered with service-unavailable (RFC 6120
// §8.3.3.19).
func (c *Component) HandleMessages(h MessageHandler) {
	c.register("message", func() bool { ok := c.messages == nil; c.messages = h; return ok })
}

// HandlePresence registers the capability that serves <presence/> stanzas.
// Without one, presence is ignored, as a server ignores presence for a
// service it does not offer.
func (c *Component) HandlePresence(h PresenceHandler) {
	c.register("presence", func() bool { ok := c.presence == nil; c.presence = h; return ok })
}

// ObserveLink adds o to the observers of the link's state.
func (c *Component) ObserveLink(o LinkObserver) {
	c.register("link observer", func() bool { c.observers = append(c.observers, o); return true })
}

// register applies set, which reports false when a handler of that kind was
// already there. Registration is wiring done by cmd/stox before Run; doing
// it twice or late is a programming error.
func (c *Component) register(what string, set func() bool) {
	if c.running.Load() {
		panic("xmpp: " + what + " registered after Run")
	}
	if !set() {
		panic("xmpp: " + what + " handler registered twice")
	}
}

// routeIn hands an inbound message to its capability; a panic there is
// logged and contained, so one bad stanza never takes the link down.
func (c *Component) routeIn(m mapping.XMPPMessage) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic in MessageHandler.ReceiveXMPP", zap.Any("panic", r), zap.String("stanza_id", m.ID), zap.Stack("stack"))
		}
	}()
	c.messages.ReceiveXMPP(m)
}
