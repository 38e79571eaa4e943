package mapping

import "strings"

// XEP-0106 §4: the ten characters a localpart cannot carry and their escapes.
// Only these sequences (lower-case hex, as in the XEP's table) are ever
// unescaped; anything else that merely looks like an escape is left alone
// (XEP-0106 §5.3: "\2plus\2is\4", "foo\bar", "foob\41r").
const escapable = " \"&'/:<>@\\"

// escapeCode maps an escapable byte to its two hex digits; zero means "not
// escapable". A table keeps the hot loop branch-light.
var escapeCode = func() (t [256]string) {
	for _, c := range escapable {
		t[c] = hex2(byte(c))
	}
	return t
}()

func hex2(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&0xf]})
}

// unescapeByte returns the character a two-digit lower-case code stands for.
func unescapeByte(hi, lo byte) (byte, bool) {
	for i := 0; i < len(escapable); i++ {
		c := escapable[i]
		if code := escapeCode[c]; code[0] == hi && code[1] == lo {
			return c, true
		}
	}
	return 0, false
}

// isEscapeAt reports whether s[i:] starts with one of the ten escape
// sequences.
func isEscapeAt(s string, i int) bool {
	if i+2 >= len(s) || s[i] != '\\' {
		return false
	}
	_, ok := unescapeByte(s[i+1], s[i+2])
	return ok
}

// needsEscape reports whether s[i] must be escaped. A backslash is escaped
// only when it would otherwise read as an escape sequence (XEP-0106 §5.2 step
// 3: "\27" in the source becomes "\5c27"); a lone backslash stays, as in the
// XEP's example "c:\net" → "c\3a\net".
func needsEscape(s string, i int) bool {
	c := s[i]
	if c == '\\' {
		return isEscapeAt(s, i)
	}
	return escapeCode[c] != ""
}

// EscapeLocal applies XEP-0106 escaping to a decoded localpart. It is the
// inverse of UnescapeLocal for every input: UnescapeLocal(EscapeLocal(s)) == s.
//
// A leading or trailing space yields a leading or trailing "\20", which
// XEP-0106 §4 forbids on the wire; EscapeLocal does not hide that, ParseJID
// (and so every translator that validates its result) rejects it.
func EscapeLocal(s string) string {
	first := -1
	for i := 0; i < len(s); i++ {
		if needsEscape(s, i) {
			first = i
			break
		}
	}
	if first < 0 {
		return s // common case: nothing to do, no allocation
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:first])
	for i := first; i < len(s); i++ {
		if needsEscape(s, i) {
			b.WriteByte('\\')
			b.WriteString(escapeCode[s[i]])
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// UnescapeLocal reverses XEP-0106 escaping. Only the ten defined sequences
// are decoded; partial or unknown sequences pass through unchanged. It never
// panics, unlike mellium's jid.Unescape (docs/libraries.md).
func UnescapeLocal(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		if s[i] == '\\' && i+2 < len(s) {
			if c, ok := unescapeByte(s[i+1], s[i+2]); ok {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
