package mapping

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Jingle reasons (XEP-0166 §7.4) and their SIP counterparts: final
// responses to an INVITE before the call is answered, and the RFC 3326
// Reason header of a BYE after. The tables are docs/calls.md's
// "Translation" section.

// ErrReason is wrapped by the errors of ParseReasonHeader.
var ErrReason = errors.New("reason header")

// NewJingleReason is a <reason/> with the condition element name (busy,
// decline, success, …) and an optional <text/>. The condition carries the
// Jingle namespace: encoding/xml would otherwise write xmlns="" on it where
// <reason/> is not inside <jingle/> (XEP-0353 reject, retract, finish).
func NewJingleReason(name, text string) *JingleReason {
	return &JingleReason{Condition: JingleCondition{XMLName: xml.Name{Space: NSJingle, Local: name}}, Text: text}
}

// Name is the condition of the reason, "" for a nil reason or one without
// a condition element.
func (r *JingleReason) Name() string {
	if r == nil {
		return ""
	}
	return r.Condition.XMLName.Local
}

// StatusForJingleReason is the SIP final response to an INVITE that the
// XMPP side ended, before it was answered, with the reason name. cancel
// gives 487 for completeness: when the XMPP initiator cancels, the sip
// stack sends a CANCEL and the peer answers 487 (RFC 3261 §9.1).
func StatusForJingleReason(name string) (status int, phrase string) {
	switch name {
	case "busy", "alternative-session":
		return 486, "Busy Here"
	case "decline", "success":
		// success before an answer: the XMPP user ended the session without
		// taking it, which for the SIP caller is a decline.
		return 603, "Decline"
	case "cancel":
		return 487, "Request Terminated"
	case "timeout":
		// No answer: RFC 3261 §21.4.18 "the callee's end system was
		// contacted successfully but the callee is currently unavailable".
		return 480, "Temporarily Unavailable"
	case "expired":
		return 408, "Request Timeout"
	case "gone":
		return 410, "Gone"
	case "unsupported-applications":
		return 415, "Unsupported Media Type"
	case "unsupported-transports", "incompatible-parameters", "media-error", "failed-application", "security-error":
		return 488, "Not Acceptable Here"
	case "failed-transport", "connectivity-error":
		return 480, "Temporarily Unavailable"
	default: // general-error and conditions stox does not know
		return 500, "Server Internal Error"
	}
}

// JingleReasonForStatus is the Jingle reason for a SIP final response to an
// INVITE (RFC 3261 §21; docs/calls.md).
func JingleReasonForStatus(status int) string {
	switch {
	case status >= 200 && status < 300:
		return "success"
	case status >= 300 && status < 400:
		return "alternative-session" // a redirect stox does not follow
	}
	switch status {
	case 486, 600:
		return "busy"
	case 603, 403:
		return "decline"
	case 487:
		return "cancel"
	case 408, 480:
		return "timeout"
	case 404, 410, 484, 485, 604:
		return "gone"
	case 415:
		return "unsupported-applications"
	case 488, 606:
		return "incompatible-parameters"
	case 493, 494:
		return "security-error"
	default:
		return "general-error"
	}
}

// JingleReasonForSIP is the Jingle reason for a SIP BYE (or a failure)
// carrying an RFC 3326 Reason header; without a readable header it is
// status's reason, and success for a plain BYE (status 0).
func JingleReasonForSIP(status int, reasonHeader string) string {
	if reasonHeader != "" {
		if proto, cause, _, err := ParseReasonHeader(reasonHeader); err == nil && cause > 0 {
			switch {
			case strings.EqualFold(proto, "Q.850"):
				return JingleReasonForQ850(cause)
			case strings.EqualFold(proto, "SIP"):
				return JingleReasonForStatus(cause)
			}
		}
	}
	if status == 0 {
		return "success"
	}
	return JingleReasonForStatus(status)
}

