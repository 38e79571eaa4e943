package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// CPIM is a parsed message/cpim body (RFC 3862 §2): the message headers, the
// Content-Type of the encapsulated MIME object, and its content.
type CPIM struct {
	// Headers holds the message headers in order of appearance per name.
	// Names are case-sensitive (RFC 3862 §2.2) and values are kept as sent,
	// escapes included (§2.3); a value that carries parameters keeps them,
	// e.g. "Subject:;lang=fr beau temps" gives ";lang=fr beau temps".
	Headers map[string][]string
	// ContentType is the encapsulated object's Content-Type, unfolded.
	ContentType string
	// Body is the encapsulated content. It aliases the input slice.
	Body []byte
}

// ParseCPIM parses a message/cpim body (RFC 3862 §2, §3): message headers, a
// blank line, MIME headers that must include Content-Type (§2.4), a blank
// line, then the content. CRLF and bare LF line ends are both accepted. It
// runs in linear time and allocates only for the header map.
func ParseCPIM(body []byte) (CPIM, error) {
	c := CPIM{Headers: map[string][]string{}}
	rest := body
	for {
		line, next, ok := cutLine(rest)
		if !ok {
			return CPIM{}, cpimError("missing blank line after message headers")
		}
		rest = next
		if len(line) == 0 {
			break
		}
		name, value, err := parseCPIMHeader(line)
		if err != nil {
			return CPIM{}, err
		}
		c.Headers[name] = append(c.Headers[name], value)
	}
	ct, rest, err := parseMIMEHeaders(rest)
	if err != nil {
		return CPIM{}, err
	}
	c.ContentType = ct
	c.Body = rest
	return c, nil
}

func cpimError(why string) error { return errors.New("mapping: parse CPIM: " + why) }

// cutLine returns the first line of b without its CRLF or LF. ok is false when
// b holds no complete line.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b, false
	}
	line = b[:i]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, b[i+1:], true
}

// parseCPIMHeader splits "Name: value" or "Name:;param=x value" (RFC 3862
// §3.6). Header values may hold no control characters (§2.2) and must be
// UTF-8.
func parseCPIMHeader(line []byte) (string, string, error) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return "", "", cpimError(fmt.Sprintf("header without name: %.40q", line))
	}
	name := line[:colon]
	for _, ch := range name {
		if !cpimNameChar[ch] {
			return "", "", cpimError(fmt.Sprintf("bad header name %.40q", name))
		}
	}
	value := line[colon+1:]
	switch {
	case len(value) == 0:
	case value[0] == ' ':
		value = value[1:]
	case value[0] != ';':
		return "", "", cpimError(fmt.Sprintf("no space after %q:", name))
	}
	if !controlFreeUTF8(string(value)) {
		return "", "", cpimError(fmt.Sprintf("control character or bad UTF-8 in %q", name))
	}
	return string(name), string(value), nil
}

// cpimNameChar is NAMECHAR of RFC 3862 §3.6 plus '.' for namespace prefixes.
var cpimNameChar = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`()<>@,;:\"/[]?={}`, rune(c))
	}
	return t
}()

// parseMIMEHeaders reads the encapsulated object's MIME headers up to the
// blank line (RFC 2045 §3; folded lines are continued, RFC 5322 §2.2.3) and
// returns its Content-Type and the content after the blank line.
func parseMIMEHeaders(b []byte) (string, []byte, error) {
	var ct strings.Builder
	inCT, seen, started := false, false, false
	for {
		line, next, ok := cutLine(b)
		if !ok {
			if len(b) == 0 && seen {
				break // content-less object without the final blank line
			}
			return "", nil, cpimError("missing blank line after MIME headers")
		}
		b = next
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !started {
				return "", nil, cpimError("continuation line without a header")
			}
			if inCT {
				ct.WriteByte(' ')
				ct.Write(bytes.TrimSpace(line))
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return "", nil, cpimError(fmt.Sprintf("bad MIME header %.40q", line))
		}
		started = true
		inCT = strings.EqualFold(string(line[:colon]), "Content-Type")
		if inCT {
			if seen {
				return "", nil, cpimError("more than one Content-Type")
			}
			seen = true
			ct.Write(bytes.TrimSpace(line[colon+1:]))
		}
	}
	if !seen || ct.Len() == 0 {
		return "", nil, cpimError("no Content-Type in the encapsulated object (RFC 3862 §2.4)")
	}
	if !controlFreeUTF8(ct.String()) {
		return "", nil, cpimError("control character or bad UTF-8 in Content-Type")
	}
	return ct.String(), b, nil
}
