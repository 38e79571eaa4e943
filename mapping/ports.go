package mapping

import (
	"context"
	"errors"
	"time"
)

// The interfaces in this file are what the routing core consumes. The xmpp,
// sip and store packages implement them; cmd/stox wires them together.

// ErrLinkDown is returned by a link that has no session to its peer.
var ErrLinkDown = errors.New("link down")

// ErrQueueFull is returned by a link whose bounded send queue is full.
var ErrQueueFull = errors.New("queue full")

// XMPPLink is the core's view of the XEP-0114 component session.
type XMPPLink interface {
	// Up reports whether the component session is established.
	Up() bool
	// Send queues m for the XMPP server without blocking on the network.
	// It returns ErrLinkDown or ErrQueueFull when it cannot take m. Otherwise
	// ack (which may be nil) is called exactly once, from the link's own
	// goroutine: with nil once the server has processed every stanza up to m
	// (the link's ordering barrier); with a *Failure when an error bounce for
	// m arrived before that; or with another error when the session was lost
	// first, in which case the server may or may not have seen m.
	Send(m XMPPMessage, ack func(error)) error
}

// Target says where an outgoing SIP request goes.
type Target struct {
	URI         URI    // Request-URI
	Destination string // "transport:host:port" to send to; empty: resolve URI (RFC 3263)
}

// Response is the final response to a SIP request stox sent.
type Response struct {
	Status int
	Reason string
}

// SIPLink is the core's view of the SIP stack as a user agent client.
type SIPLink interface {
	// SendMessage sends m as an out-of-dialog MESSAGE to target and waits for
	// the final response. A transaction timeout is reported as an error.
	SendMessage(ctx context.Context, m SIPMessage, target Target) (Response, error)
}

// Locator answers where a SIP user of stox's own domain can be reached.
type Locator interface {
	// Bindings returns the live bindings of aor ("sip:user@domain") from the
	// registrar's memory; it must not touch the network or the database.
	Bindings(aor string) []Binding
	// AccountExists reports whether user is a SIP account stox serves.
	AccountExists(ctx context.Context, user string) (bool, error)
}

// Outbox is durable storage for accepted XMPP→SIP messages. A memory
// implementation keeps the same contract without surviving restarts.
type Outbox interface {
	// AppendOutbox stores entries in one transaction (one fsync) and returns
	// their ids in order.
	AppendOutbox(ctx context.Context, entries []OutboxEntry) ([]int64, error)
	// DeleteOutbox removes delivered or finally failed entries.
	DeleteOutbox(ctx context.Context, ids []int64) error
	// PendingOutbox returns every entry not yet deleted, oldest first.
	PendingOutbox(ctx context.Context) ([]OutboxEntry, error)
}

// Outcome is the final answer the core gives a SIP MESSAGE it received.
type Outcome struct {
	Status     int
	Reason     string
	RetryAfter time.Duration // sent as Retry-After when non-zero (RFC 3261 §20.33)
}
