package mapping

import "time"

// Call directions as recorded.
const (
	XMPPToSIP = "xmpp-sip"
	SIPToXMPP = "sip-xmpp"
)

// CallRecord is what the store keeps of one call: who, when, how it ended,
// and what is needed to end both legs of a call a crashed stox left behind
// (docs/calls.md, "Call records").
type CallRecord struct {
	ID        string // stox's id of the call, unique
	Direction string // XMPPToSIP or SIPToXMPP
	XMPPPeer  JID    // the XMPP user (full JID once known)
	Contact   JID    // the SIP party's JID on the XMPP side, with its resource
	SID       string // Jingle session id
	SIPPeer   string // the SIP party's URI
	Dialog    *DialogRecord
	Codec     string // the voice codec relayed, e.g. "PCMU/8000"
	Started   time.Time
	Answered  time.Time // zero when never answered
	Ended     time.Time // zero while the call is up
	Outcome   string    // set when Ended is: answered, busy, declined, cancelled, no-answer, rejected, failed, gateway-restart
}
