package mapping

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrSDP is wrapped by every error of ParseSDP and MarshalSDP: the body is
// not an SDP stox can use (the sip stack answers 400 or 488).
var ErrSDP = errors.New("sdp")

// The SDP parser is stox's own rather than pion/sdp's: pion enforces the
// RFC 4566 §5 line order as a state machine, and real phones and B2BUAs
// (Asterisk, Kamailio-relayed legs) are not always in order. This one
// reads line by line, knows the few attributes the gateway needs and skips
// the others (RFC 4566 §5.13: unknown attributes are ignored).

// ParseSDP reads an offer or answer (RFC 4566/8866). Every m= line becomes a
// Media, whatever its kind, so that an answer can reject the ones stox does
// not relay with port 0 (RFC 3264 §6). Session-level c=, ice-ufrag,
// ice-pwd, ice-lite, fingerprint, setup, direction and extmap apply to the
// media that do not have their own (RFC 4566 §5, RFC 8839 §5, RFC 8122 §5).
func ParseSDP(b []byte) (Session, error) {
	var (
		s       Session
		sess    Media // session-level values, inherited below
		sessFP  Fingerprint
		cur     *Media
		curFP   Fingerprint
		curAddr bool
		curPT   = map[uint8]int{} // payload type → index in cur.Codecs
		started bool
	)
	// finish applies what the media section did not set itself.
	finish := func() {
		if cur == nil {
			return
		}
		if !curAddr {
			cur.Addr = sess.Addr
		}
		if cur.ICEUfrag == "" {
			cur.ICEUfrag = sess.ICEUfrag
		}
		if cur.ICEPwd == "" {
			cur.ICEPwd = sess.ICEPwd
		}
		cur.ICELite = cur.ICELite || sess.ICELite
		if cur.Direction == "" {
			cur.Direction = sess.Direction
		}
		if cur.Direction == "" {
			cur.Direction = SendRecv // RFC 3264 §5.1
		}
		if len(cur.HdrExts) == 0 && len(sess.HdrExts) > 0 {
			cur.HdrExts = append([]HdrExt(nil), sess.HdrExts...)
		}
		fp := curFP
		if fp.Hash == "" {
			fp.Hash, fp.Value = sessFP.Hash, sessFP.Value
		}
		if fp.Setup == "" {
			fp.Setup = sessFP.Setup
		}
		if fp.Hash != "" {
			cur.Fingerprint = &fp
		}
		s.Media = append(s.Media, *cur)
		cur = nil
	}
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, " \t\r")
		if line == "" {
			continue
		}
		if len(line) < 2 || line[1] != '=' {
			return Session{}, fmt.Errorf("%w: line %d: not <type>=<value>", ErrSDP, n+1)
		}
		typ, val := line[0], line[2:]
		if !started {
			if typ != 'v' {
				return Session{}, fmt.Errorf("%w: does not start with v=", ErrSDP)
			}
			started = true
			continue
		}
		switch typ {
		case 'o':
			s.Origin = parseOrigin(val)
		case 'c':
			addr, ok := parseConnection(val)
			if !ok {
				return Session{}, fmt.Errorf("%w: line %d: bad c= %q", ErrSDP, n+1, val)
			}
			if cur != nil {
				cur.Addr, curAddr = addr, true
			} else {
				sess.Addr = addr
			}
		case 'm':
			finish()
			m, err := parseMediaLine(val)
			if err != nil {
				return Session{}, fmt.Errorf("%w: line %d: %v", ErrSDP, n+1, err)
			}
			cur, curFP, curAddr = &m, Fingerprint{}, false
			clear(curPT)
			for _, f := range m.Fmt {
				pt, err := strconv.ParseUint(f, 10, 8)
				if err != nil || pt > 127 {
					continue // not RTP (m=application … webrtc-datachannel): kept in Fmt only
				}
				if _, dup := curPT[uint8(pt)]; dup {
					continue // listed twice: one codec (RFC 4566 §5.14 lists each format once)
				}
				c := staticCodec(uint8(pt))
				curPT[c.PT] = len(cur.Codecs)
				cur.Codecs = append(cur.Codecs, c)
			}
		case 'a':
			name, value, _ := strings.Cut(val, ":")
			if cur == nil {
				parseSessionAttr(&s, &sess, &sessFP, name, value)
				continue
			}
			parseMediaAttr(cur, &curFP, curPT, name, value)
		}
	}
	if !started {
		return Session{}, fmt.Errorf("%w: empty", ErrSDP)
	}
	finish()
	return s, nil
}

