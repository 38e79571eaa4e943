package sip

import (
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"stox.dev/stox/mapping"
)

// toURI converts a parsed sipgo URI to the neutral model: the user part is
// percent-decoded (RFC 3261 §19.1.2) and the "gr" parameter kept (RFC 5627).
func toURI(u *sip.Uri) mapping.URI {
	m := mapping.URI{
		Scheme: strings.ToLower(u.Scheme),
		User:   pctDecode(u.User),
		Host:   strings.ToLower(u.Host),
		Port:   u.Port,
	}
	if m.Scheme == "" {
		m.Scheme = "sip"
	}
	if u.UriParams != nil {
		if gr, ok := u.UriParams.Get("gr"); ok {
			m.GR = pctDecode(gr)
		}
	}
	return m
}

// fromURI converts a neutral URI to a sipgo URI, percent-encoding the user
// part (RFC 3261 §25.1 user / RFC 7247 §6.5 step 5) and the gr parameter.
func fromURI(m mapping.URI) sip.Uri {
	u := sip.Uri{
		Scheme: m.Scheme,
		User:   pctEncode(m.User, userSafe),
		Host:   m.Host,
		Port:   m.Port,
	}
	if u.Scheme == "" {
		u.Scheme = "sip"
	}
	if m.GR != "" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("gr", pctEncode(m.GR, paramSafe))
	}
	return u
}

// aorOf returns the canonical AOR "sip:user@host" of a URI (lower-case host,
// no port or parameters; sips is folded into sip, the AOR is the same).
func aorOf(user, host string) string {
	return "sip:" + pctEncode(pctDecode(user), userSafe) + "@" + strings.ToLower(host)
}

const (
	markChars = "-_.!~*'()"
	userSafe  = markChars + "&=+$,;?/" // RFC 3261 unreserved + user-unreserved
	paramSafe = markChars + "[]/:&+$"  // unreserved + param-unreserved
)

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func pctEncode(s, safe string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && strings.IndexByte(safe, s[i]) < 0 {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexd = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || strings.IndexByte(safe, c) >= 0 {
			b = append(b, c)
		} else {
			b = append(b, '%', hexd[c>>4], hexd[c&15])
		}
	}
	return string(b)
}

func pctDecode(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b = append(b, byte(v))
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}
