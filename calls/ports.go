package calls

import (
	"context"
	"time"

	"stox.dev/stox/mapping"
)

// The interfaces in this file are what the calls capability consumes. The
// xmpp and sip stacks, the media relay and the store implement them;
// cmd/stox wires them together.

// XMPPLink is the capability's view of the XEP-0114 component.
type XMPPLink interface {
	// Up reports whether the component session is established.
	Up() bool
	// SendJingle sends a Jingle IQ set and waits for its answer: nil for a
	// result, a *mapping.JingleError for an IQ error, another error when no
	// answer came.
	SendJingle(ctx context.Context, from, to mapping.JID, j mapping.Jingle) error
	// PostJingle queues a Jingle IQ set in order with the others and does
	// not wait for its answer (a session-info no answer changes).
	PostJingle(from, to mapping.JID, j mapping.Jingle) error
	// SendJMI queues a XEP-0353 message without blocking on the network.
	SendJMI(m mapping.JMI) error
}

// SIPLink is the capability's view of the SIP stack's INVITE dialogs. Its
// events come back through Service.Invite and Service.CallEvent.
type SIPLink interface {
	Dial(ctx context.Context, d mapping.Dial) (mapping.CallKey, error)
	Respond(key mapping.CallKey, status int, reason string, sdp []byte, retryAfter time.Duration) error
	Hangup(ctx context.Context, key mapping.CallKey, status, cause int, text string) error
	Reinvite(ctx context.Context, key mapping.CallKey, sdp []byte) ([]byte, error)
	DialogRecord(key mapping.CallKey) (mapping.DialogRecord, bool)
	ByeRecord(ctx context.Context, r mapping.DialogRecord, cause int, text string) error
}

// Locator answers where a SIP user of stox's own domain can be reached.
type Locator interface {
	// Bindings returns the live bindings of aor from memory.
	Bindings(aor string) []mapping.Binding
	// AccountExists reports whether user is a SIP account stox serves.
	AccountExists(ctx context.Context, user string) (bool, error)
}

// Media opens the relay of one call (package media). Open fails with
// ErrNoCapacity wrapped when no call may be added now.
type Media interface {
	Open(id string) (MediaCall, error)
}

// RTPChecker is what a Media may also do: tell at once whether an offer's
// stream can be the call's SIP leg (its profile, its a=crypto lines), so an
// offer the relay would refuse is answered 488 before anyone rings.
type RTPChecker interface {
	CheckRTP(remote mapping.Media) error
}

// MediaCall is the relay of one call: a WebRTC leg toward XMPP (ICE,
// DTLS-SRTP) and an RTP leg toward SIP, both described as mapping.Media.
type MediaCall interface {
	// AnswerWebRTC answers the XMPP side's offer with the given codecs
	// (a subset of the offer, with its payload type numbers).
	AnswerWebRTC(offer mapping.Media, codecs []mapping.Codec) (mapping.Media, error)
	// OfferWebRTC makes stox's offer toward XMPP; SetWebRTCAnswer takes
	// the answer to it.
	OfferWebRTC(codecs []mapping.Codec) (mapping.Media, error)
	SetWebRTCAnswer(answer mapping.Media) error
	// AddRemoteCandidate adds a trickled candidate of the XMPP side.
	AddRemoteCandidate(c mapping.Candidate) error
	// LocalRTP allocates the SIP leg and describes it; SetRemoteRTP says
	// where the SIP side receives.
	LocalRTP(codecs []mapping.Codec) (mapping.Media, error)
	SetRemoteRTP(remote mapping.Media) error
	// AnswerRTP answers the SIP side's offer: SetRemoteRTP and the
	// description of stox's side in one step, RTP/SAVP with the relay's
	// own a=crypto key when the offer is SDES (RFC 4568).
	AnswerRTP(remote mapping.Media, codecs []mapping.Codec) (mapping.Media, error)
	// Done is closed when the relay ended on its own (Err says why) or
	// was closed.
	Done() <-chan struct{}
	Err() error
	Close() error
}

// Store keeps a record of each call (package store).
type Store interface {
	PutCall(ctx context.Context, r mapping.CallRecord) error
	OpenCalls(ctx context.Context) ([]mapping.CallRecord, error)
}
