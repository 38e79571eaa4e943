package mapping

import (
	"errors"
	"time"
)

// Values that cross between the stacks and the capabilities (im, presence):
// what a link says when it cannot take a stanza, where a SIP request goes,
// and how a SIP request is answered. The interfaces that use them are
// declared by the packages that consume them.

// ErrLinkDown is returned by a link that has no session to its peer.
var ErrLinkDown = errors.New("link down")

// ErrQueueFull is returned by a link whose bounded send queue is full.
var ErrQueueFull = errors.New("queue full")

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

// Outcome is the final answer a capability gives a SIP request it received.
type Outcome struct {
	Status     int
	Reason     string
	RetryAfter time.Duration // sent as Retry-After when non-zero (RFC 3261 §20.33)
}
