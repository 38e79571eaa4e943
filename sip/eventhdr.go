package sip

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Parsers for the headers of RFC 6665 §8.2 that sipgo does not know.

var errBadHeader = errors.New("sip: malformed header")

// isToken reports whether s is a non-empty RFC 3261 §25.1 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-.!%*_+`'~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// param is one ";name[=value]" of a header value; the value may be a
// quoted-string, whose quotes are removed.
type param struct{ name, value string }

// splitParams parses "token *( SEMI generic-param )" (RFC 3261 §25.1) and
// returns the leading token and the parameters with lower-cased names.
func splitParams(v string) (string, []param, error) {
	v = strings.TrimSpace(v)
	head, rest, _ := strings.Cut(v, ";")
	head = strings.TrimSpace(head)
	if !isToken(head) {
		return "", nil, errBadHeader
	}
	var ps []param
	for rest != "" {
		var p string
		p, rest = cutParam(rest)
		name, val, hasVal := strings.Cut(p, "=")
		name = strings.TrimSpace(name)
		if !isToken(name) {
			return "", nil, errBadHeader
		}
		val = strings.TrimSpace(val)
		if hasVal {
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			} else if !isToken(val) {
				return "", nil, errBadHeader
			}
		}
		ps = append(ps, param{strings.ToLower(name), val})
	}
	return head, ps, nil
}

// cutParam cuts at the next ';' outside a quoted-string.
func cutParam(s string) (p, rest string) {
	inq := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if inq {
				i++
			}
		case '"':
			inq = !inq
		case ';':
			if !inq {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

// parseEvent parses an Event header value (RFC 6665 §8.2.1):
// event-type *( SEMI event-param ), with the id parameter. The package is
// lower-cased: stox compares it case-insensitively.
func parseEvent(v string) (pkg, id string, err error) {
	head, ps, err := splitParams(v)
	if err != nil {
		return "", "", err
	}
	for _, p := range ps {
		if p.name == "id" {
			id = p.value
		}
	}
	return strings.ToLower(head), id, nil
}

// subState is a parsed Subscription-State header (RFC 6665 §4.1.3, §8.2.3).
type subState struct {
	State      string // lower-cased: "active", "pending", "terminated" or an extension
	Reason     string
	Expires    time.Duration // 0 when absent
	RetryAfter time.Duration // 0 when absent
}

// parseSubState parses "substate-value *( SEMI subexp-params )"; expires
// and retry-after must be delta-seconds, unknown parameters are ignored.
func parseSubState(v string) (subState, error) {
	head, ps, err := splitParams(v)
	if err != nil {
		return subState{}, err
	}
	st := subState{State: strings.ToLower(head)}
	for _, p := range ps {
		switch p.name {
		case "reason":
			st.Reason = strings.ToLower(p.value)
		case "expires", "retry-after":
			n, err := strconv.ParseUint(p.value, 10, 32)
			if err != nil {
				return subState{}, errBadHeader
			}
			d := time.Duration(n) * time.Second
			if p.name == "expires" {
				st.Expires = d
			} else {
				st.RetryAfter = d
			}
		}
	}
	return st, nil
}