func parseOrigin(v string) Origin {
	f := strings.Fields(v)
	var o Origin
	if len(f) > 0 {
		o.User = f[0]
	}
	if len(f) > 1 {
		o.ID, _ = strconv.ParseUint(f[1], 10, 64) // lenient: some phones write non-numeric ids
	}
	if len(f) > 2 {
		o.Version, _ = strconv.ParseUint(f[2], 10, 64)
	}
	if len(f) > 5 {
		o.Addr = f[5]
	}
	return o
}

// parseConnection reads "IN IP4 addr[/ttl]" (RFC 4566 §5.7).
func parseConnection(v string) (string, bool) {
	f := strings.Fields(v)
	if len(f) < 3 || f[0] != "IN" {
		return "", false
	}
	addr, _, _ := strings.Cut(f[2], "/")
	return addr, addr != ""
}

// parseMediaLine reads "<media> <port>[/<count>] <proto> <fmt> …" (RFC 4566 §5.14).
func parseMediaLine(v string) (Media, error) {
	f := strings.Fields(v)
	if len(f) < 4 { // at least one format (RFC 4566 §5.14)
		return Media{}, fmt.Errorf("bad m= %q", v)
	}
	p, _, _ := strings.Cut(f[1], "/")
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return Media{}, fmt.Errorf("bad port in m= %q", v)
	}
	return Media{Kind: f[0], Port: int(port), Profile: f[2], Fmt: f[3:]}, nil
}

func parseSessionAttr(s *Session, sess *Media, fp *Fingerprint, name, value string) {
	switch name {
	case "group":
		f := strings.Fields(value)
		if len(f) > 0 && f[0] == "BUNDLE" {
			s.Bundle = f[1:]
		}
	case "ice-ufrag":
		sess.ICEUfrag = value
	case "ice-pwd":
		sess.ICEPwd = value
	case "ice-lite":
		sess.ICELite = true
	case "fingerprint":
		fp.Hash, fp.Value = parseFingerprint(value)
	case "setup":
		fp.Setup = strings.ToLower(strings.TrimSpace(value))
	case "sendrecv", "sendonly", "recvonly", "inactive":
		sess.Direction = Direction(name)
	case "extmap":
		if h, ok := parseExtmap(value); ok {
			sess.HdrExts = append(sess.HdrExts, h)
		}
	}
}

