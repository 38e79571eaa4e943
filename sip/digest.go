package sip

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Digest authentication, server side (RFC 7616 as used by SIP, RFC 3261 §22.4,
// RFC 8760 for SHA-256 in SIP). sipgo only has the client side.

// digestCreds are the parameters of one Authorization or Proxy-Authorization
// header value of scheme Digest.
type digestCreds struct {
	Username  string
	Realm     string
	Nonce     string
	URI       string
	Response  string
	Algorithm string // "MD5" when absent
	Cnonce    string
	Nc        string
	Qop       string
	Opaque    string
}

var errNotDigest = errors.New("not a Digest credential")

// parseDigest parses `Digest k=v, k="v", ...` (RFC 7616 §3.4, RFC 3261 §25.1
// digest-response). Unknown parameters are ignored; quoted strings may contain
// commas and backslash escapes.
func parseDigest(s string) (digestCreds, error) {
	var c digestCreds
	s = strings.TrimLeft(s, " \t")
	if len(s) < 7 || !strings.EqualFold(s[:6], "Digest") || (s[6] != ' ' && s[6] != '\t') {
		return c, errNotDigest
	}
	s = s[7:]
	seen := 0
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return c, errors.New("digest: malformed parameter")
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			closed := false
			for ; i < len(s); i++ {
				ch := s[i]
				if ch == '\\' && i+1 < len(s) {
					i++
					b.WriteByte(s[i])
					continue
				}
				if ch == '"' {
					closed = true
					break
				}
				b.WriteByte(ch)
			}
			if !closed {
				return c, errors.New("digest: unterminated quoted string")
			}
			val = b.String()
			s = s[i+1:]
		} else {
			end := strings.IndexAny(s, ", \t")
			if end < 0 {
				end = len(s)
			}
			val = s[:end]
			s = s[end:]
		}
		switch key {
		case "username":
			c.Username = val
		case "realm":
			c.Realm = val
		case "nonce":
			c.Nonce = val
		case "uri":
			c.URI = val
		case "response":
			c.Response = val
		case "algorithm":
			c.Algorithm = val
		case "cnonce":
			c.Cnonce = val
		case "nc":
			c.Nc = val
		case "qop":
			c.Qop = val
		case "opaque":
			c.Opaque = val
		}
		seen++
		if seen > 64 {
			return c, errors.New("digest: too many parameters")
		}
	}
	if c.Username == "" || c.Nonce == "" || c.Response == "" {
		return c, errors.New("digest: missing username, nonce or response")
	}
	return c, nil
}

// digestHash returns the hash for a digest algorithm name, or nil when the
// algorithm is not supported (the -sess variants are not: SIP never used them).
func digestHash(alg string) func() hash.Hash {
	switch strings.ToUpper(alg) {
	case "", "MD5":
		return md5.New
	case "SHA-256":
		return sha256.New
	}
	return nil
}

func hexHash(h hash.Hash, parts ...string) string {
	h.Reset()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{':'})
		}
		h.Write([]byte(p))
	}
	var sum [32]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// HA1 computes H(user:realm:password) for alg ("MD5" or "SHA-256"), the value
// an Account stores (RFC 7616 §3.4.2).
func HA1(alg, user, realm, password string) string {
	nh := digestHash(alg)
	if nh == nil {
		return ""
	}
	return hexHash(nh(), user, realm, password)
}

// digestResponse computes the expected request-digest (RFC 7616 §3.4.1, RFC
// 2617 §3.2.2.1, and the RFC 2069 form when qop is absent).
func digestResponse(c *digestCreds, method, ha1 string) string {
	nh := digestHash(c.Algorithm)
	if nh == nil {
		return ""
	}
	h := nh()
	ha2 := hexHash(h, method, c.URI)
	if c.Qop == "" {
		return hexHash(h, ha1, c.Nonce, ha2)
	}
	return hexHash(h, ha1, c.Nonce, c.Nc, c.Cnonce, c.Qop, ha2)
}

// verifyDigest reports whether c.Response is right for method and ha1. It does
// not look at the nonce's freshness (see nonces.check).
func verifyDigest(c *digestCreds, method, ha1 string) bool {
	if c.Qop != "" && !strings.EqualFold(c.Qop, "auth") {
		return false
	}
	if c.Qop != "" && (c.Cnonce == "" || c.Nc == "") {
		return false
	}
	want := digestResponse(c, method, ha1)
	if want == "" || len(want) != len(c.Response) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(c.Response))) == 1
}

// nonces issues and checks stateless nonces: base64url(ts || salt ||
// HMAC-SHA256(secret, ts || salt || realm)[:16]) with ts the issue time in
// Unix seconds, big-endian, and salt 8 random bytes, so that no two
// challenges share a nonce (ncGuard counts per nonce). Any node holding the
// same secret can verify; nothing is stored for a nonce until a request
// authenticated with it (see ncGuard for replay).
type nonces struct {
	secret   []byte
	lifetime time.Duration
}

const (
	nonceSaltLen = 8
	nonceMACLen  = 16
	nonceLen     = 8 + nonceSaltLen + nonceMACLen
)

func (n *nonces) mac(tsSalt []byte, realm string) []byte {
	m := hmac.New(sha256.New, n.secret)
	m.Write(tsSalt)
	m.Write([]byte(realm))
	return m.Sum(nil)[:nonceMACLen]
}

