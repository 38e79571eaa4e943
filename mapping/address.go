package mapping

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// ParseURI parses a sip, sips, im or pres URI without display name or angle
// brackets. It keeps what interworking needs (RFC 7247 §6): the scheme and
// host lower-cased, the user and the "gr" parameter (RFC 5627) percent-decoded,
// and the port. Password, other parameters and headers are dropped.
//
// Malformed input is an error: an unknown scheme, a bad %HH escape, a raw
// space, control character or one of `"<>\` (they cannot appear in a URI,
// RFC 3261 §25.1), a second '@', an empty user before '@', a bad host or
// port, or a decoded user or gr that is not control-free UTF-8 (RFC 7247
// §6.4 step 4 treats the user as UTF-8).
func ParseURI(s string) (URI, error) {
	var u URI
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return u, uriError(s, "missing scheme")
	}
	u.Scheme = strings.ToLower(s[:colon])
	switch u.Scheme {
	case "sip", "sips", "im", "pres":
	default:
		return URI{}, uriError(s, "unsupported scheme")
	}
	rest := s[colon+1:]
	if err := checkURIChars(rest); err != nil {
		return URI{}, uriError(s, err.Error())
	}
	// The userinfo ends at the first '@': RFC 3261 §25.1 allows '?' and ';'
	// in the user but '@' nowhere else, so split before cutting headers.
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		userinfo := rest[:at]
		rest = rest[at+1:]
		if i := strings.IndexByte(userinfo, ':'); i >= 0 {
			userinfo = userinfo[:i] // RFC 3261 §19.1.1: drop the password
		}
		user, err := percentDecode(userinfo)
		if err != nil || user == "" {
			return URI{}, uriError(s, "bad user part")
		}
		u.User = user
	}
	rest, _, _ = strings.Cut(rest, "?") // RFC 3261 §19.1.1 headers are dropped
	if strings.IndexByte(rest, '@') >= 0 {
		return URI{}, uriError(s, "more than one '@'")
	}
	hostport, params, _ := strings.Cut(rest, ";")
	if err := u.setHostPort(hostport); err != nil {
		return URI{}, uriError(s, err.Error())
	}
	gr, err := grParam(params)
	if err != nil {
		return URI{}, uriError(s, err.Error())
	}
	u.GR = gr
	return u, nil
}

func uriError(s, why string) error {
	return fmt.Errorf("mapping: parse URI %.80q: %s", s, why)
}

// checkURIChars rejects bytes that can never appear raw in a URI. Other
// characters outside RFC 3261's grammar (for example a raw '#' or UTF-8) are
// tolerated because deployed phones send them.
func checkURIChars(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' {
			return fmt.Errorf("invalid character %q", c)
		}
	}
	return nil
}

func (u *URI) setHostPort(hp string) error {
	host, port := hp, ""
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return errors.New("unterminated IPv6 reference")
		}
		host, port = hp[:end+1], hp[end+1:]
		if port != "" && port[0] != ':' {
			return errors.New("bad host")
		}
		if port != "" {
			port = port[1:]
			if port == "" {
				return errors.New("empty port")
			}
		}
	} else if i := strings.IndexByte(hp, ':'); i >= 0 {
		host, port = hp[:i], hp[i+1:]
		if port == "" {
			return errors.New("empty port")
		}
	}
	if !validHost(host) {
		return errors.New("bad host")
	}
	u.Host = strings.ToLower(host)
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 || port[0] == '+' || port[0] == '-' {
			return errors.New("bad port")
		}
		u.Port = p
	}
	return nil
}

// grParam finds the "gr" URI parameter (RFC 5627 §3.1) among ;-separated
// parameters and percent-decodes its value.
func grParam(params string) (string, error) {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, value, _ := strings.Cut(p, "=")
		if name == "" {
			return "", errors.New("empty parameter")
		}
		if !strings.EqualFold(name, "gr") {
			continue
		}
		gr, err := percentDecode(value)
		if err != nil {
			return "", errors.New("bad gr parameter")
		}
		return gr, nil
	}
	return "", nil
}