func parseMediaAttr(m *Media, fp *Fingerprint, pts map[uint8]int, name, value string) {
	switch name {
	case "mid":
		m.Mid = value
	case "rtpmap":
		pt, rest, ok := ptValue(value)
		i, known := pts[pt]
		if !ok || !known {
			return
		}
		enc := strings.Split(strings.TrimSpace(rest), "/")
		if enc[0] == "" {
			return
		}
		c := &m.Codecs[i]
		c.Name = enc[0]
		if len(enc) > 1 {
			if v, err := strconv.ParseUint(enc[1], 10, 32); err == nil {
				c.Clock = uint32(v)
			}
		}
		if len(enc) > 2 {
			if v, err := strconv.ParseUint(enc[2], 10, 16); err == nil {
				c.Channels = uint16(v)
			}
		}
	case "fmtp":
		if pt, rest, ok := ptValue(value); ok {
			if i, known := pts[pt]; known {
				m.Codecs[i].Fmtp = strings.TrimSpace(rest)
			}
		}
	case "rtcp-fb":
		id, rest, _ := strings.Cut(value, " ")
		f := strings.Fields(rest)
		if len(f) == 0 {
			return
		}
		fb := RTCPFB{Type: f[0]}
		if len(f) > 1 {
			fb.Subtype = strings.Join(f[1:], " ")
		}
		for i := range m.Codecs {
			if id == "*" || id == strconv.Itoa(int(m.Codecs[i].PT)) {
				m.Codecs[i].FB = append(m.Codecs[i].FB, fb)
			}
		}
	case "ptime":
		if v, err := strconv.Atoi(strings.TrimSpace(value)); err == nil && v > 0 {
			for i := range m.Codecs {
				m.Codecs[i].Ptime = v
			}
		}
	case "sendrecv", "sendonly", "recvonly", "inactive":
		m.Direction = Direction(name)
	case "rtcp-mux":
		m.RTCPMux = true
	case "rtcp-rsize":
		m.RTCPRsize = true
	case "ssrc":
		id, rest, _ := strings.Cut(value, " ")
		v, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			return
		}
		if m.SSRC == 0 {
			m.SSRC = uint32(v)
		}
		if a, b, ok := strings.Cut(rest, ":"); ok && a == "cname" && uint32(v) == m.SSRC && m.CNAME == "" {
			m.CNAME = b
		}
	case "extmap":
		if h, ok := parseExtmap(value); ok {
			m.HdrExts = append(m.HdrExts, h)
		}
	case "ice-ufrag":
		m.ICEUfrag = value
	case "ice-pwd":
		m.ICEPwd = value
	case "ice-lite":
		m.ICELite = true
	case "candidate":
		// RFC 8839 §5.1; one candidate stox cannot read (an unknown
		// transport, a mangled line) is skipped, the others still work.
		if c, err := ParseCandidate(value); err == nil {
			m.Candidates = append(m.Candidates, c)
		}
	case "end-of-candidates":
		m.EndOfCandidates = true
	case "fingerprint":
		fp.Hash, fp.Value = parseFingerprint(value)
	case "setup":
		fp.Setup = strings.ToLower(strings.TrimSpace(value))
	case "crypto":
		if c, ok := parseCrypto(value); ok {
			m.Crypto = append(m.Crypto, c)
		}
	}
}

// ptValue splits "<pt> <rest>" of rtpmap and fmtp.
func ptValue(v string) (uint8, string, bool) {
	id, rest, ok := strings.Cut(v, " ")
	if !ok {
		return 0, "", false
	}
	pt, err := strconv.ParseUint(id, 10, 8)
	if err != nil || pt > 127 {
		return 0, "", false
	}
	return uint8(pt), rest, true
}

// parseFingerprint reads "<hash> <hex>" (RFC 8122 §5); the hash name is
// lower-cased as in Jingle (XEP-0320), the value upper-cased.
func parseFingerprint(v string) (string, string) {
	f := strings.Fields(v)
	if len(f) != 2 {
		return "", ""
	}
	return strings.ToLower(f[0]), strings.ToUpper(f[1])
}

// parseExtmap reads "<id>[/<direction>] <uri> [<attributes>]" (RFC 8285 §8).
func parseExtmap(v string) (HdrExt, bool) {
	f := strings.Fields(v)
	if len(f) < 2 {
		return HdrExt{}, false
	}
	idS, dir, _ := strings.Cut(f[0], "/")
	id, err := strconv.Atoi(idS)
	if err != nil || id < 1 || id > 255 {
		return HdrExt{}, false
	}
	return HdrExt{ID: id, URI: f[1], Direction: Direction(dir)}, true
}

// parseCrypto reads "<tag> <suite> <key-params> [<session-params>]" (RFC 4568 §9.1).
func parseCrypto(v string) (Crypto, bool) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return Crypto{}, false
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 {
		return Crypto{}, false
	}
	return Crypto{Tag: tag, Suite: f[1], KeyParams: f[2], SessionParams: strings.Join(f[3:], " ")}, true
}

