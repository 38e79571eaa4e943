package media

import (
	"encoding/binary"
	"strings"
)

// rtpPacket is the part of an RTP header the relay reads (RFC 3550 §5.1).
// CSRCs and header extensions are not relayed: the legs negotiated their
// extensions separately, and stox is the source on each leg.
type rtpPacket struct {
	marker  bool
	pt      uint8
	seq     uint16
	ts      uint32
	ssrc    uint32
	payload []byte // aliases the input
}

// parseRTP reads an RTP packet without allocating. It refuses what is not
// RTP version 2, what is too short for its CSRC list, extension or padding,
// and RTCP (payload types 72–76 with the marker bit: RFC 5761 §4).
func parseRTP(b []byte) (rtpPacket, bool) {
	var p rtpPacket
	if len(b) < 12 || b[0]>>6 != 2 {
		return p, false
	}
	if pt := b[1] & 0x7f; pt >= 72 && pt <= 76 {
		return p, false
	}
	p.marker = b[1]&0x80 != 0
	p.pt = b[1] & 0x7f
	p.seq = binary.BigEndian.Uint16(b[2:])
	p.ts = binary.BigEndian.Uint32(b[4:])
	p.ssrc = binary.BigEndian.Uint32(b[8:])
	off := 12 + 4*int(b[0]&0x0f)
	if off > len(b) {
		return p, false
	}
	if b[0]&0x10 != 0 { // RFC 3550 §5.3.1
		if off+4 > len(b) {
			return p, false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
		if off > len(b) {
			return p, false
		}
	}
	end := len(b)
	if b[0]&0x20 != 0 { // padding: the last octet counts it (RFC 3550 §5.1)
		pad := int(b[end-1])
		if pad == 0 || end-pad < off {
			return p, false
		}
		end -= pad
	}
	p.payload = b[off:end]
	return p, true
}

// writeHeader writes a 12-octet RTP header into b (len(b) ≥ 12).
func writeHeader(b []byte, marker bool, pt uint8, seq uint16, ts, ssrc uint32) {
	b[0] = 0x80
	b[1] = pt & 0x7f
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
}

// ptMap maps an input payload type to the output one: out[pt] is the
// output PT plus one, 0 when the PT is not relayed. The clock rate is kept
// to carry timestamps across a change of source.
type ptMap struct {
	out   [128]uint8
	clock [128]uint32
}

// codecKey identifies a codec across legs: the encoding name (compared
// without case, RFC 4566 §6 rtpmap), the clock rate and the channels.
func codecKey(name string, clock uint32, ch uint16) string {
	if ch == 0 {
		ch = 1
	}
	return strings.ToLower(name) + "/" + itoa(int(clock)) + "/" + itoa(int(ch))
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// buildMap maps each codec the input leg receives to the PT the output leg
// receives the same codec with.
func buildMap(in []codecRef, out []codecRef) *ptMap {
	m := &ptMap{}
	byKey := map[string]uint8{}
	for _, c := range out {
		if _, ok := byKey[c.key]; !ok {
			byKey[c.key] = c.pt
		}
	}
	for _, c := range in {
		if c.pt >= 128 {
			continue
		}
		if o, ok := byKey[c.key]; ok && o < 128 {
			m.out[c.pt] = o + 1
			m.clock[c.pt] = c.clock
		}
	}
	return m
}

type codecRef struct {
	pt    uint8
	clock uint32
	key   string
}

// seqMap rewrites sequence numbers and timestamps of one direction so that
// the output is one continuous stream with stox's SSRC, whatever the input
// does: a new input SSRC (a phone restarting its stream, a re-INVITE) shifts
// the offsets so the output continues where it was (RFC 3550 §8.2 leaves the
// receiver to cope with an SSRC change; stox spares the other leg that).
// It is owned by one reader goroutine.
type seqMap struct {
	started  bool
	inSSRC   uint32
	seqOff   uint16
	tsOff    uint32
	lastIn   uint16 // highest input seq seen
	lastOut  uint16
	lastTS   uint32
	lastNano int64
}

// next returns the output seq and timestamp of p, and how many packets a
// forward jump in the input sequence says were lost.
func (s *seqMap) next(p *rtpPacket, clock uint32, now int64) (seq uint16, ts uint32, lost int) {
	switch {
	case !s.started:
		s.started = true
		s.inSSRC = p.ssrc
		s.seqOff = 0
		s.tsOff = 0
		s.lastIn = p.seq - 1
	case p.ssrc != s.inSSRC:
		s.inSSRC = p.ssrc
		s.seqOff = s.lastOut + 1 - p.seq
		elapsed := uint32(0)
		if clock != 0 && now > s.lastNano {
			elapsed = uint32(uint64(now-s.lastNano) * uint64(clock) / 1e9)
		}
		s.tsOff = s.lastTS + elapsed - p.ts
		s.lastIn = p.seq - 1
	}
	seq, ts = p.seq+s.seqOff, p.ts+s.tsOff
	if d := p.seq - s.lastIn; d != 0 && d < 0x8000 { // newer than any seen
		lost = int(d) - 1
		s.lastIn = p.seq
		s.lastOut, s.lastTS = seq, ts
	}
	s.lastNano = now
	return seq, ts, lost
}