// validHost accepts a DNS name (letters, digits, '-', '_' and dots; '_' for
// internal names), an IPv4 literal, or a bracketed IPv6 reference.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	if h[0] == '[' {
		if len(h) < 4 || h[len(h)-1] != ']' {
			return false
		}
		for i := 1; i < len(h)-1; i++ {
			if c := h[i]; !isHex(c) && c != ':' && c != '.' {
				return false
			}
		}
		return true
	}
	label := 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case isAlnum(c) || c == '-' || c == '_':
			label++
			if label > 63 {
				return false
			}
		default:
			return false
		}
	}
	return label > 0
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// percentDecode decodes %HH (RFC 3986 §2.1) and requires the result to be
// control-free UTF-8 (RFC 7247 §6.4 steps 3 and 4).
func percentDecode(s string) (string, error) {
	out := s
	if strings.IndexByte(s, '%') >= 0 {
		b := make([]byte, 0, len(s))
		for i := 0; i < len(s); i++ {
			if s[i] != '%' {
				b = append(b, s[i])
				continue
			}
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", errors.New("bad percent escape")
			}
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		}
		out = string(b)
	}
	if !controlFreeUTF8(out) {
		return "", errors.New("not control-free UTF-8")
	}
	return out, nil
}

// controlFreeUTF8 reports whether s is valid UTF-8 without C0 controls or DEL:
// such a string is safe in a SIP header, a URI (once encoded) and XML.
func controlFreeUTF8(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

// RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved ) and
// paramchar = param-unreserved / unreserved / escaped. Everything else is
// percent-encoded, which covers RFC 7247 §6.5 step 5 (# % [ \ ] ^ ` { | } and
// every non-ASCII byte) and also space, '"', '<', '>', '@' and ':'.
var (
	userSafe  = byteSet("-_.!~*'()" + "&=+$,;?/")
	paramSafe = byteSet("-_.!~*'()" + "[]/:&+$")
)

func byteSet(extra string) (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = isAlnum(byte(c))
	}
	for i := 0; i < len(extra); i++ {
		t[extra[i]] = true
	}
	return t
}

func appendEscaped(b []byte, s string, safe *[256]bool) []byte {
	const digits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safe[c] {
			b = append(b, c)
			continue
		}
		b = append(b, '%', digits[c>>4], digits[c&0xf])
	}
	return b
}

// String renders u as scheme:user@host[:port][;gr=...], re-encoding the user
// and gr value (RFC 7247 §6.5 steps 5 and 8).
func (u URI) String() string {
	b := make([]byte, 0, len(u.Scheme)+len(u.User)+len(u.Host)+len(u.GR)+16)
	b = u.appendAOR(b)
	if u.Port != 0 {
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(u.Port), 10)
	}
	if u.GR != "" {
		b = append(b, ";gr="...)
		b = appendEscaped(b, u.GR, &paramSafe)
	}
	return string(b)
}

// AOR returns the canonical address-of-record "sip:user@host": encoded user,
// lower-case host, no port and no parameters (RFC 3261 §10.3 step 5).
func (u URI) AOR() string {
	return string(u.appendAOR(make([]byte, 0, len(u.Scheme)+len(u.User)+len(u.Host)+8)))
}

