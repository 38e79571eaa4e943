// Package mapping holds stox's neutral model of SIP–XMPP interworking and the
// pure translators between the two worlds: addresses and errors (RFC 7247,
// XEP-0106), instant messages (RFC 7572, RFC 3862 CPIM) and presence
// (RFC 8048, RFC 3863 PIDF).
//
// mapping is the lowest tier of stox (docs/architecture.md): it imports no
// other stox package and neither stack's library, and it is pure — no
// goroutine, lock, clock, logger or I/O — so every translation is a function
// over values, tested with tables, examples and fuzzing. The stacks (xmpp,
// sip) convert their wire types into the types declared here; the
// capabilities (im, presence) move those values between the stacks.
package mapping

import (
	"strings"
	"time"
)

// JID is an XMPP address in wire form: Local is the localpart exactly as it
// appears on the wire, that is already XEP-0106 escaped (o\27malley).
type JID struct {
	Local    string
	Domain   string
	Resource string
}

// String returns the JID in its textual wire form.
func (j JID) String() string {
	var b strings.Builder
	if j.Local != "" {
		b.WriteString(j.Local)
		b.WriteByte('@')
	}
	b.WriteString(j.Domain)
	if j.Resource != "" {
		b.WriteByte('/')
		b.WriteString(j.Resource)
	}
	return b.String()
}

// Bare returns the JID without its resource.
func (j JID) Bare() JID { return JID{Local: j.Local, Domain: j.Domain} }

// IsZero reports whether j is the zero JID.
func (j JID) IsZero() bool { return j == JID{} }

// URI is a SIP (or sips, im, pres) URI reduced to what interworking needs.
// User holds the user part percent-decoded (o'malley, fü, m&m); String
// re-encodes it per RFC 7247 §6.5 step 5.
type URI struct {
	Scheme string // "sip", "sips", "im" or "pres"
	User   string // decoded user part; empty for a host-only URI
	Host   string // host name or IP literal, without port
	Port   int    // 0 when absent
	GR     string // decoded value of the "gr" URI parameter (RFC 5627), mapped to a resource
}

// Binding is one registered contact of an address-of-record (RFC 3261 §10).
type Binding struct {
	AOR       string    // canonical "sip:user@domain"
	Contact   string    // Contact URI as registered
	Source    string    // "transport:ip:port" the REGISTER came from (NAT-friendly target)
	CallID    string    // Call-ID of the REGISTER that created or last refreshed it
	CSeq      uint32    // CSeq of that REGISTER
	Expires   time.Time // absolute expiry
	UserAgent string
}

// Account is a SIP user served by stox's registrar. Only digests are kept,
// never the password (RFC 3261 §22.4, RFC 7616 §3.4.2: HA1 = H(user:realm:pw)).
type Account struct {
	User      string // user part of the AOR, decoded
	Realm     string // digest realm, normally the SIP domain S
	HA1MD5    string // hex MD5(user:realm:password)
	HA1SHA256 string // hex SHA-256(user:realm:password)
	Display   string
	Created   time.Time
}

// XMPPMessage is a <message/> stanza as stox handles it (RFC 6121 §5,
// RFC 7572 §4 and §5 tables).
type XMPPMessage struct {
	ID      string
	From    JID
	To      JID
	Type    string // "", "normal", "chat", "groupchat", "headline" or "error"
	Lang    string // xml:lang
	Body    string
	Subject string
	Thread  string
	Error   *Failure // set when Type is "error"
}

// SIPMessage is a pager-mode MESSAGE request (RFC 3428).
type SIPMessage struct {
	RequestURI      URI
	From            URI
	FromDisplay     string
	To              URI
	CallID          string
	Subject         string
	ContentType     string // media type with parameters as received, e.g. "text/plain;charset=UTF-8"
	ContentLanguage string
	Body            []byte
}

// OutboxEntry is an accepted XMPP→SIP message awaiting delivery; with a
// durable store it survives restarts (docs/architecture.md, "Durability contract").
type OutboxEntry struct {
	ID       int64 // assigned by the store
	Message  XMPPMessage
	Accepted time.Time
	Attempts int
}

// Condition is an XMPP stanza error condition (RFC 6120 §8.3.3).
type Condition string

// The stanza error conditions of RFC 6120 §8.3.3.
const (
	BadRequest            Condition = "bad-request"
	Conflict              Condition = "conflict"
	FeatureNotImplemented Condition = "feature-not-implemented"
	Forbidden             Condition = "forbidden"
	Gone                  Condition = "gone"
	InternalServerError   Condition = "internal-server-error"
	ItemNotFound          Condition = "item-not-found"
	JIDMalformed          Condition = "jid-malformed"
	NotAcceptable         Condition = "not-acceptable"
	NotAllowed            Condition = "not-allowed"
	NotAuthorized         Condition = "not-authorized"
	PolicyViolation       Condition = "policy-violation"
	RecipientUnavailable  Condition = "recipient-unavailable"
	Redirect              Condition = "redirect"
	RegistrationRequired  Condition = "registration-required"
	RemoteServerNotFound  Condition = "remote-server-not-found"
	RemoteServerTimeout   Condition = "remote-server-timeout"
	ResourceConstraint    Condition = "resource-constraint"
	ServiceUnavailable    Condition = "service-unavailable"
	SubscriptionRequired  Condition = "subscription-required"
	UndefinedCondition    Condition = "undefined-condition"
	UnexpectedRequest     Condition = "unexpected-request"
)

// Failure is a delivery failure expressed in both worlds at once: the XMPP
// condition and the SIP status that RFC 7247 §7 maps it to.
type Failure struct {
	Condition  Condition
	Status     int           // SIP status code (4xx–6xx)
	Text       string        // XMPP <text/> or SIP reason phrase
	Address    string        // new address carried by gone/redirect (301/302 Contact)
	RetryAfter time.Duration // for SIP 503 / 480 answers produced by stox itself
}

func (f *Failure) Error() string {
	if f.Text != "" {
		return string(f.Condition) + ": " + f.Text
	}
	return string(f.Condition)
}

// Domains are the two domains stox serves: the component domain D on the XMPP
// side and the SIP domain S (docs/interworking.md, "Addresses"). They may be the same string.
type Domains struct {
	XMPP string // D, the component JID
	SIP  string // S, the SIP domain stox's registrar serves
}
