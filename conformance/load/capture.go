package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"stox.dev/stox/conformance/peers"
)

// -capture: the latency stox itself adds, measured black-box on the wire.
// tcpdump records loopback traffic on stox's SIP port and Prosody's
// component port during a run; afterwards every message is found by the
// unique marker its body carries, once on its way into stox and once on its
// way out, and the difference of the two capture timestamps is what stox
// added (its socket queues, parsing, mapping, the store, its writes):
//
//   - s2x: the UDP datagram carrying the MESSAGE to stox's SIP port → the
//     first TCP segment from stox to the component port whose payload holds
//     the stanza's body; also the MESSAGE → stox's final response (same
//     Call-ID), the SIP answer time as the UAC's network sees it;
//   - x2s: the TCP segment from the component port to stox holding the
//     stanza's body → the first UDP datagram from stox's SIP port carrying
//     the MESSAGE.
//
// TCP segments are searched for every marker in them (one segment may hold
// many stanzas). A stanza split over segments counts at the segment that
// holds its marker, and a marker itself split over two segments at the
// segment that completes it (each flow's last bytes are carried over to the
// next segment's search). Bodies are XML-unescaped before the search.

// capture is a running tcpdump writing a pcap file.
type capture struct {
	path, log string
	p         *peers.Proc
	stopped   bool
	drops     int64 // "packets dropped by kernel" (+ by interface), -1 unknown
	summary   string
}

