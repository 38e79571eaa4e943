package im

import (
	"context"

	"stox.dev/stox/mapping"
)

// The interfaces in this file are what the IM service consumes. The xmpp,
// sip and store packages implement them; cmd/stox wires them together.

// XMPPLink is the service's view of the XEP-0114 component session.
type XMPPLink interface {
	// Up reports whether the component session is established.
	Up() bool
	// Send queues m for the XMPP server without blocking on the network.
	// It returns mapping.ErrLinkDown or mapping.ErrQueueFull when it cannot
	// take m. Otherwise ack (which may be nil) is called exactly once, from
	// the link's own goroutine: with nil once the server has processed
	// every stanza up to m (the link's ordering barrier); with a
	// *mapping.Failure when an error bounce for m arrived before that; or
	// with another error when the session was lost first, in which case
	// the server may or may not have seen m.
	Send(m mapping.XMPPMessage, ack func(error)) error
}

// SIPLink is the service's view of the SIP stack as a user agent client.
type SIPLink interface {
	// SendMessage sends m as an out-of-dialog MESSAGE to target and waits for
	// the final response. A transaction timeout is reported as an error.
	SendMessage(ctx context.Context, m mapping.SIPMessage, target mapping.Target) (mapping.Response, error)
}

// Locator answers where a SIP user of stox's own domain can be reached.
type Locator interface {
	// Bindings returns the live bindings of aor ("sip:user@domain") from the
	// registrar's memory; it must not touch the network or the database.
	Bindings(aor string) []mapping.Binding
	// AccountExists reports whether user is a SIP account stox serves.
	AccountExists(ctx context.Context, user string) (bool, error)
}

// Outbox is durable storage for accepted XMPP→SIP messages. A memory
// implementation keeps the same contract without surviving restarts.
type Outbox interface {
	// AppendOutbox stores entries in one transaction (one fsync) and returns
	// their ids in order.
	AppendOutbox(ctx context.Context, entries []mapping.OutboxEntry) ([]int64, error)
	// DeleteOutbox removes delivered or finally failed entries.
	DeleteOutbox(ctx context.Context, ids []int64) error
	// PendingOutbox returns every entry not yet deleted, oldest first.
	PendingOutbox(ctx context.Context) ([]mapping.OutboxEntry, error)
}