// staticCodec is the codec of a payload type from an m= line, named from
// the RFC 3551 §6 table so that a static type without a=rtpmap is still
// known; a=rtpmap overwrites it.
func staticCodec(pt uint8) Codec {
	c := Codec{PT: pt}
	switch pt {
	case 0:
		c.Name, c.Clock = "PCMU", 8000
	case 3:
		c.Name, c.Clock = "GSM", 8000
	case 4:
		c.Name, c.Clock = "G723", 8000
	case 8:
		c.Name, c.Clock = "PCMA", 8000
	case 9:
		c.Name, c.Clock = "G722", 8000
	case 13:
		c.Name, c.Clock = "CN", 8000
	case 18:
		c.Name, c.Clock = "G729", 8000
	}
	return c
}

// MarshalSDP writes s as RFC 4566 text with CRLF line ends. Media with port
// 0 keep their m= line (RFC 3264 §6: an answer has as many m= lines as the
// offer). ICE lite is written at session level (RFC 8839 §5.3), everything
// else per media.
func MarshalSDP(s Session) ([]byte, error) {
	var b strings.Builder
	line := func(format string, a ...any) {
		fmt.Fprintf(&b, format, a...)
		b.WriteString("\r\n")
	}
	sessAddr := "0.0.0.0"
	for _, m := range s.Media {
		if m.Addr != "" {
			sessAddr = m.Addr
			break
		}
	}
	o := s.Origin
	if o.User == "" {
		o.User = "-"
	}
	if o.Addr == "" {
		o.Addr = sessAddr
	}
	for _, v := range []string{o.User, o.Addr, sessAddr} {
		if !sdpToken(v) {
			return nil, fmt.Errorf("%w: %q cannot be written in an SDP line", ErrSDP, v)
		}
	}
	line("v=0")
	line("o=%s %d %d IN %s %s", o.User, o.ID, o.Version, addrType(o.Addr), o.Addr)
	line("s=-")
	line("c=IN %s %s", addrType(sessAddr), sessAddr)
	line("t=0 0")
	for _, m := range s.Media {
		if m.ICELite {
			line("a=ice-lite")
			break
		}
	}
	if len(s.Bundle) > 0 {
		line("a=group:BUNDLE %s", strings.Join(s.Bundle, " "))
	}
	for i, m := range s.Media {
		if err := marshalMedia(line, m, sessAddr); err != nil {
			return nil, fmt.Errorf("media %d: %w", i, err)
		}
	}
	return []byte(b.String()), nil
}

