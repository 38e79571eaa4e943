package media

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"stox.dev/stox/mapping"
)

// The WebRTC leg is pion's, and pion speaks SDP (RFC 8829). These functions
// turn the neutral mapping.Media into the SDP pion reads, and pion's own
// description back into mapping.Media. Only the WebRTC leg goes through
// them; the calls capability owns the SDP and Jingle of the signalling.

// webrtcSDP writes a one-stream session description of m (RFC 8839 ICE
// attributes, RFC 8122 fingerprint, RFC 5761 rtcp-mux).
func webrtcSDP(m mapping.Media) string {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
	if m.ICELite {
		b.WriteString("a=ice-lite\r\n")
	}
	mid := m.Mid
	if mid == "" {
		mid = "0"
	}
	fmt.Fprintf(&b, "a=group:BUNDLE %s\r\n", mid)
	kind := m.Kind
	if kind == "" {
		kind = "audio"
	}
	port := m.Port
	if port == 0 {
		port = 9 // RFC 8839 §4.2.2: no default candidate yet
	}
	prof := m.Profile
	if prof == "" {
		prof = "UDP/TLS/RTP/SAVPF"
	}
	fmt.Fprintf(&b, "m=%s %d %s", kind, port, prof)
	for _, c := range m.Codecs {
		fmt.Fprintf(&b, " %d", c.PT)
	}
	b.WriteString("\r\n")
	addr := m.Addr
	if addr == "" {
		addr = "0.0.0.0"
	}
	fmt.Fprintf(&b, "c=IN %s %s\r\n", ipVersion(addr), addr)
	fmt.Fprintf(&b, "a=mid:%s\r\n", mid)
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", m.ICEUfrag, m.ICEPwd)
	if f := m.Fingerprint; f != nil {
		fmt.Fprintf(&b, "a=fingerprint:%s %s\r\n", f.Hash, f.Value)
		if f.Setup != "" {
			fmt.Fprintf(&b, "a=setup:%s\r\n", f.Setup)
		}
	}
	b.WriteString("a=rtcp-mux\r\n")
	dir := m.Direction
	if dir == "" {
		dir = mapping.SendRecv
	}
	fmt.Fprintf(&b, "a=%s\r\n", dir)
	for _, c := range m.Codecs {
		fmt.Fprintf(&b, "a=rtpmap:%d %s/%d", c.PT, c.Name, c.Clock)
		if c.Channels > 1 {
			fmt.Fprintf(&b, "/%d", c.Channels)
		}
		b.WriteString("\r\n")
		if c.Fmtp != "" {
			fmt.Fprintf(&b, "a=fmtp:%d %s\r\n", c.PT, c.Fmtp)
		}
		for _, fb := range c.FB {
			fmt.Fprintf(&b, "a=rtcp-fb:%d %s", c.PT, fb.Type)
			if fb.Subtype != "" {
				b.WriteString(" " + fb.Subtype)
			}
			b.WriteString("\r\n")
		}
	}
	if m.SSRC != 0 {
		cname := m.CNAME
		if cname == "" {
			cname = "stox"
		}
		fmt.Fprintf(&b, "a=ssrc:%d cname:%s\r\n", m.SSRC, cname)
	}
	for _, c := range m.Candidates {
		if s, ok := candidateAttr(c); ok {
			fmt.Fprintf(&b, "a=%s\r\n", s)
		}
	}
	if m.EndOfCandidates {
		b.WriteString("a=end-of-candidates\r\n")
	}
	return b.String()
}

func ipVersion(addr string) string {
	if strings.Contains(addr, ":") {
		return "IP6"
	}
	return "IP4"
}

// candidateAttr writes c as an RFC 8839 §5.1 candidate attribute; only UDP
// candidates are usable (stox's ICE agent has no TCP).
func candidateAttr(c mapping.Candidate) (string, bool) {
	proto := strings.ToLower(c.Protocol)
	if proto == "" {
		proto = "udp"
	}
	// Only IP literals: a host name would make pion resolve it (a lookup
	// driven by the peer), and stox's agent does no mDNS.
	if _, err := netip.ParseAddr(c.IP); err != nil || proto != "udp" || c.Port <= 0 || c.Port > 65535 {
		return "", false
	}
	if c.RelAddr != "" {
		if _, err := netip.ParseAddr(c.RelAddr); err != nil {
			c.RelAddr = ""
		}
	}
	if !token(c.Foundation) || !token(c.Type) {
		return "", false
	}
	found := c.Foundation
	if found == "" {
		found = "1"
	}
	comp := c.Component
	if comp == 0 {
		comp = 1
	}
	typ := c.Type
	if typ == "" {
		typ = "host"
	}
	s := fmt.Sprintf("candidate:%s %d %s %d %s %d typ %s", found, comp, proto, c.Priority, c.IP, c.Port, typ)
	if c.RelAddr != "" {
		s += fmt.Sprintf(" raddr %s rport %d", c.RelAddr, c.RelPort)
	}
	return s + fmt.Sprintf(" generation %d", c.Generation), true
}

