package mapping

// Calls (docs/calls.md): the values that cross between the stacks, the calls
// capability and the media relay. A call has two legs: a Jingle session on
// the XMPP side (XEP-0166/0167/0176/0320) and an INVITE dialog on the SIP
// side (RFC 3261, RFC 3264). Media descriptions of both legs are expressed in
// one neutral form, Media, which the translators in jingle.go and sdp.go
// convert to and from the two wire forms.

// Codec is one RTP payload type (XEP-0167 §5 <payload-type/>; RFC 4566
// a=rtpmap/a=fmtp).
type Codec struct {
	PT       uint8  // payload type number
	Name     string // encoding name as written by the peer: "opus", "PCMU", "telephone-event"
	Clock    uint32 // clock rate in Hz
	Channels uint16 // 0 means 1
	Fmtp     string // format parameters, "name=value;name=value" (order kept)
	Ptime    int    // ms, 0 when absent
	FB       []RTCPFB
}

// RTCPFB is one RTCP feedback mechanism (RFC 4585 §4.2, XEP-0293).
type RTCPFB struct {
	Type    string
	Subtype string
}

// Direction is the media direction of a stream as written by the side that
// describes it (RFC 3264 §5.1; XEP-0166 senders).
type Direction string

// The four directions of RFC 3264 §5.1.
const (
	SendRecv Direction = "sendrecv"
	SendOnly Direction = "sendonly"
	RecvOnly Direction = "recvonly"
	Inactive Direction = "inactive"
)

// Candidate is an ICE candidate (RFC 8445 §5.1; XEP-0176 §5 <candidate/>;
// RFC 8839 §5.1 a=candidate).
type Candidate struct {
	Foundation string
	Component  int    // 1 RTP, 2 RTCP
	Protocol   string // "udp" (lower case)
	Priority   uint32
	IP         string
	Port       int
	Type       string // host, srflx, prflx, relay
	RelAddr    string
	RelPort    int
	Generation int
	ID         string // Jingle candidate id; none in SDP
	TCPType    string
}

// Fingerprint is a DTLS certificate fingerprint with the DTLS role
// (XEP-0320; RFC 8122 a=fingerprint, RFC 4145 a=setup).
type Fingerprint struct {
	Hash  string // hash function, lower case: "sha-256"
	Value string // upper-case hex pairs separated by ':'
	Setup string // actpass, active, passive
}

// Crypto is an SDES key (RFC 4568 a=crypto; XEP-0167 §7 <crypto/>).
type Crypto struct {
	Tag           int
	Suite         string
	KeyParams     string // "inline:…"; a secret: never logged
	SessionParams string
}

// HdrExt is an RTP header extension (RFC 8285 a=extmap; XEP-0294).
type HdrExt struct {
	ID        int
	URI       string
	Direction Direction // empty when not given
}

// Media is one m= line / one Jingle <content/> with an RTP description, in
// the subset stox understands: audio streams over RTP, with or without ICE,
// DTLS-SRTP or SDES.
type Media struct {
	Mid     string // SDP a=mid; Jingle content name
	Kind    string // "audio", "video", …
	Profile string // RTP/AVP, RTP/SAVP, RTP/SAVPF, UDP/TLS/RTP/SAVPF
	Addr    string // connection address (c=); empty with ICE-only Jingle
	Port    int    // transport port (m=); 0 rejects the stream
	Codecs  []Codec
	// Fmt is the raw format list of the m= line, kept for media that are
	// not RTP (m=application … webrtc-datachannel) so that an answer can
	// reject them with the same line (RFC 3264 §6). MarshalSDP writes the
	// codecs' payload types instead when there are codecs.
	Fmt       []string
	Direction Direction
	RTCPMux   bool
	RTCPRsize bool
	SSRC      uint32 // first a=ssrc / <description ssrc>, 0 when absent
	CNAME     string
	HdrExts   []HdrExt

	// ICE (RFC 8839; XEP-0176).
	ICEUfrag        string
	ICEPwd          string
	ICELite         bool
	Candidates      []Candidate
	EndOfCandidates bool

	Fingerprint *Fingerprint // DTLS-SRTP (RFC 5763; XEP-0320)
	Crypto      []Crypto     // SDES (RFC 4568)
}

