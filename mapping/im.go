package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"unicode/utf8"
)

// MaxPagerBody is the largest body sent as a pager-mode MESSAGE: RFC 3428 §6
// caps a MESSAGE outside a session at 1300 bytes, and RFC 7572 §7 has the
// gateway answer <policy-violation/> beyond that.
const MaxPagerBody = 1300

// AcceptedContentTypes lists the bodies MessageToXMPP takes, for the Accept
// header a 415 answer SHOULD carry (RFC 3261 §21.4.13).
const AcceptedContentTypes = "text/plain, message/cpim"

// ErrNoContent is returned by MessageToSIP for a message with neither body
// nor subject. Such stanzas are chat states, receipts or markers (XEP-0085,
// XEP-0184, XEP-0333) that pager mode cannot carry: drop them silently
// rather than bounce an error to the sender for every typing notification.
var ErrNoContent = errors.New("mapping: message has neither body nor subject")

// MessageToSIP translates an XMPP message into a pager-mode MESSAGE following
// the table of RFC 7572 §5. Errors are *Failure except ErrNoContent:
//   - type error: never translated, 400 bad-request; the caller must not
//     bounce it (RFC 6120 §8.3.1 forbids an error reply to an error).
//   - type groupchat: 400 bad-request (RFC 7572 has no mapping; headline,
//     chat and normal all become MESSAGE, docs/interworking.md).
//   - body over MaxPagerBody bytes: 413 policy-violation (RFC 7572 §7).
//   - a recipient that is not a SIP address: SIPTarget's failure.
//
// Header values built from XMPP data cannot smuggle CR, LF or other controls
// into SIP: Subject is cleaned, the thread is encoded into Call-ID syntax,
// and an invalid xml:lang is dropped rather than copied.
func (d Domains) MessageToSIP(m XMPPMessage) (SIPMessage, error) {
	switch m.Type {
	case "error":
		return SIPMessage{}, &Failure{Condition: BadRequest, Status: 400, Text: "error stanzas are not translated"}
	case "groupchat":
		return SIPMessage{}, &Failure{Condition: BadRequest, Status: 400, Text: "groupchat messages cannot be sent to SIP"}
	}
	if m.Body == "" && m.Subject == "" {
		return SIPMessage{}, ErrNoContent
	}
	if len(m.Body) > MaxPagerBody {
		return SIPMessage{}, &Failure{Condition: PolicyViolation, Status: 413,
			Text: "message body exceeds 1300 bytes (RFC 3428 §6)"}
	}
	to, err := d.SIPTarget(m.To)
	if err != nil {
		return SIPMessage{}, err
	}
	s := SIPMessage{
		RequestURI:      to,
		From:            d.SIPFrom(m.From),
		To:              to,
		CallID:          callIDFromThread(m.Thread),
		Subject:         headerText(m.Subject),
		ContentLanguage: languageTag(m.Lang),
	}
	if m.Body != "" {
		s.ContentType = "text/plain;charset=UTF-8"
		s.Body = []byte(m.Body)
	}
	return s, nil
}