func (u URI) appendAOR(b []byte) []byte {
	b = append(b, u.Scheme...)
	b = append(b, ':')
	if u.User != "" {
		b = appendEscaped(b, u.User, &userSafe)
		b = append(b, '@')
	}
	for i := 0; i < len(u.Host); i++ {
		c := u.Host[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// ParseJID checks s against RFC 7622 (PRECIS, via mellium's jid.Parse, which
// does no I/O) and returns it in canonical wire form. It also enforces
// XEP-0106 §4: an escaped localpart must not begin or end with "\20".
func ParseJID(s string) (JID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return JID{}, fmt.Errorf("mapping: parse JID %.80q: %w", s, err)
	}
	out := JID{Local: j.Localpart(), Domain: j.Domainpart(), Resource: j.Resourcepart()}
	if err := checkEscapedLocal(out.Local); err != nil {
		return JID{}, fmt.Errorf("mapping: parse JID %.80q: %w", s, err)
	}
	if err := checkDomain(out.Domain); err != nil {
		return JID{}, fmt.Errorf("mapping: parse JID %.80q: %w", s, err)
	}
	return out, nil
}

// checkDomain rejects the empty labels mellium lets through: it strips one
// final dot (RFC 7622 §3.2) but accepts "a..", ".a" or "a..b".
func checkDomain(domain string) error {
	if domain == "" || domain[0] == '.' || domain[len(domain)-1] == '.' || strings.Contains(domain, "..") {
		return errors.New("empty domainpart or label")
	}
	return nil
}

func checkEscapedLocal(local string) error {
	if strings.HasPrefix(local, `\20`) || strings.HasSuffix(local, `\20`) {
		return errors.New(`localpart begins or ends with \20 (XEP-0106 §4)`)
	}
	return nil
}

// validateJID reports whether j is a valid JID (RFC 7622 and XEP-0106 §4)
// without canonicalising it.
func validateJID(j JID) error {
	if err := checkDomain(j.Domain); err != nil {
		return err
	}
	if !plainASCIIJID(j) {
		if _, err := jid.New(j.Local, j.Domain, j.Resource); err != nil {
			return err
		}
	}
	return checkEscapedLocal(j.Local)
}

// plainASCIIJID is validateJID's allocation-free fast path for the common
// case. Printable ASCII is PVALID in the PRECIS IdentifierClass and
// FreeformClass (RFC 8264 §9.11 ASCII7), so such a localpart (minus the
// characters RFC 7622 §3.3.1 excludes) and resource, with a lower-case LDH
// domain, are valid without running PRECIS. Anything else takes the full
// check; FuzzParseJID holds the two in agreement.
func plainASCIIJID(j JID) bool {
	if len(j.Local) > 1023 || len(j.Resource) > 1023 || !validHost(j.Domain) || j.Domain[0] == '[' {
		return false
	}
	for rest := j.Domain; rest != ""; {
		var label string
		label, rest, _ = strings.Cut(rest, ".")
		if !ldhLabel(label) {
			return false
		}
	}
	for i := 0; i < len(j.Local); i++ {
		if c := j.Local[i]; c <= ' ' || c >= 0x7f || escapeCode[c] != "" && c != '\\' {
			return false
		}
	}
	for i := 0; i < len(j.Resource); i++ {
		if c := j.Resource[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// ldhLabel reports whether label is a lower-case NR-LDH label (RFC 5890
// §2.3.1): no leading or trailing hyphen and no "--" in positions 3 and 4.
func ldhLabel(label string) bool {
	n := len(label)
	if n == 0 || label[0] == '-' || label[n-1] == '-' || n >= 4 && label[2] == '-' && label[3] == '-' {
		return false
	}
	for i := 0; i < n; i++ {
		if c := label[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// URIToJID is the generic RFC 7247 §6.4 mapping: the decoded user is
// XEP-0106 escaped (step 5, which covers & ' / and the other seven), the host
// kept as is, and gr becomes the resource (step 8).
func URIToJID(u URI) (JID, error) {
	j := JID{Local: EscapeLocal(u.User), Domain: u.Host, Resource: u.GR}
	if err := validateJID(j); err != nil {
		return JID{}, fmt.Errorf("mapping: %s has no JID form: %w", u, err)
	}
	return j, nil
}

// JIDToURI is the generic RFC 7247 §6.5 mapping to a sip: URI (step 4: no
// im:/pres: discovery is done): the localpart is unescaped (step 3), String
// percent-encodes it (step 5), and the resource becomes gr (step 8).
func JIDToURI(j JID) URI {
	return URI{Scheme: "sip", User: UnescapeLocal(j.Local), Host: j.Domain, GR: j.Resource}
}

func notFound(text string) *Failure {
	return &Failure{Condition: ItemNotFound, Status: 404, Text: text}
}

func malformed(text string) *Failure {
	return &Failure{Condition: JIDMalformed, Status: 400, Text: text}
}

// SIPTarget maps an XMPP recipient at the component domain D to the SIP URI
// it stands for (docs/interworking.md, "Addresses"): bob@D is sip:bob@S, and an escaped '@'
// (bob\40sip.other@D) names a user of any SIP domain. The split is at the
// last '@' because a host cannot contain one but a user can.
func (d Domains) SIPTarget(to JID) (URI, error) {
	if !strings.EqualFold(to.Domain, d.XMPP) {
		return URI{}, notFound("not an address of " + d.XMPP)
	}
	if to.Local == "" {
		return URI{}, notFound("the gateway itself is not a SIP user")
	}
	user := UnescapeLocal(to.Local)
	host := d.SIP
	if at := strings.LastIndexByte(user, '@'); at >= 0 {
		user, host = user[:at], user[at+1:]
		if !validHost(host) {
			return URI{}, malformed("bad SIP domain in " + to.Local)
		}
		host = strings.ToLower(host)
	}
	if user == "" || !controlFreeUTF8(user) || !controlFreeUTF8(to.Resource) {
		return URI{}, malformed("no SIP user in " + to.Local)
	}
	return URI{Scheme: "sip", User: user, Host: host, GR: to.Resource}, nil
}

// SIPFrom maps an XMPP sender to its SIP identity: the bare JID as a URI with
// the resource as GRUU (RFC 7572 §4 and §5, RFC 7247 §6.5).
func (d Domains) SIPFrom(from JID) URI {
	return JIDToURI(from)
}

// XMPPTarget maps a SIP Request-URI to the XMPP address it stands for
// (docs/interworking.md, "Addresses"): sip:alice@xmpp.example for a foreign domain, or
// sip:alice%40xmpp.example@S for phones that can only dial inside S.
//
// A plain user of S, or any user of D, is a SIP user and not an XMPP
// address: 404 item-not-found (this also stops loops through the gateway).
// A sips: URI is never translated, because XMPP cannot promise TLS on every
// hop (RFC 7247 §8, MUST NOT): 403 forbidden, which tells the sender the
// refusal is policy, not absence. An address whose localpart is not a valid
// JID gives 400 jid-malformed.
func (d Domains) XMPPTarget(ruri URI) (JID, error) {
	switch ruri.Scheme {
	case "sips":
		return JID{}, &Failure{Condition: Forbidden, Status: 403,
			Text: "sips: URIs are not translated to XMPP (RFC 7247 §8)"}
	case "sip", "im", "pres":
	default:
		return JID{}, &Failure{Condition: NotAcceptable, Status: 416, Text: "unsupported URI scheme"}
	}
	user, host := ruri.User, ruri.Host
	if strings.EqualFold(host, d.SIP) {
		at := strings.LastIndexByte(user, '@')
		if at < 0 {
			return JID{}, notFound("not an XMPP address")
		}
		user, host = user[:at], strings.ToLower(user[at+1:])
		if !validHost(host) {
			return JID{}, malformed("bad XMPP domain")
		}
	}
	if user == "" || strings.EqualFold(host, d.XMPP) || strings.EqualFold(host, d.SIP) {
		return JID{}, notFound("not an XMPP address")
	}
	j := JID{Local: EscapeLocal(user), Domain: host, Resource: ruri.GR}
	if err := validateJID(j); err != nil {
		return JID{}, malformed("not a valid JID: " + err.Error())
	}
	return j, nil
}

// XMPPFrom maps a SIP sender to its JID at D: a user of S keeps its user
// (sip:bob@S → bob@D); a user of any other domain carries the domain in the
// localpart (sip:bob@sip.other → bob\40sip.other@D). gr becomes the resource.
//
// XMPPFrom cannot fail, so it does not validate: a URI whose user has a
// leading space or is not PRECIS-valid gives a JID that ParseJID rejects.
// Callers that need a guarantee check with ParseJID (MessageToXMPP does).
func (d Domains) XMPPFrom(from URI) JID {
	local := from.User
	if !strings.EqualFold(from.Host, d.SIP) {
		local = local + "@" + strings.ToLower(from.Host)
	}
	return JID{Local: EscapeLocal(local), Domain: d.XMPP, Resource: from.GR}
}

// PromptToJID answers a XEP-0100 §6.3 jabber:iq:gateway prompt. Accepted:
// "bob" (a user of S), "bob@sip.other", "sip:bob@sip.other" and telephone
// numbers; a number starting with '+' is normalised to E.164 ("+1 (555)
// 123-4567" → "+15551234567", ITU-T E.164: at most 15 digits), visual
// separators (RFC 3966 §5.1.1) are removed from other numbers.
func (d Domains) PromptToJID(prompt string) (JID, error) {
	p := strings.TrimSpace(prompt)
	if p == "" || !controlFreeUTF8(p) {
		return JID{}, malformed("empty or invalid prompt")
	}
	var u URI
	switch {
	case hasSchemePrefix(p):
		var err error
		if u, err = ParseURI(p); err != nil {
			return JID{}, malformed("not a SIP address")
		}
		if u.Scheme != "sip" || u.User == "" {
			return JID{}, malformed("only sip: URIs with a user are accepted")
		}
		u.GR, u.Port = "", 0
	case p[0] == '+' || isPhoneNumber(p):
		num, ok := normalisePhone(p)
		if !ok {
			return JID{}, malformed("not a valid telephone number")
		}
		u = URI{Scheme: "sip", User: num, Host: d.SIP}
	case strings.IndexByte(p, ':') >= 0:
		// RFC 3261 §25.1: no ':' in a user; this is an unsupported scheme.
		return JID{}, malformed("only sip: addresses are accepted")
	default:
		u = URI{Scheme: "sip", User: p, Host: d.SIP}
		if at := strings.LastIndexByte(p, '@'); at >= 0 {
			u.User, u.Host = p[:at], strings.ToLower(p[at+1:])
			if u.User == "" || !validHost(u.Host) {
				return JID{}, malformed("not a SIP address")
			}
		}
	}
	j := d.XMPPFrom(u)
	if err := validateJID(j); err != nil {
		return JID{}, malformed("no JID form: " + err.Error())
	}
	return j, nil
}

func hasSchemePrefix(p string) bool {
	colon := strings.IndexByte(p, ':')
	if colon < 0 {
		return false
	}
	switch strings.ToLower(p[:colon]) {
	case "sip", "sips", "im", "pres":
		return true
	}
	return false
}

// isPhoneNumber reports whether p looks like a dialled number: an optional
// leading '+', then digits and RFC 3966 visual separators only, starting
// with a digit or '(' after the '+'.
func isPhoneNumber(p string) bool {
	digits := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '+' && i == 0:
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return false
		}
	}
	return digits > 0
}

func normalisePhone(p string) (string, bool) {
	if !isPhoneNumber(p) {
		return "", false
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if c := p[i]; c == '+' || c >= '0' && c <= '9' {
			b = append(b, c)
		}
	}
	if b[0] == '+' && (len(b) < 2 || len(b) > 16 || b[1] == '0') {
		return "", false // E.164: 1–15 digits, country codes never start with 0
	}
	return string(b), true
}
