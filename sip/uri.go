package sip

import (
	"strings"

	"github.com/emiago/sipgo/sip"

	"stox.dev/stox/mapping"
)

// toURI converts a parsed sipgo URI to the neutral model with
// mapping.ParseURI (user and gr percent-decoded, host lower-cased, other
// parameters dropped). A scheme other than sip, sips, im or pres is an error.
func toURI(u *sip.Uri) (mapping.URI, error) {
	s := u.String()
	if u.Scheme == "" {
		s = "sip:" + s
	}
	return mapping.ParseURI(s)
}

// fromURI converts a neutral URI to a sipgo URI via its wire form (RFC 7247
// §6.5: the user and gr are re-encoded by mapping.URI.String).
func fromURI(m mapping.URI) (sip.Uri, error) {
	if m.Scheme == "" {
		m.Scheme = "sip"
	}
	var u sip.Uri
	err := sip.ParseUri(m.String(), &u)
	return u, err
}

// aorOf returns the canonical AOR "sip:user@host" for a wire-form (encoded)
// user and a host.
func aorOf(user, host string) string {
	return mapping.URI{Scheme: "sip", User: pctDecode(user), Host: host}.AOR()
}

// pctDecode decodes %HH escapes; malformed escapes are kept as they are.
func pctDecode(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
