package mapping

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Jingle ⇄ Media: the mapping of XEP-0167 §12 (SDP), XEP-0176 §12 (ICE),
// XEP-0320 §4 (DTLS), XEP-0293/0294/0338/0339, summed up in docs/calls.md
// ("Translation").

// ErrJingle is wrapped by the errors of the Jingle translators: the stanza
// is answered with bad-request (XEP-0166 §7.2).
var ErrJingle = errors.New("jingle")

// JingleRole is a party of a Jingle session (XEP-0166 §7.1).
type JingleRole int

// The two roles of a session: who sent session-initiate, who accepts it.
const (
	RoleInitiator JingleRole = iota + 1
	RoleResponder
)

func (r JingleRole) String() string {
	if r == RoleResponder {
		return "responder"
	}
	return "initiator"
}

// writerRole is who wrote the contents of j: the responder for the
// accepting actions, the initiator otherwise. Only content-add and
// transport-replace can come from either side; stox sends neither and
// reads them as the initiator's.
func writerRole(action string) JingleRole {
	switch action {
	case ActSessionAccept, ActContentAccept, ActTransportAccept:
		return RoleResponder
	}
	return RoleInitiator
}

// directionForSenders is the direction, as written by writer, of a content
// whose senders attribute is s (XEP-0166 §7.3; RFC 3264 §5.1).
func directionForSenders(s string, writer JingleRole) (Direction, error) {
	switch s {
	case "", "both":
		return SendRecv, nil
	case "none":
		return Inactive, nil
	case "initiator", "responder":
		if (s == "initiator") == (writer == RoleInitiator) {
			return SendOnly, nil
		}
		return RecvOnly, nil
	}
	return "", fmt.Errorf("%w: senders %q", ErrJingle, s)
}

// sendersForDirection is the inverse of directionForSenders; "" for both
// (the default, left out).
func sendersForDirection(d Direction, writer JingleRole) string {
	me, other := writer.String(), RoleResponder.String()
	if writer == RoleResponder {
		other = RoleInitiator.String()
	}
	switch d {
	case SendOnly:
		return me
	case RecvOnly:
		return other
	case Inactive:
		return "none"
	}
	return ""
}

// JingleToSession reads the RTP contents of a session-initiate,
// session-accept or content-add into a Session. Contents without an RTP
// description (another application) are left out: answering without them
// rejects them (XEP-0166 §6.3). It is lenient where real clients are
// (StanzaJS candidates without id, generation or network); numbers that do
// not parse and the absence of any RTP content are errors wrapping
// ErrJingle.
func JingleToSession(j Jingle) (Session, error) {
	var s Session
	writer := writerRole(j.Action)
	for _, c := range j.Contents {
		if c.Description == nil {
			continue
		}
		m, err := contentToMedia(c, writer)
		if err != nil {
			return Session{}, fmt.Errorf("content %q: %w", c.Name, err)
		}
		s.Media = append(s.Media, m)
	}
	if len(s.Media) == 0 {
		return Session{}, fmt.Errorf("%w: no RTP content", ErrJingle)
	}
	if g := j.Group; g != nil && g.Semantics == "BUNDLE" {
		for _, c := range g.Contents {
			s.Bundle = append(s.Bundle, c.Name)
		}
	}
	return s, nil
}