func (n *nonces) issue(now time.Time, realm string) string {
	var buf [nonceLen]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(now.Unix()))
	rand.Read(buf[8 : 8+nonceSaltLen])
	copy(buf[8+nonceSaltLen:], n.mac(buf[:8+nonceSaltLen], realm))
	return base64.RawURLEncoding.EncodeToString(buf[:])
}

type nonceState int

const (
	nonceInvalid nonceState = iota
	nonceValid
	nonceStale // authentic but expired: challenge again with stale=true
)

// decodeNonce splits a nonce into its timestamp and salt, and its MAC.
func decodeNonce(s string) (tsSalt []byte, mac []byte, ok bool) {
	if base64.RawURLEncoding.DecodedLen(len(s)) != nonceLen {
		return nil, nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != nonceLen {
		return nil, nil, false
	}
	return b[:8+nonceSaltLen], b[8+nonceSaltLen:], true
}

func (n *nonces) check(s string, now time.Time, realm string) nonceState {
	st, _ := n.checkUntil(s, now, realm)
	return st
}

// checkUntil is check that also returns when a valid nonce turns stale.
func (n *nonces) checkUntil(s string, now time.Time, realm string) (nonceState, time.Time) {
	ts, mac, ok := decodeNonce(s)
	if !ok || !hmac.Equal(mac, n.mac(ts, realm)) {
		return nonceInvalid, time.Time{}
	}
	issued := n.issued(ts)
	age := now.Sub(issued)
	if age < -5*time.Second { // from the future: another node's clock; tolerate small skew
		return nonceInvalid, time.Time{}
	}
	if age > n.lifetime {
		return nonceStale, time.Time{}
	}
	return nonceValid, issued.Add(n.lifetime)
}

func (n *nonces) issued(tsSalt []byte) time.Time {
	return time.Unix(int64(binary.BigEndian.Uint64(tsSalt[:8])), 0)
}

// challenges returns the WWW-Authenticate / Proxy-Authenticate values in
// order of preference (RFC 7616 §3.7, RFC 8760 §2.4). MD5 comes first unless
// sha256First: many deployed UACs (SIPp 3.6, older phones) only read the first
// challenge and know nothing but MD5, and would fail outright.
func (n *nonces) challenges(now time.Time, realm string, stale, sha256First bool) [2]string {
	nonce := n.issue(now, realm)
	st := ""
	if stale {
		st = ", stale=true"
	}
	base := `Digest realm="` + realm + `", nonce="` + nonce + `", qop="auth"` + st
	if sha256First {
		return [2]string{base + ", algorithm=SHA-256", base + ", algorithm=MD5"}
	}
	return [2]string{base + ", algorithm=MD5", base + ", algorithm=SHA-256"}
}

// ncGuard rejects replayed credentials: RFC 7616 §3.4 (and RFC 2617
// §3.2.2.3) lets the server "check that the nc value is greater than any
// previously used with the same nonce". For each nonce that authenticated a
// request it keeps the highest nonce-count and a bitmap of the 64 below it,
// so requests reordered on UDP still pass while a captured request sent
// again is refused. A credential without qop (RFC 2069 form, RFC 3261
// §22.4) has no nonce-count and is single-use. Entries live as long as the
// nonce is fresh; the table is bounded, and when it is full new nonces are
// refused (the UA gets a fresh challenge) rather than left unguarded.
type ncGuard struct {
	mu        sync.Mutex
	m         map[string]*ncWindow
	max       int
	lastSweep time.Time
}

type ncWindow struct {
	expires int64  // Unix seconds: the nonce is stale after, the entry useless
	high    uint64 // highest nonce-count seen
	seen    uint64 // bit i: high-i was seen
}

const ncGuardMax = 1 << 20

func newNCGuard(max int) *ncGuard {
	return &ncGuard{m: make(map[string]*ncWindow), max: max}
}

// accept records that nonce authenticated a request with nonce-count nc (hex,
// "" without qop) and reports whether that is new. expires is when the nonce
// turns stale.
func (g *ncGuard) accept(nonce, nc string, expires, now time.Time) bool {
	n := uint64(0)
	if nc != "" {
		v, err := strconv.ParseUint(nc, 16, 32) // RFC 7616 §3.4: 8LHEX
		if err != nil || v == 0 {
			return false
		}
		n = v
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// Full: sweep at most once a second, not on every request while full.
	if since := now.Sub(g.lastSweep); since >= 10*time.Second || len(g.m) >= g.max && since >= time.Second {
		g.sweep(now.Unix())
		g.lastSweep = now
	}
	w := g.m[nonce]
	if w == nil {
		if len(g.m) >= g.max {
			return false
		}
		g.m[nonce] = &ncWindow{expires: expires.Unix(), high: n, seen: 1}
		return true
	}
	switch {
	case n > w.high:
		if d := n - w.high; d < 64 {
			w.seen = w.seen<<d | 1
		} else {
			w.seen = 1
		}
		w.high = n
		return true
	case w.high-n >= 64:
		return false // too far behind to tell: refuse
	default:
		bit := uint64(1) << (w.high - n)
		if w.seen&bit != 0 {
			return false
		}
		w.seen |= bit
		return true
	}
}

func (g *ncGuard) sweep(now int64) {
	for k, w := range g.m {
		if w.expires < now {
			delete(g.m, k)
		}
	}
}