// Session is a whole offer or answer: the streams, in order, and the BUNDLE
// group (RFC 8843; XEP-0338) when there is one.
type Session struct {
	Media  []Media
	Bundle []string // mids of the BUNDLE group, in order
	// Origin of the SDP (RFC 4566 §5.2), kept so an updated offer can
	// increment the version.
	Origin Origin
}

// Origin is the o= line of an SDP.
type Origin struct {
	User    string
	ID      uint64
	Version uint64
	Addr    string
}

// CallKey names one leg of a call inside the stack that carries it: the
// sip stack's key for an INVITE dialog, the calls capability's key for a
// Jingle session. It is opaque to everyone else.
type CallKey string

// Invite is an initial INVITE received by the sip stack (RFC 3261 §13.3).
type Invite struct {
	Key         CallKey
	RequestURI  URI
	From        URI
	FromDisplay string
	To          URI
	CallID      string
	SDP         []byte // the offer; empty for an offerless INVITE (RFC 3261 §13.2.1)
	Source      string // "transport:ip:port" the request came from
}

// Dial is an outgoing call the calls capability asks the sip stack to place.
type Dial struct {
	From        URI
	FromDisplay string
	To          URI
	Target      Target // where to send it (a binding or the trunk)
	SDP         []byte // the offer
	// Key, when set, is the key the stack gives the dialog. The calls
	// capability chooses it so that it can index the call before the INVITE
	// leaves: a fast 180 could otherwise be reported before Dial returns.
	Key CallKey
}

// CallEventKind says what happened on a SIP dialog.
type CallEventKind int

// What the sip stack reports on a dialog (see CallEvent).
const (
	CallProgress  CallEventKind = iota + 1 // 180/183 to our INVITE (Status, SDP for early media)
	CallAnswered                           // 2xx to our INVITE (SDP = the answer); the stack sent the ACK
	CallFailed                             // final 3xx–6xx to our INVITE, or its timeout (Status 408)
	CallConfirmed                          // the ACK for our 2xx arrived
	CallCancelled                          // CANCEL for an INVITE we had not answered; the stack answered 487
	CallHungUp                             // BYE from the peer; the stack answered 200
	CallReoffered                          // the peer sent a re-INVITE/UPDATE that the stack answered itself (SDP = the new offer)
	CallLost                               // the dialog died without a BYE (no ACK for our 2xx, BYE transaction failed, …)
)

// CallEvent is what the sip stack reports about a dialog it holds for the
// calls capability.
type CallEvent struct {
	Key    CallKey
	Kind   CallEventKind
	Status int    // SIP status for CallProgress, CallFailed; the RFC 3326 Reason cause for CallHungUp when given
	Reason string // reason phrase or Reason header text
	SDP    []byte
}

// DialogRecord is what is needed to end a confirmed dialog after a
// restart: enough to build a BYE (RFC 3261 §12.2.1.1, §15).
type DialogRecord struct {
	CallID       string
	LocalTag     string
	RemoteTag    string
	LocalURI     string // From of our requests, as a URI string
	RemoteURI    string // To of our requests
	RemoteTarget string // the peer's Contact
	RouteSet     []string
	LocalCSeq    uint32
	Destination  string // "transport:ip:port" to send to when no route applies
}

// JingleIQ is a Jingle IQ of type set, received from or sent to the XMPP
// server (XEP-0166 §7).
type JingleIQ struct {
	ID     string // the IQ id (inbound)
	From   JID
	To     JID
	Jingle Jingle
}

// JingleError is the error stox answers a Jingle IQ with: an RFC 6120
// condition and, when it applies, the Jingle-specific one (XEP-0166 §11:
// "unknown-session", "out-of-order", "tie-break", "unsupported-info").
type JingleError struct {
	Condition Condition
	Jingle    string
	Text      string
}

func (e *JingleError) Error() string {
	s := string(e.Condition)
	if e.Jingle != "" {
		s += "/" + e.Jingle
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// JMI is a Jingle Message Initiation message (XEP-0353): Kind is the
// element name (propose, ringing, proceed, reject, retract, accept, finish),
// ID the session id it is about.
type JMI struct {
	From   JID
	To     JID
	Kind   string
	ID     string
	Media  []string // the <description media=…/> of a propose
	Reason string   // the Jingle reason of reject, retract or finish ("busy", "cancel", …)
}