func contentToMedia(c JingleContent, writer JingleRole) (Media, error) {
	d := c.Description
	if c.Name == "" {
		return Media{}, fmt.Errorf("%w: content without a name", ErrJingle)
	}
	dir, err := directionForSenders(c.Senders, writer)
	if err != nil {
		return Media{}, err
	}
	m := Media{Mid: c.Name, Kind: d.Media, Direction: dir, RTCPMux: d.RTCPMux != nil, RTCPRsize: d.RTCPRsize != nil}
	if m.Kind == "" {
		m.Kind = "audio"
	}
	var descFB []RTCPFB
	for _, fb := range d.FB {
		descFB = append(descFB, RTCPFB(fb))
	}
	for _, p := range d.PayloadTypes {
		codec, err := payloadToCodec(p)
		if err != nil {
			return Media{}, err
		}
		codec.FB = append(codec.FB, descFB...)
		m.Codecs = append(m.Codecs, codec)
	}
	if d.SSRC != "" {
		v, err := strconv.ParseUint(d.SSRC, 10, 32)
		if err != nil {
			return Media{}, fmt.Errorf("%w: ssrc %q", ErrJingle, d.SSRC)
		}
		m.SSRC = uint32(v)
	}
	for _, src := range d.Sources {
		v, err := strconv.ParseUint(src.SSRC, 10, 32)
		if err != nil {
			return Media{}, fmt.Errorf("%w: source ssrc %q", ErrJingle, src.SSRC)
		}
		if m.SSRC == 0 {
			m.SSRC = uint32(v)
		}
		if uint32(v) != m.SSRC || m.CNAME != "" {
			continue
		}
		for _, p := range src.Params {
			if p.Name == "cname" {
				m.CNAME = p.Value
			}
		}
	}
	for _, h := range d.HdrExts {
		id, err := strconv.Atoi(h.ID)
		if err != nil || id < 1 || id > 255 {
			return Media{}, fmt.Errorf("%w: rtp-hdrext id %q", ErrJingle, h.ID)
		}
		hd := HdrExt{ID: id, URI: h.URI}
		if h.Senders != "" && h.Senders != "both" {
			if hd.Direction, err = directionForSenders(h.Senders, writer); err != nil {
				return Media{}, err
			}
		}
		m.HdrExts = append(m.HdrExts, hd)
	}
	if e := d.Encryption; e != nil {
		for _, k := range e.Crypto {
			tag, err := strconv.Atoi(k.Tag)
			if err != nil || tag < 0 {
				return Media{}, fmt.Errorf("%w: crypto tag %q", ErrJingle, k.Tag)
			}
			m.Crypto = append(m.Crypto, Crypto{Tag: tag, Suite: k.Suite, KeyParams: k.KeyParams, SessionParams: k.SessionParams})
		}
	}
	if t := c.Transport; t != nil {
		m.ICEUfrag, m.ICEPwd = t.Ufrag, t.Pwd
		m.EndOfCandidates = t.GatheringComplete != nil
		for _, jc := range t.Candidates {
			cand, err := jingleToCandidate(jc)
			if err != nil {
				return Media{}, err
			}
			m.Candidates = append(m.Candidates, cand)
		}
		if fp := t.Fingerprint; fp != nil {
			m.Fingerprint = &Fingerprint{
				Hash:  strings.ToLower(strings.TrimSpace(fp.Hash)),
				Value: strings.ToUpper(strings.TrimSpace(fp.Value)),
				Setup: strings.ToLower(fp.Setup),
			}
		}
	}
	switch {
	case m.Fingerprint != nil:
		m.Profile = "UDP/TLS/RTP/SAVPF" // RFC 5764 §8, as WebRTC writes it
	case len(m.Crypto) > 0:
		m.Profile = "RTP/SAVP" // XEP-0167 §7
	default:
		m.Profile = "RTP/AVP"
	}
	// The default candidate goes into c= and m= (RFC 8839 §4.2.1.2); without
	// candidates yet (trickle), the placeholder of RFC 8840 §4.1.2.
	m.Addr, m.Port = "0.0.0.0", 9
	var best *Candidate
	for i, cand := range m.Candidates {
		if cand.Component == 1 && cand.Protocol == "udp" && (best == nil || cand.Priority > best.Priority) {
			best = &m.Candidates[i]
		}
	}
	if best != nil {
		m.Addr, m.Port = best.IP, best.Port
	}
	return m, nil
}

// payloadToCodec reads a <payload-type/> (XEP-0167 §4). Static types may
// leave out name and clock rate (RFC 3551 §6 gives them).
func payloadToCodec(p JinglePayload) (Codec, error) {
	id, err := strconv.ParseUint(p.ID, 10, 8)
	if err != nil || id > 127 {
		return Codec{}, fmt.Errorf("%w: payload-type id %q", ErrJingle, p.ID)
	}
	c := staticCodec(uint8(id))
	if p.Name != "" {
		c.Name = p.Name
	}
	if p.ClockRate != "" {
		v, err := strconv.ParseUint(p.ClockRate, 10, 32)
		if err != nil {
			return Codec{}, fmt.Errorf("%w: payload-type %d clockrate %q", ErrJingle, id, p.ClockRate)
		}
		c.Clock = uint32(v)
	}
	if p.Channels != "" {
		v, err := strconv.ParseUint(p.Channels, 10, 16)
		if err != nil {
			return Codec{}, fmt.Errorf("%w: payload-type %d channels %q", ErrJingle, id, p.Channels)
		}
		if v > 1 { // 1 is the default (XEP-0167 §4), kept as 0 like an SDP without it
			c.Channels = uint16(v)
		}
	}
	if c.Name == "" {
		return Codec{}, fmt.Errorf("%w: dynamic payload-type %d without a name", ErrJingle, id)
	}
	if p.Ptime != "" {
		v, err := strconv.Atoi(p.Ptime)
		if err != nil || v < 0 {
			return Codec{}, fmt.Errorf("%w: payload-type %d ptime %q", ErrJingle, id, p.Ptime)
		}
		c.Ptime = v
	}
	params := make([]string, 0, len(p.Params))
	for _, prm := range p.Params {
		if prm.Value == "" {
			params = append(params, prm.Name) // "0-15", red's "111/111"
		} else {
			params = append(params, prm.Name+"="+prm.Value)
		}
	}
	c.Fmtp = strings.Join(params, ";")
	for _, fb := range p.FB {
		c.FB = append(c.FB, RTCPFB(fb))
	}
	return c, nil
}

