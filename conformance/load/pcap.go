package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// A small reader for classic libpcap files (what tcpdump -w writes): the
// 24-byte global header, then a 16-byte header per record. Both byte
// orders, microsecond (0xa1b2c3d4) and nanosecond (0xa1b23c4d) timestamps.
// Link types: Ethernet (DLT_EN10MB, what `tcpdump -i lo` gives on Linux),
// BSD loopback (DLT_NULL), Linux cooked (LINUX_SLL, LINUX_SLL2) and raw IP.
// Only IPv4 UDP and TCP are decoded; other packets are counted and skipped.

const (
	pcapMagicMicro = 0xa1b2c3d4
	pcapMagicNano  = 0xa1b23c4d

	linkNull     = 0
	linkEthernet = 1
	linkRaw      = 101
	linkRawAlt   = 12 // DLT_RAW on OpenBSD, written by some tools
	linkSLL      = 113
	linkIPv4     = 228
	linkSLL2     = 276

	protoTCP = 6
	protoUDP = 17
)

// packet is one IPv4 UDP datagram or TCP segment of a capture.
type packet struct {
	TS       int64 // capture time, ns since the Unix epoch
	Proto    uint8 // protoTCP or protoUDP
	Src, Dst netip.AddrPort
	Seq      uint32 // TCP sequence number
	Flags    uint8  // TCP flags (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10)
	Payload  []byte // UDP or TCP payload; valid only during the callback
}

// pcapStats counts what readPcap saw.
type pcapStats struct {
	LinkType  uint32
	Records   int // every record in the file
	Decoded   int // IPv4 UDP/TCP packets passed to the callback
	Skipped   int // other protocols, IP fragments after the first, malformed
	Truncated int // records shorter on disk than on the wire (snaplen)
}

// readPcap calls fn for every IPv4 UDP datagram and TCP segment in a classic
// pcap stream, in file order. A file cut short inside a record (a capture
// killed mid-write) ends the read without error.
func readPcap(r io.Reader, fn func(*packet)) (pcapStats, error) {
	var st pcapStats
	br := bufio.NewReaderSize(r, 1<<20)
	var gh [24]byte
	if _, err := io.ReadFull(br, gh[:]); err != nil {
		return st, fmt.Errorf("pcap: global header: %w", err)
	}
	var bo binary.ByteOrder
	nano := false
	switch {
	case binary.LittleEndian.Uint32(gh[0:4]) == pcapMagicMicro:
		bo = binary.LittleEndian
	case binary.BigEndian.Uint32(gh[0:4]) == pcapMagicMicro:
		bo = binary.BigEndian
	case binary.LittleEndian.Uint32(gh[0:4]) == pcapMagicNano:
		bo, nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(gh[0:4]) == pcapMagicNano:
		bo, nano = binary.BigEndian, true
	default:
		return st, fmt.Errorf("pcap: bad magic %x (pcapng is not supported)", gh[0:4])
	}
	st.LinkType = bo.Uint32(gh[20:24]) & 0x0fffffff // upper bits: FCS flags
	switch st.LinkType {
	case linkNull, linkEthernet, linkRaw, linkRawAlt, linkSLL, linkIPv4, linkSLL2:
	default:
		return st, fmt.Errorf("pcap: unsupported link type %d", st.LinkType)
	}
	var rh [16]byte
	var buf []byte
	var p packet
	for {
		if _, err := io.ReadFull(br, rh[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return st, nil
			}
			return st, err
		}
		sec, frac := int64(bo.Uint32(rh[0:4])), int64(bo.Uint32(rh[4:8]))
		incl, orig := bo.Uint32(rh[8:12]), bo.Uint32(rh[12:16])
		if incl > 1<<26 {
			return st, fmt.Errorf("pcap: record %d: length %d", st.Records+1, incl)
		}
		if cap(buf) < int(incl) {
			buf = make([]byte, incl)
		}
		buf = buf[:incl]
		if _, err := io.ReadFull(br, buf); err != nil {
			return st, nil // cut short inside the last record
		}
		st.Records++
		if incl < orig {
			st.Truncated++
		}
		if !nano {
			frac *= 1000
		}
		p = packet{TS: sec*1e9 + frac}
		if decodeLink(st.LinkType, buf, bo, &p) {
			st.Decoded++
			fn(&p)
		} else {
			st.Skipped++
		}
	}
}

// decodeLink strips the link-layer header and decodes IPv4 UDP/TCP into p.
func decodeLink(link uint32, b []byte, fileOrder binary.ByteOrder, p *packet) bool {
	switch link {
	case linkEthernet:
		if len(b) < 14 {
			return false
		}
		et, off := binary.BigEndian.Uint16(b[12:14]), 14
		if et == 0x8100 && len(b) >= 18 { // one 802.1Q tag
			et, off = binary.BigEndian.Uint16(b[16:18]), 18
		}
		if et != 0x0800 {
			return false
		}
		return decodeIPv4(b[off:], p)
	case linkNull:
		// The address family in the capturing host's byte order, usually
		// that of the file; AF_INET is 2 everywhere.
		if len(b) < 4 || (fileOrder.Uint32(b[0:4]) != 2 && binary.LittleEndian.Uint32(b[0:4]) != 2 && binary.BigEndian.Uint32(b[0:4]) != 2) {
			return false
		}
		return decodeIPv4(b[4:], p)
	case linkSLL:
		if len(b) < 16 || binary.BigEndian.Uint16(b[14:16]) != 0x0800 {
			return false
		}
		return decodeIPv4(b[16:], p)
	case linkSLL2:
		if len(b) < 20 || binary.BigEndian.Uint16(b[0:2]) != 0x0800 {
			return false
		}
		return decodeIPv4(b[20:], p)
	default: // raw IP
		return decodeIPv4(b, p)
	}
}

func decodeIPv4(b []byte, p *packet) bool {
	if len(b) < 20 || b[0]>>4 != 4 {
		return false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || len(b) < ihl {
		return false
	}
	if total >= ihl && total < len(b) {
		b = b[:total] // Ethernet padding
	}
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		return false // a fragment after the first: no transport header
	}
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	p.Proto = b[9]
	l4 := b[ihl:]
	switch p.Proto {
	case protoUDP:
		if len(l4) < 8 {
			return false
		}
		n := int(binary.BigEndian.Uint16(l4[4:6]))
		pl := l4[8:]
		if n >= 8 && n-8 < len(pl) {
			pl = pl[:n-8]
		}
		p.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(l4[0:2]))
		p.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(l4[2:4]))
		p.Payload = pl
		return true
	case protoTCP:
		if len(l4) < 20 {
			return false
		}
		doff := int(l4[12]>>4) * 4
		if doff < 20 || len(l4) < doff {
			return false
		}
		p.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(l4[0:2]))
		p.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(l4[2:4]))
		p.Seq = binary.BigEndian.Uint32(l4[4:8])
		p.Flags = l4[13]
		p.Payload = l4[doff:]
		return true
	}
	return false
}
