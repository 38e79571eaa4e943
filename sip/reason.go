package sip

import (
	"strconv"
	"strings"
)

// reasonValue is one reason-value of an RFC 3326 Reason header:
// protocol;cause=N;text="…".
type reasonValue struct {
	Protocol string // "Q.850", "SIP", …
	Cause    int    // -1 when absent or not a number
	Text     string // unquoted
}

// maxReasonText bounds the text stox writes into a Reason header and keeps
// from one: it is a human note, not a payload.
const maxReasonText = 128

// parseReason parses a Reason header value (RFC 3326 §2): one or more
// comma-separated reason-values. Values without a protocol are skipped;
// quoted strings may hold commas and semicolons. It never fails: a
// malformed header yields what could be read.
func parseReason(v string) []reasonValue {
	var out []reasonValue
	for _, part := range splitOutsideQuotes(v, ',') {
		params := splitOutsideQuotes(part, ';')
		if len(params) == 0 {
			continue
		}
		r := reasonValue{Protocol: strings.TrimSpace(params[0]), Cause: -1}
		if r.Protocol == "" || strings.ContainsAny(r.Protocol, " \t\"=") {
			continue
		}
		for _, p := range params[1:] {
			name, val, _ := strings.Cut(p, "=")
			name, val = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(val)
			switch name {
			case "cause":
				// RFC 3326 §2: cause = 1*DIGIT; Q.850 causes are 1–127, SIP
				// ones status codes.
				if n, err := strconv.Atoi(val); err == nil && n >= 0 && n <= 9999 {
					r.Cause = n
				}
			case "text":
				r.Text = truncate(unquote(val), maxReasonText)
			}
		}
		out = append(out, r)
	}
	return out
}

// hangupCause picks the cause and text to report from a Reason header: the
// Q.850 value when there is one (it is what the calls capability maps to a
// Jingle reason), else the first with a cause.
func hangupCause(v string) (cause int, text string) {
	rs := parseReason(v)
	for _, r := range rs {
		if strings.EqualFold(r.Protocol, "Q.850") && r.Cause >= 0 {
			return r.Cause, r.Text
		}
	}
	for _, r := range rs {
		if r.Cause >= 0 {
			return r.Cause, r.Text
		}
	}
	return 0, ""
}

// formatReason is the Reason header value for a Q.850 cause (RFC 3326 §2)
// with text made safe for a quoted-string: control characters dropped,
// quote and backslash escaped, at most maxReasonText bytes kept.
func formatReason(cause int, text string) string {
	v := "Q.850;cause=" + strconv.Itoa(cause)
	if t := sanitizeText(text); t != "" {
		v += `;text="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(t) + `"`
	}
	return v
}

func sanitizeText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return -1
		}
		return r
	}, s)
	return truncate(strings.TrimSpace(s), maxReasonText)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}

// unquote removes the quotes of a quoted-string and its quoted-pairs
// (RFC 3261 §25.1); a token is returned as is.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' {
		return s
	}
	s = s[1:]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// splitOutsideQuotes splits s at sep where sep is not inside a
// quoted-string.
func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case sep:
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start <= len(s) {
		out = append(out, s[start:])
	}
	return out
}