// JingleReasonForQ850 is the Jingle reason for an ITU-T Q.850 cause of a
// Reason header (RFC 3326 §2), for a stack that already parsed the header
// (mapping.CallEvent.Status of CallHungUp).
func JingleReasonForQ850(cause int) string {
	switch cause {
	case 16, 31: // normal call clearing, normal unspecified
		return "success"
	case 17: // user busy
		return "busy"
	case 18, 19, 102: // no user responding, no answer, recovery on timer expiry
		return "timeout"
	case 21: // call rejected
		return "decline"
	case 1, 3, 20, 22: // unallocated number, no route, subscriber absent, number changed
		return "gone"
	case 27, 38, 41: // destination out of order, network out of order, temporary failure
		return "connectivity-error"
	case 58, 65, 79, 88: // bearer capability, service not implemented, incompatible destination
		return "incompatible-parameters"
	default:
		return "general-error"
	}
}

// q850ForJingle is the Q.850 cause of a Jingle reason for the Reason header
// of a BYE (the inverse of JingleReasonForQ850).
func q850ForJingle(name string) int {
	switch name {
	case "success", "cancel", "gone", "alternative-session":
		return 16
	case "busy":
		return 17
	case "expired":
		return 18
	case "timeout":
		return 19
	case "decline":
		return 21
	case "failed-transport", "connectivity-error":
		return 41
	case "incompatible-parameters", "media-error", "unsupported-applications", "unsupported-transports", "failed-application":
		return 58
	case "security-error", "general-error":
		return 127 // interworking, unspecified
	default:
		return 31
	}
}

// ReasonHeaderForJingle is the RFC 3326 Reason header value for a Jingle
// reason, e.g. `Q.850;cause=16;text="Call completed"`. The text comes from
// the XMPP side: quotes, backslashes and control characters are dropped so
// that it stays one quoted-string (RFC 3261 §25.1).
func ReasonHeaderForJingle(name, text string) string {
	v := "Q.850;cause=" + strconv.Itoa(q850ForJingle(name))
	clean := strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, text)
	if r := []rune(strings.TrimSpace(clean)); len(r) > 0 {
		if len(r) > 128 {
			r = r[:128]
		}
		v += `;text="` + string(r) + `"`
	}
	return v
}

// ParseReasonHeader reads the first value of an RFC 3326 Reason header:
// protocol *(";" param), with cause=DIGITS and text=quoted-string. A
// missing cause is 0; unknown parameters are skipped.
func ParseReasonHeader(v string) (protocol string, cause int, text string, err error) {
	s := strings.TrimSpace(v)
	i := 0
	for i < len(s) && s[i] != ';' && s[i] != ',' {
		i++
	}
	protocol = strings.TrimSpace(s[:i])
	if protocol == "" || !sipToken(protocol) {
		return "", 0, "", fmt.Errorf("%w: protocol in %q", ErrReason, v)
	}
	for i < len(s) && s[i] == ';' {
		i++
		j := i
		for j < len(s) && s[j] != '=' && s[j] != ';' && s[j] != ',' {
			j++
		}
		name := strings.ToLower(strings.TrimSpace(s[i:j]))
		i = j
		var val string
		if i < len(s) && s[i] == '=' {
			i++
			for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
			if i < len(s) && s[i] == '"' {
				var b strings.Builder
				i++
				closed := false
				for i < len(s) {
					c := s[i]
					if c == '\\' && i+1 < len(s) {
						b.WriteByte(s[i+1])
						i += 2
						continue
					}
					i++
					if c == '"' {
						closed = true
						break
					}
					b.WriteByte(c)
				}
				if !closed {
					return "", 0, "", fmt.Errorf("%w: unterminated quoted string in %q", ErrReason, v)
				}
				val = b.String()
				for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
					i++
				}
			} else {
				j := i
				for j < len(s) && s[j] != ';' && s[j] != ',' {
					j++
				}
				val = strings.TrimSpace(s[i:j])
				i = j
			}
		}
		switch name {
		case "cause":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > 999 {
				return "", 0, "", fmt.Errorf("%w: cause %q", ErrReason, val)
			}
			cause = n
		case "text":
			text = val
		}
	}
	if i < len(s) && s[i] != ',' {
		return "", 0, "", fmt.Errorf("%w: unexpected %q", ErrReason, s[i:])
	}
	return protocol, cause, text, nil
}

// sipToken reports whether v is an RFC 3261 §25.1 token.
func sipToken(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.!%*_+`'~", c) >= 0 {
			continue
		}
		return false
	}
	return v != ""
}
