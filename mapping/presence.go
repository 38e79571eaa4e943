package mapping

import "time"

// Presence model shared by the xmpp, sip, presence and store packages
// (RFC 8048). The translators between Presence and PIDF live in pidf.go;
// the state machines live in package presence.

// Presence is a <presence/> stanza as stox handles it (RFC 6121 §4).
type Presence struct {
	ID       string
	From     JID
	To       JID
	Type     string // "" (available), "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"
	Show     string // "", "away", "chat", "dnd", "xa" (RFC 6121 §4.7.2.1)
	Status   []Text // <status/>, one per xml:lang (RFC 6121 §4.7.2.2)
	Priority int    // -128..127 (RFC 6121 §4.7.2.3)
	Lang     string // stanza xml:lang
	Error    *Failure
}

// Text is a human-readable string with its language.
type Text struct {
	Lang  string
	Value string
}

// PIDF is a presence document (RFC 3863) with the parts RFC 8048 §6 maps:
// tuples with basic status, notes, contact priority, the
// <show xmlns='jabber:client'/> extension inside <status/>, and RPID person
// activities (RFC 4480).
type PIDF struct {
	Entity     string // pres: or sip: URI of the presentity
	Tuples     []Tuple
	Activities []string // RPID activities of the person: "away", "busy", "on-the-phone", "vacation", ...
	Notes      []Text   // person- or document-level notes
}

// Tuple is one PIDF tuple (RFC 3863 §4.1); stox maps one XMPP resource to
// one tuple whose id is "ID-" + resource (RFC 8048 §6.2).
type Tuple struct {
	ID       string
	Basic    string  // "open" or "closed"
	Show     string  // jabber:client show inside <status/>
	Contact  string  // contact URI
	Priority float64 // contact priority 0..1 (RFC 3863 §4.1.5); -1 when absent
	Notes    []Text
}

// Dialog is the SIP dialog of one subscription (RFC 3261 §12, RFC 6665
// §4), kept in the store so that it survives restarts.
type Dialog struct {
	CallID       string
	LocalTag     string
	RemoteTag    string
	LocalURI     string // our address in the dialog (From as subscriber, To as notifier)
	RemoteURI    string
	LocalCSeq    uint32
	RemoteCSeq   uint32
	RouteSet     []string // Record-Route values, in the order to use as Route
	RemoteTarget string   // the peer's Contact URI
	Destination  string   // "transport:ip:port" of the next hop; empty: resolve RemoteTarget / route set
	Event        string   // "presence"
	EventID      string   // id parameter of the Event header, if any
	Expires      time.Time
}

// Subscription states (RFC 6665 §4.1.3, RFC 8048 §5).
const (
	SubNeutral    = "neutral" // sent SUBSCRIBE, no NOTIFY yet (RFC 8048 §5.2.1)
	SubPending    = "pending"
	SubActive     = "active"
	SubTerminated = "terminated"
)

// Subscription kinds: who watches whom through stox.
const (
	// SIPWatcher: a SIP user watches an XMPP user; stox is the notifier.
	SIPWatcher = "sip-watcher"
	// XMPPWatcher: an XMPP user watches a SIP user; stox is the subscriber
	// (or, for users of its own registrar, their presence agent).
	XMPPWatcher = "xmpp-watcher"
)

// Subscription is one watcher/presentity pair with its dialog and state.
// JID is always the XMPP party's bare JID and AOR the SIP party's AOR
// ("sip:user@domain"), whichever of them watches.
type Subscription struct {
	Kind      string // SIPWatcher or XMPPWatcher
	JID       JID    // bare
	AOR       string
	State     string // Sub* constants
	Dialog    Dialog
	LastBody  []byte    // last PIDF sent (SIPWatcher) or received (XMPPWatcher)
	Updated   time.Time // last state change
	RetryAt   time.Time // next refresh or retry (XMPPWatcher)
	Attempts  int       // consecutive transient failures
	Authorize bool      // XMPPWatcher: the XMPP user has been told "subscribed"
}

// SubscribeRequest is a SUBSCRIBE stox received as notifier: a SIP user
// watching an XMPP user (RFC 8048 §5.3, RFC 6665 §4.2). The SIP stack has
// authenticated the watcher and filled Dialog from the request as the
// notifier sees it: LocalTag is the To tag stox uses (generated for an
// initial SUBSCRIBE), RemoteTag the From tag, RemoteCSeq the CSeq,
// RemoteTarget the Contact, RouteSet from Record-Route, Destination the
// request's source.
type SubscribeRequest struct {
	Dialog     Dialog
	Watcher    URI           // From
	Presentity URI           // Request-URI
	Event      string        // Event header package, e.g. "presence"
	Expires    time.Duration // requested; negative when the header is absent (RFC 3856 §6.4: 3600 s)
	Accept     []string      // Accept header media types
	Initial    bool          // no To tag: creates the dialog
}

// SubscribeOutcome is the final response to a SUBSCRIBE.
type SubscribeOutcome struct {
	Status     int
	Reason     string
	Expires    time.Duration // granted, for the Expires header of a 2xx
	MinExpires time.Duration // for 423 (RFC 6665 §4.2.1.1)
	RetryAfter time.Duration
}

// NotifyRequest is a NOTIFY stox received as subscriber, for an XMPP user
// watching a SIP user (RFC 8048 §5.2, §6.3). LocalTag is stox's From tag
// of the SUBSCRIBE, RemoteTag the notifier's tag.
type NotifyRequest struct {
	CallID      string
	LocalTag    string
	RemoteTag   string
	CSeq        uint32
	Event       string
	State       string        // Subscription-State value: "active", "pending", "terminated"
	Reason      string        // reason parameter of a terminated state
	Expires     time.Duration // expires parameter, when present
	RetryAfter  time.Duration // retry-after parameter, when present
	ContentType string
	Body        []byte
	Contact     string // the notifier's Contact (remote target refresh)
}

// PublishRequest is a PUBLISH (RFC 3903) for a user of stox's own
// registrar: stox is that user's presence agent.
type PublishRequest struct {
	Presentity  URI
	ETag        string        // SIP-If-Match; empty for an initial PUBLISH
	Expires     time.Duration // negative when absent (default 3600 s)
	ContentType string
	Body        []byte // empty for a refresh
}

// PublishOutcome is the final response to a PUBLISH.
type PublishOutcome struct {
	Status     int
	Reason     string
	ETag       string // SIP-ETag of a 2xx
	Expires    time.Duration
	MinExpires time.Duration // for 423
}