// jingleToCandidate reads a <candidate/> (XEP-0176 §5), lenient about id,
// generation and network, which StanzaJS leaves out.
func jingleToCandidate(jc JingleCandidate) (Candidate, error) {
	comp, err := strconv.ParseUint(jc.Component, 10, 8)
	if err != nil || comp == 0 {
		return Candidate{}, fmt.Errorf("%w: candidate component %q", ErrJingle, jc.Component)
	}
	port, err := strconv.ParseUint(jc.Port, 10, 16)
	if err != nil {
		return Candidate{}, fmt.Errorf("%w: candidate port %q", ErrJingle, jc.Port)
	}
	prio, err := strconv.ParseUint(jc.Priority, 10, 32)
	if err != nil {
		return Candidate{}, fmt.Errorf("%w: candidate priority %q", ErrJingle, jc.Priority)
	}
	if jc.IP == "" || jc.Foundation == "" {
		return Candidate{}, fmt.Errorf("%w: candidate without ip or foundation", ErrJingle)
	}
	c := Candidate{
		Foundation: jc.Foundation, Component: int(comp), Protocol: strings.ToLower(jc.Protocol),
		Priority: uint32(prio), IP: jc.IP, Port: int(port), Type: jc.Type, RelAddr: jc.RelAddr,
		ID: jc.ID, TCPType: jc.TCPType,
	}
	if c.Protocol == "" {
		c.Protocol = "udp"
	}
	if c.Type == "" {
		c.Type = "host"
	}
	if jc.RelPort != "" {
		p, err := strconv.ParseUint(jc.RelPort, 10, 16)
		if err != nil {
			return Candidate{}, fmt.Errorf("%w: candidate rel-port %q", ErrJingle, jc.RelPort)
		}
		c.RelPort = int(p)
	}
	if jc.Generation != "" {
		g, err := strconv.ParseUint(jc.Generation, 10, 8)
		if err != nil {
			return Candidate{}, fmt.Errorf("%w: candidate generation %q", ErrJingle, jc.Generation)
		}
		c.Generation = int(g)
	}
	return c, nil
}

// SessionToJingle writes the media of s as Jingle contents, with creator as
// the contents' creator and role as the writer's role (it turns directions
// into senders, XEP-0166 §7.3). Rejected media (port 0) are left out: a
// session-accept without a content rejects it. The group is nil without
// BUNDLE.
func SessionToJingle(s Session, creator JingleRole, role JingleRole) ([]JingleContent, *JingleGroup) {
	var out []JingleContent
	for i, m := range s.Media {
		if m.Port == 0 {
			continue
		}
		name := m.Mid
		if name == "" {
			name = strconv.Itoa(i) // what WebRTC uses for an SDP without a=mid
		}
		out = append(out, JingleContent{
			Creator:     creator.String(),
			Name:        name,
			Senders:     sendersForDirection(m.Direction, role),
			Description: mediaToDescription(m, role),
			Transport:   mediaToTransport(name, m),
		})
	}
	var g *JingleGroup
	if len(s.Bundle) > 0 {
		g = &JingleGroup{Semantics: "BUNDLE"}
		for _, mid := range s.Bundle {
			g.Contents = append(g.Contents, JingleGroupMember{Name: mid})
		}
	}
	return out, g
}

func mediaToDescription(m Media, role JingleRole) *RTPDescription {
	d := &RTPDescription{Media: m.Kind}
	if d.Media == "" {
		d.Media = "audio"
	}
	if m.SSRC != 0 {
		d.SSRC = strconv.FormatUint(uint64(m.SSRC), 10)
	}
	for _, c := range m.Codecs {
		p := JinglePayload{ID: strconv.Itoa(int(c.PT)), Name: c.Name}
		if c.Clock != 0 {
			p.ClockRate = strconv.FormatUint(uint64(c.Clock), 10)
		}
		if c.Channels > 1 {
			p.Channels = strconv.Itoa(int(c.Channels))
		}
		if c.Ptime > 0 {
			p.Ptime = strconv.Itoa(c.Ptime)
		}
		for _, kv := range strings.Split(c.Fmtp, ";") {
			kv = strings.TrimSpace(kv)
			if kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			p.Params = append(p.Params, JingleParam{Name: strings.TrimSpace(k), Value: strings.TrimSpace(v)})
		}
		for _, fb := range c.FB {
			p.FB = append(p.FB, JingleRTCPFB(fb))
		}
		d.PayloadTypes = append(d.PayloadTypes, p)
	}
	if m.RTCPMux {
		d.RTCPMux = &struct{}{}
	}
	if m.RTCPRsize {
		d.RTCPRsize = &struct{}{}
	}
	for _, h := range m.HdrExts {
		d.HdrExts = append(d.HdrExts, JingleHdrExt{ID: strconv.Itoa(h.ID), URI: h.URI, Senders: sendersForDirection(h.Direction, role)})
	}
	if m.SSRC != 0 && m.CNAME != "" {
		d.Sources = []JingleSource{{SSRC: d.SSRC, Params: []JingleParam{{Name: "cname", Value: m.CNAME}}}}
	}
	if len(m.Crypto) > 0 {
		e := &JingleEncrypt{}
		for _, c := range m.Crypto {
			e.Crypto = append(e.Crypto, JingleCrypto{Suite: c.Suite, KeyParams: c.KeyParams, SessionParams: c.SessionParams, Tag: strconv.Itoa(c.Tag)})
		}
		d.Encryption = e
	}
	return d
}