// token reports whether s is empty or printable ASCII without spaces, as
// the candidate attribute's fields are (RFC 8839 §5.1).
func token(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// parseWebRTC reads the first audio stream of a session description
// (pion's local description) into mapping.Media.
func parseWebRTC(desc string) (mapping.Media, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(desc); err != nil {
		return mapping.Media{}, fmt.Errorf("parse local description: %w", err)
	}
	var md *sdp.MediaDescription
	for _, x := range sd.MediaDescriptions {
		if x.MediaName.Media == "audio" {
			md = x
			break
		}
	}
	if md == nil {
		return mapping.Media{}, fmt.Errorf("parse local description: no audio stream")
	}
	m := mapping.Media{
		Kind:    md.MediaName.Media,
		Profile: strings.Join(md.MediaName.Protos, "/"),
		Port:    md.MediaName.Port.Value,
	}
	if md.ConnectionInformation != nil && md.ConnectionInformation.Address != nil {
		m.Addr = md.ConnectionInformation.Address.Address
	}
	attr := func(key string) (string, bool) {
		if v, ok := md.Attribute(key); ok {
			return v, true
		}
		return sd.Attribute(key)
	}
	m.Mid, _ = md.Attribute("mid")
	m.ICEUfrag, _ = attr("ice-ufrag")
	m.ICEPwd, _ = attr("ice-pwd")
	_, m.ICELite = sd.Attribute("ice-lite")
	if fp, ok := attr("fingerprint"); ok {
		hash, val, _ := strings.Cut(fp, " ")
		setup, _ := attr("setup")
		m.Fingerprint = &mapping.Fingerprint{Hash: strings.ToLower(hash), Value: strings.ToUpper(val), Setup: setup}
	}
	byPT := map[uint8]int{}
	for _, f := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		byPT[uint8(pt)] = len(m.Codecs)
		m.Codecs = append(m.Codecs, mapping.Codec{PT: uint8(pt)})
	}
	for _, a := range md.Attributes {
		switch a.Key {
		case "rtcp-mux":
			m.RTCPMux = true
		case "rtcp-rsize":
			m.RTCPRsize = true
		case "sendrecv", "sendonly", "recvonly", "inactive":
			m.Direction = mapping.Direction(a.Key)
		case "end-of-candidates":
			m.EndOfCandidates = true
		case "rtpmap", "fmtp", "rtcp-fb":
			ptS, rest, _ := strings.Cut(a.Value, " ")
			pt, err := strconv.ParseUint(ptS, 10, 7)
			i, ok := byPT[uint8(pt)]
			if err != nil || !ok {
				continue
			}
			c := &m.Codecs[i]
			switch a.Key {
			case "rtpmap":
				parts := strings.Split(rest, "/")
				c.Name = parts[0]
				if len(parts) > 1 {
					n, _ := strconv.ParseUint(parts[1], 10, 32)
					c.Clock = uint32(n)
				}
				if len(parts) > 2 {
					n, _ := strconv.ParseUint(parts[2], 10, 16)
					c.Channels = uint16(n)
				}
			case "fmtp":
				c.Fmtp = rest
			case "rtcp-fb":
				t, sub, _ := strings.Cut(rest, " ")
				c.FB = append(c.FB, mapping.RTCPFB{Type: t, Subtype: sub})
			}
		case "ssrc":
			if m.SSRC != 0 {
				continue
			}
			id, rest, _ := strings.Cut(a.Value, " ")
			n, err := strconv.ParseUint(id, 10, 32)
			if err != nil {
				continue
			}
			m.SSRC = uint32(n)
			if v, ok := strings.CutPrefix(rest, "cname:"); ok {
				m.CNAME = v
			}
		case "extmap":
			id, rest, _ := strings.Cut(a.Value, " ")
			dir := ""
			if i, d, ok := strings.Cut(id, "/"); ok {
				id, dir = i, d
			}
			n, err := strconv.Atoi(id)
			if err != nil {
				continue
			}
			uri, _, _ := strings.Cut(rest, " ")
			m.HdrExts = append(m.HdrExts, mapping.HdrExt{ID: n, URI: uri, Direction: mapping.Direction(dir)})
		case "candidate":
			if c, ok := parseCandidate(a.Value); ok {
				c.ID = "stox" + strconv.Itoa(len(m.Candidates)+1)
				m.Candidates = append(m.Candidates, c)
			}
		}
	}
	// RFC 3264 §6: a stream with no codec left is rejected; keep only the
	// codecs that have an rtpmap or a static PT.
	kept := m.Codecs[:0]
	for _, c := range m.Codecs {
		if c.Name != "" {
			kept = append(kept, c)
		}
	}
	m.Codecs = kept
	return m, nil
}

// parseCandidate reads "foundation component transport priority ip port
// typ type [raddr a rport p] [name value]…" (RFC 8839 §5.1).
func parseCandidate(v string) (mapping.Candidate, bool) {
	f := strings.Fields(strings.TrimPrefix(v, "candidate:"))
	if len(f) < 8 || f[6] != "typ" {
		return mapping.Candidate{}, false
	}
	comp, err1 := strconv.Atoi(f[1])
	prio, err2 := strconv.ParseUint(f[3], 10, 32)
	port, err3 := strconv.Atoi(f[5])
	if err1 != nil || err2 != nil || err3 != nil {
		return mapping.Candidate{}, false
	}
	c := mapping.Candidate{Foundation: f[0], Component: comp, Protocol: strings.ToLower(f[2]),
		Priority: uint32(prio), IP: f[4], Port: port, Type: f[7]}
	for i := 8; i+1 < len(f); i += 2 {
		switch f[i] {
		case "raddr":
			c.RelAddr = f[i+1]
		case "rport":
			c.RelPort, _ = strconv.Atoi(f[i+1])
		case "generation":
			c.Generation, _ = strconv.Atoi(f[i+1])
		case "tcptype":
			c.TCPType = f[i+1]
		}
	}
	return c, true
}
