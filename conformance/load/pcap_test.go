package main

import (
	"bytes"
	"encoding/binary"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// ---- building captures by hand ----

type rec struct {
	sec, frac uint32 // frac: µs or ns, as the file's magic says
	frame     []byte
	orig      int // wire length if larger than the frame (truncated record)
}

func pcapFile(bo binary.ByteOrder, magic, link uint32, recs []rec) []byte {
	var b bytes.Buffer
	h := make([]byte, 24)
	bo.PutUint32(h[0:], magic)
	bo.PutUint16(h[4:], 2)
	bo.PutUint16(h[6:], 4)
	bo.PutUint32(h[16:], 262144)
	bo.PutUint32(h[20:], link)
	b.Write(h)
	for _, r := range recs {
		rh := make([]byte, 16)
		bo.PutUint32(rh[0:], r.sec)
		bo.PutUint32(rh[4:], r.frac)
		bo.PutUint32(rh[8:], uint32(len(r.frame)))
		bo.PutUint32(rh[12:], uint32(max(r.orig, len(r.frame))))
		b.Write(rh)
		b.Write(r.frame)
	}
	return b.Bytes()
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func ipv4Packet(proto uint8, src, dst netip.AddrPort, l4 []byte) []byte {
	ip := make([]byte, 20, 20+len(l4))
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	ip[6] = 0x40 // DF
	ip[8] = 64
	ip[9] = proto
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	return append(ip, l4...)
}

func udpPacket(src, dst netip.AddrPort, payload string) []byte {
	l4 := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(l4[0:], src.Port())
	binary.BigEndian.PutUint16(l4[2:], dst.Port())
	binary.BigEndian.PutUint16(l4[4:], uint16(8+len(payload)))
	return ipv4Packet(protoUDP, src, dst, append(l4, payload...))
}

// tcpPacket has a 32-byte TCP header (20 + 12 bytes of timestamp option),
// as Linux sends them.
func tcpPacket(src, dst netip.AddrPort, seq uint32, payload string) []byte {
	l4 := make([]byte, 32, 32+len(payload))
	binary.BigEndian.PutUint16(l4[0:], src.Port())
	binary.BigEndian.PutUint16(l4[2:], dst.Port())
	binary.BigEndian.PutUint32(l4[4:], seq)
	l4[12] = 8 << 4
	l4[13] = 0x18 // PSH ACK
	l4[20], l4[21], l4[22] = 1, 1, 8
	return ipv4Packet(protoTCP, src, dst, append(l4, payload...))
}

func ether(ip []byte) []byte {
	f := make([]byte, 14, 14+len(ip))
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	return append(f, ip...)
}

func sll(ip []byte) []byte {
	f := make([]byte, 16, 16+len(ip))
	binary.BigEndian.PutUint16(f[14:], 0x0800)
	return append(f, ip...)
}

func null(bo binary.ByteOrder, ip []byte) []byte {
	f := make([]byte, 4, 4+len(ip))
	bo.PutUint32(f, 2)
	return append(f, ip...)
}

func readAll(t *testing.T, b []byte) ([]packet, pcapStats) {
	t.Helper()
	var out []packet
	st, err := readPcap(bytes.NewReader(b), func(p *packet) {
		q := *p
		q.Payload = append([]byte(nil), p.Payload...)
		out = append(out, q)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, st
}

// ---- the reader ----

// A capture written byte by byte from the format's description: little
// endian, microseconds, Ethernet, one UDP datagram 127.0.0.1:5060 →
// 127.0.0.1:5070 with payload "hi", at 1700000000.250000.
func TestPcapLiteral(t *testing.T) {
	b := []byte{
		0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0, // global header
		0x00, 0xf1, 0x53, 0x65, 0x90, 0xd0, 0x03, 0x00, 44, 0, 0, 0, 44, 0, 0, 0, // record header
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00, // Ethernet
		0x45, 0, 0, 30, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1, // IPv4
		0x13, 0xc4, 0x13, 0xce, 0, 10, 0, 0, // UDP
		'h', 'i',
	}
	ps, st := readAll(t, b)
	if st.LinkType != linkEthernet || st.Records != 1 || st.Decoded != 1 {
		t.Fatalf("stats %+v", st)
	}
	p := ps[0]
	if p.TS != 1700000000_250000000 || p.Proto != protoUDP || p.Src != ap("127.0.0.1:5060") || p.Dst != ap("127.0.0.1:5070") || string(p.Payload) != "hi" {
		t.Fatalf("got %+v %q", p, p.Payload)
	}
}

func TestPcapOrdersPrecisionsLinks(t *testing.T) {
	a, b := ap("127.0.0.1:40000"), ap("127.0.0.1:5347")
	frames := func(link func([]byte) []byte) []rec {
		return []rec{
			{sec: 1700000000, frac: 123, frame: link(udpPacket(a, b, "MESSAGE sip:x SIP/2.0\r\n\r\nbody"))},
			{sec: 1700000001, frac: 999, frame: link(tcpPacket(b, a, 0xfffffff0, "<message/>"))},
			{sec: 1700000002, frac: 7, frame: link(ipv4Packet(1, a, b, []byte{8, 0, 0, 0}))}, // ICMP: skipped
		}
	}
	for _, tc := range []struct {
		name  string
		bo    binary.ByteOrder
		magic uint32
		link  uint32
		wrap  func([]byte) []byte
		mult  int64
	}{
		{"le-micro-ether", binary.LittleEndian, pcapMagicMicro, linkEthernet, ether, 1000},
		{"be-micro-ether", binary.BigEndian, pcapMagicMicro, linkEthernet, ether, 1000},
		{"le-nano-ether", binary.LittleEndian, pcapMagicNano, linkEthernet, ether, 1},
		{"be-nano-sll", binary.BigEndian, pcapMagicNano, linkSLL, sll, 1},
		{"le-micro-null", binary.LittleEndian, pcapMagicMicro, linkNull, func(ip []byte) []byte { return null(binary.LittleEndian, ip) }, 1000},
		{"be-micro-raw", binary.BigEndian, pcapMagicMicro, linkRaw, func(ip []byte) []byte { return ip }, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, st := readAll(t, pcapFile(tc.bo, tc.magic, tc.link, frames(tc.wrap)))
			if st.Records != 3 || st.Decoded != 2 || st.Skipped != 1 {
				t.Fatalf("stats %+v", st)
			}
			if want := 1700000000*int64(1e9) + 123*tc.mult; ps[0].TS != want {
				t.Errorf("udp ts %d, want %d", ps[0].TS, want)
			}
			if ps[0].Proto != protoUDP || ps[0].Src != a || ps[0].Dst != b || string(ps[0].Payload) != "MESSAGE sip:x SIP/2.0\r\n\r\nbody" {
				t.Errorf("udp %+v %q", ps[0], ps[0].Payload)
			}
			if want := 1700000001*int64(1e9) + 999*tc.mult; ps[1].TS != want {
				t.Errorf("tcp ts %d, want %d", ps[1].TS, want)
			}
			if ps[1].Proto != protoTCP || ps[1].Src != b || ps[1].Dst != a || ps[1].Seq != 0xfffffff0 || ps[1].Flags != 0x18 || string(ps[1].Payload) != "<message/>" {
				t.Errorf("tcp %+v %q", ps[1], ps[1].Payload)
			}
		})
	}
}

func TestPcapPaddingTruncationAndErrors(t *testing.T) {
	a, b := ap("127.0.0.1:1"), ap("127.0.0.1:2")
	padded := append(ether(udpPacket(a, b, "x")), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) // to Ethernet's 60 bytes
	file := pcapFile(binary.LittleEndian, pcapMagicMicro, linkEthernet, []rec{
		{sec: 1, frame: padded},
		{sec: 2, frame: ether(udpPacket(a, b, "abcdef"))[:14+20+8+3], orig: 14 + 20 + 8 + 6},
	})
	ps, st := readAll(t, append(file, 1, 2, 3)) // and a record header cut short
	if len(ps) != 2 || string(ps[0].Payload) != "x" || string(ps[1].Payload) != "abc" || st.Truncated != 1 {
		t.Fatalf("got %d packets %+v, stats %+v", len(ps), ps, st)
	}
	if _, err := readPcap(bytes.NewReader([]byte("0123456789abcdef0123456789")), func(*packet) {}); err == nil {
		t.Error("bad magic accepted")
	}
	if _, err := readPcap(bytes.NewReader(pcapFile(binary.LittleEndian, pcapMagicMicro, 127, nil)), func(*packet) {}); err == nil {
		t.Error("unknown link type accepted")
	}
}

// ---- matching messages into and out of stox ----

func writeCapture(t *testing.T, recs []rec) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.pcap")
	if err := os.WriteFile(p, pcapFile(binary.LittleEndian, pcapMagicNano, linkEthernet, recs), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sipMessage(callID, body string) string {
	return "MESSAGE sip:alice@localhost SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK1\r\nCall-ID: " + callID +
		"\r\nCSeq: 1 MESSAGE\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

func TestMatchS2X(t *testing.T) {
	sipp, stox, pros := ap("127.0.0.1:6000"), ap("127.0.0.1:5060"), ap("127.0.0.1:5347")
	stoxTCP := ap("127.0.0.1:41000")
	const ms = 1_000_000
	body := func(n string) string { return "T 1700000000.000000 123456.000000 #" + n }
	st := func(n, b string) string {
		return "<message xmlns='jabber:component:accept' to='alice@localhost' id='" + n + "'><body>" + b + "</body></message>"
	}
	s3 := st("3", body("3"))
	cut := strings.Index(s3, "#3") + 1 // split between "#" and "3"
	recs := []rec{
		{frac: 0 * ms, frame: ether(udpPacket(sipp, stox, sipMessage("c1", body("1"))))},
		{frac: 1 * ms, frame: ether(udpPacket(sipp, stox, sipMessage("c2", body("2"))))},
		{frac: 2 * ms, frame: ether(udpPacket(sipp, stox, sipMessage("c3", body("3"))))},
		{frac: 3 * ms, frame: ether(udpPacket(sipp, stox, sipMessage("c12", body("12"))))},
		{frac: 500 * ms, frame: ether(udpPacket(sipp, stox, sipMessage("c1", body("1"))))}, // a retransmission: the first counts
		// Two stanzas in one segment at 4 ms (one XML-escaped); #3 split over
		// two segments, completed at 6 ms; #12 not to be taken for #1 or #2.
		{frac: 4 * ms, frame: ether(tcpPacket(stoxTCP, pros, 1, st("1", body("1"))+st("2", "T&#32;1700000000.000000 123456.000000 &#x23;2")+s3[:cut]))},
		{frac: 6 * ms, frame: ether(tcpPacket(stoxTCP, pros, 2, s3[cut:]))},
		{frac: 7 * ms, frame: ether(tcpPacket(pros, stoxTCP, 1, st("9", body("9"))))}, // wrong direction
		{frac: 9 * ms, frame: ether(tcpPacket(stoxTCP, pros, 3, st("12", body("12"))))},
		// Answers: 202 for c1 at 8 ms (after a 100 at 1 ms), c2 at 10 ms; a
		// final response to an OPTIONS with c3's Call-ID does not count.
		{frac: 1 * ms, frame: ether(udpPacket(stox, sipp, "SIP/2.0 100 Trying\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\n\r\n"))},
		{frac: 8 * ms, frame: ether(udpPacket(stox, sipp, "SIP/2.0 202 Accepted\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\n\r\n"))},
		{frac: 10 * ms, frame: ether(udpPacket(stox, sipp, "SIP/2.0 202 Accepted\r\ni: c2\r\nCSeq: 1 MESSAGE\r\n\r\n"))},
		{frac: 11 * ms, frame: ether(udpPacket(stox, sipp, "SIP/2.0 200 OK\r\nCall-ID: c3\r\nCSeq: 7 OPTIONS\r\n\r\n"))},
	}
	w, err := matchCapture(writeCapture(t, recs), s2xSpec(5060, 5347))
	if err != nil {
		t.Fatal(err)
	}
	if w.In != 4 || w.Out != 4 || len(w.Lat) != 4 || w.Negative != 0 {
		t.Fatalf("in %d out %d matched %d negative %d", w.In, w.Out, len(w.Lat), w.Negative)
	}
	// #1: 0 → 4, #2: 1 → 4, #3: 2 → 6, #12: 3 → 9.
	if got := sumSorted(w.Lat); got != "3,4,4,6" {
		t.Errorf("latencies %v", w.Lat)
	}
	if got := sumSorted(w.Answer); got != "8,9" {
		t.Errorf("answers %v", w.Answer)
	}
}

func TestMatchX2S(t *testing.T) {
	stox, uas, pros, stoxTCP := ap("127.0.0.1:5060"), ap("127.0.0.1:7000"), ap("127.0.0.1:5347"), ap("127.0.0.1:41000")
	const ms = 1_000_000
	st := func(ns string) string {
		return "<message to='bob1@sip.localhost' type='chat' from='carol@localhost/load'><body>T " + ns + "</body></message>"
	}
	a, b := "1700000000000000001", "1700000000000000002"
	sb := st(b)
	cut := strings.Index(sb, "00002") // the nanoseconds split over segments
	recs := []rec{
		{frac: 10 * ms, frame: ether(tcpPacket(pros, stoxTCP, 1, st(a)+sb[:cut]))},
		{frac: 11 * ms, frame: ether(tcpPacket(pros, stoxTCP, 2, sb[cut:]))},
		{frac: 12 * ms, frame: ether(udpPacket(stox, uas, sipMessage("x1", "T "+a)))},
		{frac: 13 * ms, frame: ether(udpPacket(uas, stox, "SIP/2.0 200 OK\r\nCall-ID: x1\r\nCSeq: 1 MESSAGE\r\n\r\n"))},
		{frac: 15 * ms, frame: ether(udpPacket(stox, uas, sipMessage("x2", "T "+b)))},
		{frac: 515 * ms, frame: ether(udpPacket(stox, uas, sipMessage("x2", "T "+b)))}, // retransmission
	}
	w, err := matchCapture(writeCapture(t, recs), x2sSpec(5060, 5347))
	if err != nil {
		t.Fatal(err)
	}
	if w.In != 2 || w.Out != 2 || sumSorted(w.Lat) != "2,4" || len(w.Answer) != 0 {
		t.Fatalf("%+v", w)
	}
}

// sumSorted renders latencies rounded to whole milliseconds, sorted: "3,4,4,6".
func sumSorted(xs []float64) string {
	xs = slices.Sorted(slices.Values(xs))
	var s []string
	for _, x := range xs {
		s = append(s, strconv.Itoa(int(math.Round(x))))
	}
	return strings.Join(s, ",")
}

func TestXMLUnescape(t *testing.T) {
	for in, want := range map[string]string{
		"T&#32;1 &#x23;2":     "T 1 #2",
		"&lt;a&gt; &amp; &q;": "<a> & &q;",
		"trailing &#3":        "trailing &#3",
		"no entities":         "no entities",
	} {
		if got := string(xmlUnescape([]byte(in))); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// ---- CSV compatibility ----

func TestCSVOldAndNewRows(t *testing.T) {
	old := strings.SplitN(csvHeader, ",wire_matched", 2)[0]
	dir := t.TempDir()
	path := filepath.Join(dir, "load.csv")
	oldRow := `2026-11-25T19:00:31Z,5.46,memory,s2x,1,1000,5.0,5000,5000,0,5000,0,998,11.30,97.03,3.54,117.40,16124,46284,0,"202:5000"`
	if err := os.WriteFile(path, []byte(old+"\n"+oldRow+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := result{Store: "memory", Direction: "s2x", Dests: 1, Offered: 4000, Achieved: 3990, P99: 50, Notes: "a, \"b\"",
		Wire: true, WireMatched: 20000, WireP50: 0.2, WireP99: 1.5, WireMax: 9, CaptureDrops: 0}
	if err := appendCSV(path, r); err != nil {
		t.Fatal(err)
	}
	r2 := r
	r2.Direction, r2.Wire, r2.Offered = "x2s", false, 2000
	if err := appendCSV(path, r2); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 || lines[0] != csvHeader || lines[1] != oldRow {
		t.Fatalf("file:\n%s", b)
	}
	if !strings.HasSuffix(lines[2], `,20000,0.200,1.500,9.000,0.000,0.000,0`) || !strings.HasSuffix(lines[3], `,,,,,,,`) {
		t.Errorf("new rows:\n%s\n%s", lines[2], lines[3])
	}
	f, _ := os.Open(path)
	defer f.Close()
	ss, err := readSeries(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 2 || ss[0].name != "s2x memory" || len(ss[0].points) != 2 || ss[0].points[1].p99 != 50 {
		t.Fatalf("series %+v", ss)
	}
	if _, err := plotCSV(path); err != nil {
		t.Fatal(err)
	}
}