// headerText makes s safe as a SIP header value (RFC 3261 §25.1 TEXT-UTF8):
// each run of control characters (C0, DEL, C1, U+2028/U+2029) becomes one
// space, invalid UTF-8 becomes U+FFFD, and outer spaces are trimmed.
func headerText(s string) string {
	clean := true
	for _, r := range s {
		if isControl(r) || r == utf8.RuneError {
			clean = false
			break
		}
	}
	if clean {
		return strings.TrimSpace(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if isControl(r) {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(r) // invalid bytes arrive as U+FFFD
	}
	return strings.TrimSpace(b.String())
}

func isControl(r rune) bool {
	return r < 0x20 || r >= 0x7f && r < 0xa0 || r == 0x2028 || r == 0x2029
}

// callIDChar is RFC 3261 §25.1 "word" (without '@', handled separately).
var callIDChar = byteSet("-.!%*_+`'~()<>:\\\"/[]?{}")

// maxCallID bounds the Call-ID built from a thread; longer threads are hashed
// so an XMPP client cannot make headers grow without limit.
const maxCallID = 128

// callIDFromThread turns an XMPP thread into a Call-ID (RFC 7572 §5):
// callid = word [ "@" word ]. Bytes outside word are %HH-encoded, as is every
// '@' that would not separate two non-empty words. An empty thread gives an
// empty Call-ID, which the SIP stack replaces with a fresh one.
func callIDFromThread(t string) string {
	if t == "" {
		return ""
	}
	at := strings.IndexByte(t, '@')
	if at == 0 || at == len(t)-1 {
		at = -1
	}
	clean := len(t) <= maxCallID
	for i := 0; clean && i < len(t); i++ {
		clean = callIDChar[t[i]] || i == at
	}
	if clean {
		return t
	}
	b := make([]byte, 0, len(t)+16)
	const digits = "0123456789ABCDEF"
	for i := 0; i < len(t); i++ {
		if c := t[i]; callIDChar[c] || i == at {
			b = append(b, c)
		} else {
			b = append(b, '%', digits[c>>4], digits[c&0xf])
		}
	}
	if len(b) > maxCallID {
		sum := sha256.Sum256([]byte(t))
		return "thread-" + hex.EncodeToString(sum[:16])
	}
	return string(b)
}

// languageTag returns tag if it is a syntactically valid language tag
// (RFC 3066 §2.1, as used by Content-Language, RFC 3261 §20.13, and
// xml:lang): 1*8ALPHA *("-" 1*8alphanum). Anything else is dropped, because
// a bad xml:lang must neither fail delivery nor reach a SIP header.
func languageTag(tag string) string {
	if tag == "" || len(tag) > 64 {
		return ""
	}
	n, first := 0, true
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		switch {
		case c == '-':
			if n == 0 {
				return ""
			}
			n, first = 0, false
			continue
		case isAlnum(c) && (!first || c > '9'):
		default:
			return ""
		}
		if n++; n > 8 {
			return ""
		}
	}
	if n == 0 {
		return ""
	}
	return tag
}

// MessageToXMPP translates a pager-mode MESSAGE into an XMPP message of type
// normal (RFC 7572 §4, MUST). Errors are *Failure:
//   - a sips: Request-URI or To: 403 (RFC 7247 §8); any other Request-URI
//     that is not an XMPP address: XMPPTarget's failure.
//   - content other than text/plain (charset UTF-8, US-ASCII or none) or a
//     message/cpim wrapping it (RFC 3862): 415 not-acceptable. A missing
//     Content-Type is read as text/plain.
//   - malformed CPIM: 400 bad-request.
//   - empty body and no Subject: 400 bad-request; there is nothing to show.
//   - a sender without a valid JID form: 400 bad-request.
//
// Text that XML 1.0 cannot carry (invalid UTF-8, C0 controls other than tab,
// CR and LF, U+FFFE/U+FFFF) is replaced with U+FFFD: delivering a visibly
// damaged character beats refusing a message for one byte.
func (d Domains) MessageToXMPP(m SIPMessage) (XMPPMessage, error) {
	if m.To.Scheme == "sips" {
		return XMPPMessage{}, &Failure{Condition: Forbidden, Status: 403,
			Text: "sips: URIs are not translated to XMPP (RFC 7247 §8)"}
	}
	to, err := d.XMPPTarget(m.RequestURI)
	if err != nil {
		return XMPPMessage{}, err
	}
	body, subject, err := messageBody(m)
	if err != nil {
		return XMPPMessage{}, err
	}
	if m.Subject != "" {
		subject = m.Subject // the SIP header wins over a CPIM Subject
	}
	if len(body) == 0 && subject == "" {
		return XMPPMessage{}, &Failure{Condition: BadRequest, Status: 400, Text: "empty MESSAGE"}
	}
	from := d.XMPPFrom(m.From)
	if err := validateJID(from); err != nil {
		return XMPPMessage{}, &Failure{Condition: BadRequest, Status: 400,
			Text: "sender has no JID form: " + err.Error()}
	}
	return XMPPMessage{
		From:    from,
		To:      to,
		Type:    "normal",
		Lang:    languageTag(firstLanguage(m.ContentLanguage)),
		Body:    xmlText(body),
		Subject: xmlText(subject),
		Thread:  xmlText(m.CallID),
	}, nil
}

func unsupported(why string) *Failure {
	return &Failure{Condition: NotAcceptable, Status: 415,
		Text: why + "; accepted: text/plain (UTF-8), message/cpim"}
}

// messageBody extracts the text of m, unwrapping message/cpim. subject is a
// CPIM Subject without language parameter, used when SIP has none.
func messageBody(m SIPMessage) (body []byte, subject string, err error) {
	mt, params := splitMediaType(m.ContentType)
	switch {
	case mt == "" || strings.EqualFold(mt, "text/plain"):
		if !plainCharset(params) {
			return nil, "", unsupported("unsupported charset")
		}
		return m.Body, "", nil
	case strings.EqualFold(mt, "message/cpim"):
		c, err := ParseCPIM(m.Body)
		if err != nil {
			return nil, "", &Failure{Condition: BadRequest, Status: 400, Text: err.Error()}
		}
		imt, iparams := splitMediaType(c.ContentType)
		if !strings.EqualFold(imt, "text/plain") || !plainCharset(iparams) {
			return nil, "", unsupported("unsupported content in message/cpim")
		}
		for _, s := range c.Headers["Subject"] {
			if !strings.HasPrefix(s, ";") {
				subject = s
				break
			}
		}
		return c.Body, subject, nil
	default:
		return nil, "", unsupported("unsupported content type")
	}
}

// splitMediaType splits "type/subtype; params" (RFC 2045 §5.1) without
// allocating.
func splitMediaType(ct string) (mediaType, params string) {
	mediaType, params, _ = strings.Cut(ct, ";")
	return strings.TrimSpace(mediaType), params
}

// plainCharset accepts text/plain whose charset is absent, UTF-8 or US-ASCII
// (a subset of UTF-8); RFC 3428 §9 and RFC 2046 §4.1.2 default to US-ASCII.
func plainCharset(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, value, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(name), "charset") {
			continue
		}
		value = strings.Trim(strings.TrimSpace(value), `"`)
		return strings.EqualFold(value, "utf-8") || strings.EqualFold(value, "us-ascii")
	}
	return true
}

// firstLanguage picks the first tag of a Content-Language list (RFC 3261
// §20.13 allows several; xml:lang holds one).
func firstLanguage(s string) string {
	s, _, _ = strings.Cut(s, ",")
	return strings.TrimSpace(s)
}

// xmlChar reports whether r may appear in XML 1.0 character data (XML 1.0
// §2.2 Char).
func xmlChar(r rune) bool {
	return r == 0x9 || r == 0xa || r == 0xd ||
		r >= 0x20 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= 0x10ffff
}

// xmlText converts b to a string XML 1.0 can carry, replacing what it cannot
// with U+FFFD.
func xmlText[T string | []byte](b T) string {
	s := string(b)
	for i, r := range s {
		if r == utf8.RuneError || !xmlChar(r) {
			return replaceNonXML(s, i)
		}
	}
	return s
}

func replaceNonXML(s string, from int) string {
	var out strings.Builder
	out.Grow(len(s) + 8)
	out.WriteString(s[:from])
	for _, r := range s[from:] {
		if !xmlChar(r) {
			r = utf8.RuneError
		}
		out.WriteRune(r)
	}
	return out.String()
}