func marshalMedia(line func(string, ...any), m Media, sessAddr string) error {
	fmts := m.Fmt
	if len(m.Codecs) > 0 {
		fmts = make([]string, len(m.Codecs))
		for i, c := range m.Codecs {
			fmts[i] = strconv.Itoa(int(c.PT))
		}
	}
	if len(fmts) == 0 {
		fmts = []string{"0"} // RFC 4566 §5.14 needs one format, even on a rejected line
	}
	kind, profile := m.Kind, m.Profile
	if kind == "" {
		kind = "audio"
	}
	if profile == "" {
		profile = "RTP/AVP"
	}
	if m.Port < 0 || m.Port > 65535 {
		return fmt.Errorf("%w: port %d", ErrSDP, m.Port)
	}
	for _, v := range append([]string{kind, profile, m.Mid, m.ICEUfrag, m.ICEPwd, m.CNAME}, fmts...) {
		if v != "" && !sdpToken(v) {
			return fmt.Errorf("%w: %q cannot be written in an SDP line", ErrSDP, v)
		}
	}
	line("m=%s %d %s %s", kind, m.Port, profile, strings.Join(fmts, " "))
	if m.Addr != "" && m.Addr != sessAddr {
		if !sdpToken(m.Addr) {
			return fmt.Errorf("%w: address %q", ErrSDP, m.Addr)
		}
		line("c=IN %s %s", addrType(m.Addr), m.Addr)
	}
	if m.Port == 0 {
		// A rejected stream carries nothing else that matters (RFC 3264 §6);
		// its mid stays so that BUNDLE can name it (RFC 8843 §7.3.3).
		if m.Mid != "" {
			line("a=mid:%s", m.Mid)
		}
		return nil
	}
	if m.Mid != "" {
		line("a=mid:%s", m.Mid)
	}
	ptime := 0
	for _, c := range m.Codecs {
		if !sdpText(c.Name) || !sdpText(c.Fmtp) {
			return fmt.Errorf("%w: codec %d has a CR or LF", ErrSDP, c.PT)
		}
		if c.Name != "" {
			enc := fmt.Sprintf("%s/%d", c.Name, c.Clock)
			if c.Channels > 1 {
				enc += "/" + strconv.Itoa(int(c.Channels))
			}
			line("a=rtpmap:%d %s", c.PT, enc)
		}
		if c.Fmtp != "" {
			line("a=fmtp:%d %s", c.PT, c.Fmtp)
		}
		for _, fb := range c.FB {
			if !sdpText(fb.Type) || !sdpText(fb.Subtype) {
				return fmt.Errorf("%w: rtcp-fb has a CR or LF", ErrSDP)
			}
			if fb.Subtype != "" {
				line("a=rtcp-fb:%d %s %s", c.PT, fb.Type, fb.Subtype)
			} else {
				line("a=rtcp-fb:%d %s", c.PT, fb.Type)
			}
		}
		if ptime == 0 && c.Ptime > 0 {
			ptime = c.Ptime
		}
	}
	if ptime > 0 {
		line("a=ptime:%d", ptime)
	}
	for _, h := range m.HdrExts {
		if !sdpToken(h.URI) {
			return fmt.Errorf("%w: extmap uri %q", ErrSDP, h.URI)
		}
		if h.Direction != "" && h.Direction != SendRecv {
			line("a=extmap:%d/%s %s", h.ID, h.Direction, h.URI)
		} else {
			line("a=extmap:%d %s", h.ID, h.URI)
		}
	}
	dir := m.Direction
	if dir == "" {
		dir = SendRecv
	}
	switch dir {
	case SendRecv, SendOnly, RecvOnly, Inactive:
	default:
		return fmt.Errorf("%w: direction %q", ErrSDP, dir)
	}
	line("a=%s", dir)
	if m.RTCPMux {
		line("a=rtcp-mux")
	}
	if m.RTCPRsize {
		line("a=rtcp-rsize")
	}
	if m.ICEUfrag != "" {
		line("a=ice-ufrag:%s", m.ICEUfrag)
	}
	if m.ICEPwd != "" {
		line("a=ice-pwd:%s", m.ICEPwd)
	}
	if fp := m.Fingerprint; fp != nil {
		if !sdpToken(fp.Hash) || !sdpToken(fp.Value) || (fp.Setup != "" && !sdpToken(fp.Setup)) {
			return fmt.Errorf("%w: fingerprint", ErrSDP)
		}
		line("a=fingerprint:%s %s", fp.Hash, fp.Value)
		if fp.Setup != "" {
			line("a=setup:%s", fp.Setup)
		}
	}
	for _, c := range m.Candidates {
		a := CandidateAttr(c)
		if !sdpText(a) {
			return fmt.Errorf("%w: candidate has a CR or LF", ErrSDP)
		}
		line("a=%s", a)
	}
	if m.EndOfCandidates {
		line("a=end-of-candidates")
	}
	for _, c := range m.Crypto {
		if !sdpToken(c.Suite) || !sdpToken(c.KeyParams) || !sdpText(c.SessionParams) {
			return fmt.Errorf("%w: crypto %d", ErrSDP, c.Tag)
		}
		if c.SessionParams != "" {
			line("a=crypto:%d %s %s %s", c.Tag, c.Suite, c.KeyParams, c.SessionParams)
		} else {
			line("a=crypto:%d %s %s", c.Tag, c.Suite, c.KeyParams)
		}
	}
	if m.SSRC != 0 && m.CNAME != "" {
		line("a=ssrc:%d cname:%s", m.SSRC, m.CNAME)
	}
	return nil
}