func tcpdumpBin() (string, error) {
	if p, err := exec.LookPath("tcpdump"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/tcpdump", "/usr/bin/tcpdump"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("tcpdump not installed (apt-get install -y tcpdump)")
}

// startCapture starts tcpdump on lo for UDP on sipPort and TCP on
// compPort, writing dir/capture.pcap, and returns once it listens.
func startCapture(dir string, sipPort, compPort int) (*capture, error) {
	bin, err := tcpdumpBin()
	if err != nil {
		return nil, err
	}
	c := &capture{path: filepath.Join(dir, "capture.pcap"), log: filepath.Join(dir, "tcpdump.log"), drops: -1}
	filter := fmt.Sprintf("(udp or tcp) and ((udp port %d) or (tcp port %d))", sipPort, compPort)
	cmd := exec.Command(bin, "-i", "lo", "-n", "-s", "0", "-B", "65536", "-w", c.path, filter)
	if c.p, err = start("tcpdump", cmd, c.log); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(c.log)
		if bytes.Contains(b, []byte("listening on")) {
			return c, nil
		}
		if c.p.Exited() || time.Now().After(deadline) {
			c.p.Stop(time.Second)
			return nil, fmt.Errorf("tcpdump did not start: %v\n%s", c.p.Err(), tailStr(string(b), 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var tcpdumpDropRE = regexp.MustCompile(`(\d+) packets? dropped by (kernel|interface)`)

// stop ends tcpdump with SIGINT (it then flushes the file and prints its
// counts) and reads how many packets it reports dropped. It waits a little
// first: libpcap hands packets to tcpdump in blocks with a timeout, and
// the last block must reach the file.
func (c *capture) stop() {
	if c == nil || c.stopped {
		return
	}
	c.stopped = true
	time.Sleep(1200 * time.Millisecond)
	c.p.StopWith(syscall.SIGINT, 10*time.Second)
	b, _ := os.ReadFile(c.log)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "packets") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	c.summary = strings.Join(lines, ", ")
	if ms := tcpdumpDropRE.FindAllStringSubmatch(string(b), -1); ms != nil {
		c.drops = 0
		for _, m := range ms {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			c.drops += n
		}
	}
}

// wireSpec says where a direction's messages enter and leave stox, and how
// to recognize them.
type wireSpec struct {
	marker *regexp.Regexp // submatch 1 is the message's unique key
	in     func(*packet) bool
	out    func(*packet) bool
	// answerPort > 0: also time each MESSAGE into this UDP port → the first
	// final response out of it with the same Call-ID.
	answerPort uint16
}

var (
	// load_uac.xml: "T <sec> <usec> #<call>"; the call number is the key.
	s2xMarker = regexp.MustCompile(`T [0-9]+(?:\.[0-9]*)? [0-9]+(?:\.[0-9]*)? #([0-9]+)`)
	// xmppc.go send: "T <unix ns>"; the nanoseconds are the key.
	x2sMarker = regexp.MustCompile(`T ([0-9]{10,})`)
)

func isSIPMessage(p *packet) bool { return bytes.HasPrefix(p.Payload, []byte("MESSAGE ")) }

// s2xSpec: sipp → (UDP) stox:sipPort → (TCP) Prosody:compPort.
func s2xSpec(sipPort, compPort int) wireSpec {
	return wireSpec{marker: s2xMarker,
		in: func(p *packet) bool {
			return p.Proto == protoUDP && int(p.Dst.Port()) == sipPort && isSIPMessage(p)
		},
		out: func(p *packet) bool {
			return p.Proto == protoTCP && int(p.Dst.Port()) == compPort && len(p.Payload) > 0
		},
		answerPort: uint16(sipPort)}
}

// x2sSpec: Prosody:compPort → (TCP) stox → (UDP from sipPort) a sipp UAS.
func x2sSpec(sipPort, compPort int) wireSpec {
	return wireSpec{marker: x2sMarker,
		in: func(p *packet) bool {
			return p.Proto == protoTCP && int(p.Src.Port()) == compPort && len(p.Payload) > 0
		},
		out: func(p *packet) bool {
			return p.Proto == protoUDP && int(p.Src.Port()) == sipPort && isSIPMessage(p)
		}}
}

// wireResult is the outcome of matching one capture.
type wireResult struct {
	In, Out  int       // distinct markers seen entering / leaving stox
	Lat      []float64 // ms, out − in, one per marker seen both ways
	Negative int       // markers seen leaving before entering (ought to be 0)
	Answer   []float64 // ms, s2x: MESSAGE in → final response out
	Stats    pcapStats
	// The slowest message: its key, and when it entered stox, in ms
	// after the capture's first packet.
	WorstKey string
	WorstAt  float64
	Over2ms  int // messages that took longer than 2 ms
}

type flowKey struct{ src, dst netip.AddrPort }

// markerScanner finds markers in packets; for TCP it carries each flow's
// last bytes to the next segment so that a marker split over two segments
// is found in the second.
type markerScanner struct {
	re    *regexp.Regexp
	tails map[flowKey][]byte
}

const scanCarry = 256 // bytes carried per flow; longer than any marker

// scan calls fn with the key of every marker that p completes.
func (s *markerScanner) scan(p *packet, fn func(key string)) {
	if p.Proto != protoTCP {
		buf := xmlUnescape(p.Payload)
		for _, m := range s.re.FindAllSubmatchIndex(buf, -1) {
			fn(string(buf[m[2]:m[3]]))
		}
		return
	}
	k := flowKey{p.Src, p.Dst}
	tail := s.tails[k]
	tu, pu := xmlUnescape(tail), xmlUnescape(p.Payload)
	buf := make([]byte, 0, len(tu)+len(pu))
	buf = append(append(buf, tu...), pu...)
	for _, m := range s.re.FindAllSubmatchIndex(buf, -1) {
		// Ends in the carried bytes: found with the previous segment.
		// Ends at the end: its digits may go on in the next segment.
		if m[1] <= len(tu) || m[1] == len(buf) {
			continue
		}
		fn(string(buf[m[2]:m[3]]))
	}
	raw := append(append([]byte(nil), tail...), p.Payload...)
	if len(raw) > scanCarry {
		raw = raw[len(raw)-scanCarry:]
	}
	if s.tails == nil {
		s.tails = map[flowKey][]byte{}
	}
	s.tails[k] = raw
}

// matchCapture reads a pcap file and matches every message's way into
// stox with its way out.
func matchCapture(path string, spec wireSpec) (wireResult, error) {
	var res wireResult
	f, err := os.Open(path)
	if err != nil {
		return res, err
	}
	defer f.Close()
	in, out := map[string]int64{}, map[string]int64{}
	var t0 int64
	first := func(m map[string]int64, ts int64) func(string) {
		return func(k string) {
			if _, ok := m[k]; !ok {
				m[k] = ts
			}
		}
	}
	ask, answer := map[string]int64{}, map[string]int64{}
	var inScan, outScan markerScanner
	inScan.re, outScan.re = spec.marker, spec.marker
	res.Stats, err = readPcap(f, func(p *packet) {
		if t0 == 0 {
			t0 = p.TS
		}
		if spec.in(p) {
			inScan.scan(p, first(in, p.TS))
		}
		if spec.out(p) {
			outScan.scan(p, first(out, p.TS))
		}
		if spec.answerPort == 0 || p.Proto != protoUDP {
			return
		}
		if p.Dst.Port() == spec.answerPort && isSIPMessage(p) {
			if id := sipHeader(p.Payload, "call-id", "i"); id != "" {
				first(ask, p.TS)(id)
			}
		} else if p.Src.Port() == spec.answerPort && isFinalMessageResponse(p.Payload) {
			if id := sipHeader(p.Payload, "call-id", "i"); id != "" {
				first(answer, p.TS)(id)
			}
		}
	})
	if err != nil {
		return res, err
	}
	res.In, res.Out = len(in), len(out)
	worst := -1.0
	for k, ti := range in {
		to, ok := out[k]
		if !ok {
			continue
		}
		if to < ti {
			res.Negative++
			continue
		}
		d := float64(to-ti) / 1e6
		res.Lat = append(res.Lat, d)
		if d > 2 {
			res.Over2ms++
		}
		if d > worst {
			worst, res.WorstKey, res.WorstAt = d, k, float64(ti-t0)/1e6
		}
	}
	for id, t0 := range ask {
		if t1, ok := answer[id]; ok && t1 >= t0 {
			res.Answer = append(res.Answer, float64(t1-t0)/1e6)
		}
	}
	return res, nil
}

// isFinalMessageResponse: a SIP response ≥ 200 to a MESSAGE.
func isFinalMessageResponse(b []byte) bool {
	if !bytes.HasPrefix(b, []byte("SIP/2.0 ")) || len(b) < 11 || b[8] < '2' || b[8] > '6' {
		return false
	}
	cseq := sipHeader(b, "cseq", "")
	return strings.HasSuffix(strings.ToUpper(cseq), " MESSAGE")
}

// sipHeader is the value of the first header named name (or its compact
// form) in a SIP message's header section, or "".
func sipHeader(b []byte, name, compact string) string {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		b = b[:i]
	}
	for _, line := range bytes.Split(b, []byte("\r\n"))[1:] {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		k = bytes.TrimSpace(k)
		if strings.EqualFold(string(k), name) || (compact != "" && strings.EqualFold(string(k), compact)) {
			return string(bytes.TrimSpace(v))
		}
	}
	return ""
}

// xmlUnescape replaces XML's predefined entities and character references;
// anything else (an entity split over two segments, say) stays as it is.
func xmlUnescape(b []byte) []byte {
	if bytes.IndexByte(b, '&') < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '&' {
			out = append(out, b[i])
			continue
		}
		end := bytes.IndexByte(b[i:min(len(b), i+12)], ';')
		if end < 0 {
			out = append(out, b[i])
			continue
		}
		ent := string(b[i+1 : i+end])
		var r rune = -1
		switch {
		case ent == "amp":
			r = '&'
		case ent == "lt":
			r = '<'
		case ent == "gt":
			r = '>'
		case ent == "quot":
			r = '"'
		case ent == "apos":
			r = '\''
		case strings.HasPrefix(ent, "#x") || strings.HasPrefix(ent, "#X"):
			if v, err := strconv.ParseUint(ent[2:], 16, 21); err == nil {
				r = rune(v)
			}
		case strings.HasPrefix(ent, "#"):
			if v, err := strconv.ParseUint(ent[1:], 10, 21); err == nil {
				r = rune(v)
			}
		}
		if r < 0 {
			out = append(out, b[i])
			continue
		}
		out = append(out, string(r)...)
		i += end
	}
	return out
}