func mediaToTransport(name string, m Media) *ICEUDPTransport {
	t := &ICEUDPTransport{Ufrag: m.ICEUfrag, Pwd: m.ICEPwd, Candidates: jingleCandidates(name, m.Candidates)}
	if fp := m.Fingerprint; fp != nil {
		t.Fingerprint = &JingleFingerprint{Hash: strings.ToLower(fp.Hash), Setup: fp.Setup, Value: fp.Value}
	}
	if m.EndOfCandidates {
		t.GatheringComplete = &struct{}{}
	}
	return t
}

// jingleCandidates writes candidates; SDP has no candidate id (XEP-0176
// §12), so one is made by hashing what identifies the candidate: the same
// for a candidate sent twice, different across the transport-infos of a
// session, and the same on every run.
func jingleCandidates(content string, cands []Candidate) []JingleCandidate {
	var out []JingleCandidate
	for _, c := range cands {
		id := c.ID
		if id == "" {
			h := fnv.New64a()
			fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s\x00%s\x00%d\x00%d", content, c.Foundation, c.Component, c.Protocol, c.IP, c.Port, c.Generation)
			id = fmt.Sprintf("c%016x", h.Sum64())
		}
		proto := c.Protocol
		if proto == "" {
			proto = "udp"
		}
		jc := JingleCandidate{
			Component: strconv.Itoa(c.Component), Foundation: c.Foundation, Generation: strconv.Itoa(c.Generation),
			ID: id, IP: c.IP, Port: strconv.Itoa(c.Port), Priority: strconv.FormatUint(uint64(c.Priority), 10),
			Protocol: proto, RelAddr: c.RelAddr, Type: c.Type, TCPType: c.TCPType,
		}
		if c.RelAddr != "" {
			jc.RelPort = strconv.Itoa(c.RelPort)
		}
		out = append(out, jc)
	}
	return out
}

// ContentCandidates is what one content of a transport-info carries: ICE
// candidates trickled for the ufrag (XEP-0176 §6), and StanzaJS's
// end-of-candidates marker.
type ContentCandidates struct {
	Content         string
	Ufrag           string
	Candidates      []Candidate
	EndOfCandidates bool
}

// CandidatesFromTransportInfo reads the candidates of a transport-info.
// A content without an ICE-UDP transport is an error (XEP-0176 §6).
func CandidatesFromTransportInfo(j Jingle) ([]ContentCandidates, error) {
	if len(j.Contents) == 0 {
		return nil, fmt.Errorf("%w: transport-info without content", ErrJingle)
	}
	out := make([]ContentCandidates, 0, len(j.Contents))
	for _, c := range j.Contents {
		t := c.Transport
		if t == nil {
			return nil, fmt.Errorf("%w: content %q: no ICE-UDP transport", ErrJingle, c.Name)
		}
		cc := ContentCandidates{Content: c.Name, Ufrag: t.Ufrag, EndOfCandidates: t.GatheringComplete != nil}
		for _, jc := range t.Candidates {
			cand, err := jingleToCandidate(jc)
			if err != nil {
				return nil, fmt.Errorf("content %q: %w", c.Name, err)
			}
			cc.Candidates = append(cc.Candidates, cand)
		}
		out = append(out, cc)
	}
	return out, nil
}

// TransportInfoContent is one content of a transport-info trickling cands
// (XEP-0176 §6); end adds the end-of-candidates marker StanzaJS reads.
func TransportInfoContent(name string, creator JingleRole, ufrag, pwd string, cands []Candidate, end bool) JingleContent {
	t := &ICEUDPTransport{Ufrag: ufrag, Pwd: pwd, Candidates: jingleCandidates(name, cands)}
	if end {
		t.GatheringComplete = &struct{}{}
	}
	return JingleContent{Creator: creator.String(), Name: name, Transport: t}
}