// addrType is the RFC 4566 §5.7 address type of a connection address.
func addrType(a string) string {
	if strings.Contains(a, ":") {
		return "IP6"
	}
	return "IP4"
}

// sdpToken reports whether v fits as one field of an SDP line: not empty,
// no space and no line break, so values from the XMPP side cannot inject
// lines.
func sdpToken(v string) bool {
	return v != "" && !strings.ContainsAny(v, " \t\r\n\x00")
}

// sdpText reports whether v fits in the rest of an SDP line.
func sdpText(v string) bool {
	return !strings.ContainsAny(v, "\r\n\x00")
}

// ParseCandidate reads the value of an a=candidate attribute (RFC 8839
// §5.1), with or without its "candidate:" prefix:
// "<foundation> <component> <transport> <priority> <ip> <port> typ <type>
// [raddr <addr> rport <port>] *(<name> <value>)". The transport is
// lower-cased. generation and tcptype are kept; other extensions are
// skipped.
func ParseCandidate(attr string) (Candidate, error) {
	v := strings.TrimSpace(attr)
	v = strings.TrimPrefix(v, "a=")
	v = strings.TrimPrefix(v, "candidate:")
	f := strings.Fields(v)
	if len(f) < 8 || f[6] != "typ" {
		return Candidate{}, fmt.Errorf("%w: candidate %q: too few fields", ErrSDP, attr)
	}
	comp, err := strconv.ParseUint(f[1], 10, 8)
	if err != nil || comp == 0 {
		return Candidate{}, fmt.Errorf("%w: candidate %q: component", ErrSDP, attr)
	}
	prio, err := strconv.ParseUint(f[3], 10, 32)
	if err != nil {
		return Candidate{}, fmt.Errorf("%w: candidate %q: priority", ErrSDP, attr)
	}
	port, err := strconv.ParseUint(f[5], 10, 16)
	if err != nil {
		return Candidate{}, fmt.Errorf("%w: candidate %q: port", ErrSDP, attr)
	}
	c := Candidate{
		Foundation: f[0], Component: int(comp), Protocol: strings.ToLower(f[2]),
		Priority: uint32(prio), IP: f[4], Port: int(port), Type: f[7],
	}
	for i := 8; i+1 < len(f); i += 2 {
		k, val := f[i], f[i+1]
		switch k {
		case "raddr":
			c.RelAddr = val
		case "rport":
			p, err := strconv.ParseUint(val, 10, 16)
			if err != nil {
				return Candidate{}, fmt.Errorf("%w: candidate %q: rport", ErrSDP, attr)
			}
			c.RelPort = int(p)
		case "generation":
			if g, err := strconv.ParseUint(val, 10, 16); err == nil {
				c.Generation = int(g)
			}
		case "tcptype":
			c.TCPType = val
		}
	}
	return c, nil
}

// CandidateAttr is the a=candidate value of c (RFC 8839 §5.1), with the
// "candidate:" prefix and without "a=".
func CandidateAttr(c Candidate) string {
	var b strings.Builder
	proto := c.Protocol
	if proto == "" {
		proto = "udp"
	}
	typ := c.Type
	if typ == "" {
		typ = "host"
	}
	fmt.Fprintf(&b, "candidate:%s %d %s %d %s %d typ %s", c.Foundation, c.Component, proto, c.Priority, c.IP, c.Port, typ)
	if c.RelAddr != "" {
		fmt.Fprintf(&b, " raddr %s rport %d", c.RelAddr, c.RelPort)
	}
	if c.TCPType != "" {
		fmt.Fprintf(&b, " tcptype %s", c.TCPType)
	}
	if c.Generation != 0 {
		fmt.Fprintf(&b, " generation %d", c.Generation)
	}
	return b.String()
}
