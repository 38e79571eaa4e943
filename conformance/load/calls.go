package main

// Call load (docs/perf.md, "Calls"): XMPP clients place calls with a pion
// PeerConnection (ICE, DTLS-SRTP, rtcp-mux, BUNDLE, PCMU only: what a
// browser sends) to bob@sip.localhost/phone; stox relays them through its
// trunk (outbound_proxy) to a sipp UAS that answers every INVITE and echoes
// RTP (-rtp_echo). Each client sends 20 ms PCMU packets whose payload holds
// the send time and a sequence number; the echo comes back through stox, so
// the harness measures setup time, loss and round-trip time per packet,
// while /proc/PID/stat gives stox's CPU time.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"stox.dev/stox/conformance/peers"
	"stox.dev/stox/mapping"
)

// callOptions are the flags of -mode calls.
type callOptions struct {
	levels    []int         // concurrent calls per step of the ramp
	hold      time.Duration // media time once every call of a step is up
	inflight  int           // session-initiates awaiting their session-accept
	clients   int           // XMPP clients the calls are spread over
	direct    bool          // baseline: echo by an in-process pion peer, no stox
	rtpengine bool          // reference: rtpengine instead of stox (rtpengine.go)
	callsCSV  string
	keepCalls bool
}

// callResult is one step of the ramp (one CSV row).
type callResult struct {
	When       time.Time
	Load1      string
	Mode       string // stox or direct
	Calls      int    // calls placed
	Up         int    // answered and first echo received
	Failed     int
	SetupSecs  float64 // first session-initiate → last session-accept
	SetupP50   float64 // ms, session-initiate → session-accept
	SetupP99   float64
	EchoP50    float64 // ms, session-initiate → first echoed packet
	EchoP99    float64
	Hold       float64 // s
	Sent       int64   // packets sent in the hold window
	Lost       int64   // of those, not echoed
	CallsLoss  int     // calls with any loss
	RTTP50     float64 // ms
	RTTP99     float64
	RTTMax     float64
	CPUSecs    float64 // the relay (stox or rtpengine), user+system in the hold window
	CPUPerCall float64 // % of one core per relayed call (both directions)
	SelfCPU    float64 // s, the harness (callers) during the hold window
	SippCPU    float64 // s, sipp and the RTP echo during the hold window
	Notes      string
}

var callsCSVHeader = "time,load1,mode,calls,up,failed,setup_s,setups_per_s,setup_p50_ms,setup_p99_ms,first_echo_p50_ms,first_echo_p99_ms,hold_s,sent,lost,calls_with_loss,rtt_p50_ms,rtt_p99_ms,rtt_max_ms,relay_cpu_s,cpu_pct_per_call,relay_cpu_us_per_packet,harness_cpu_s,uas_echo_cpu_s,notes"

// usPerPacket is the relay's CPU time per packet it relayed: each packet
// sent crosses it twice (to the echo and back) unless lost. It does not
// depend on whether the callers managed to send at the full 50 packets/s
// per call, which a busy machine does not let them.
func (r callResult) usPerPacket() float64 {
	n := 2*r.Sent - r.Lost
	if n <= 0 {
		return 0
	}
	return 1e6 * r.CPUSecs / float64(n)
}

func (r callResult) setupsPerSec() float64 {
	if r.SetupSecs <= 0 {
		return 0
	}
	return float64(r.Up) / r.SetupSecs
}

func (r callResult) csv() string {
	return strings.Join([]string{
		r.When.UTC().Format(time.RFC3339), r.Load1, r.Mode, strconv.Itoa(r.Calls), strconv.Itoa(r.Up), strconv.Itoa(r.Failed),
		f3(r.SetupSecs), f3(r.setupsPerSec()), f3(r.SetupP50), f3(r.SetupP99), f3(r.EchoP50), f3(r.EchoP99),
		f3(r.Hold), strconv.FormatInt(r.Sent, 10), strconv.FormatInt(r.Lost, 10), strconv.Itoa(r.CallsLoss),
		f3(r.RTTP50), f3(r.RTTP99), f3(r.RTTMax), f3(r.CPUSecs), f3(r.CPUPerCall), f3(r.usPerPacket()), f3(r.SelfCPU), f3(r.SippCPU), strconv.Quote(r.Notes),
	}, ",")
}

func (r callResult) line() string {
	return fmt.Sprintf("%-6s calls %4d up %4d failed %3d | setups %6.1f/s p50 %6.1f p99 %6.1f ms, first echo p50 %6.1f ms | sent %7d lost %5d (%d calls) | rtt p50 %.3f p99 %.3f max %.1f ms | relay cpu %.2fs = %.3f%% core/call, %.1f µs/packet (harness %.2fs, sipp+echo %.2fs) | load %s %s",
		r.Mode, r.Calls, r.Up, r.Failed, r.setupsPerSec(), r.SetupP50, r.SetupP99, r.EchoP50, r.Sent, r.Lost, r.CallsLoss,
		r.RTTP50, r.RTTP99, r.RTTMax, r.CPUSecs, r.CPUPerCall, r.usPerPacket(), r.SelfCPU, r.SippCPU, r.Load1, r.Notes)
}

func f3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

func appendCallsCSV(path string, r callResult) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if errors.Is(statErr, os.ErrNotExist) {
		fmt.Fprintln(f, callsCSVHeader)
	}
	_, err = fmt.Fprintln(f, r.csv())
	return err
}

func parseLevels(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad level %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// callEnv is Prosody, stox (trunk to sipp, [media] range sized for the
// largest step) and the sipp echo UAS.
type callEnv struct {
	dir      string
	pros     *peers.Prosody
	stox     *stox
	sipp     *peers.Proc
	clients  []*jclient
	api      *webrtc.API
	echoPort int
	echo     *peers.Proc
	rtpe     *peers.Proc // -call-rtpengine
	ngAddr   string
}

// startEcho runs this program as the RTP echo (-mode rtp-echo) on a free
// port.
func (e *callEnv) startEcho() error {
	var err error
	if e.echoPort, err = peers.PickPort("udp"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	e.echo, err = start("rtp-echo", exec.Command(self, "-mode", "rtp-echo", "-echo-port", strconv.Itoa(e.echoPort)), filepath.Join(e.dir, "echo.log"))
	return err
}

// uasCPU is the CPU time of sipp and the RTP echo, in seconds.
func (e *callEnv) uasCPU() float64 {
	var t float64
	for _, p := range []*peers.Proc{e.sipp, e.echo} {
		if p != nil {
			t += procCPUSecs(p.Pid())
		}
	}
	return t
}

// callsUAS is sipp's scenario: answer every INVITE with PCMU toward the
// echo (ECHO_PORT is replaced), then wait for the BYE.
const callsUAS = `<?xml version="1.0" encoding="UTF-8"?>
<scenario name="calls_uas">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]U[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:bob@[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]U[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:bob@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=bob 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio ECHO_PORT RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv

]]></send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
`

// runEcho is -mode rtp-echo: every datagram on 127.0.0.1:port goes back
// to its sender, until the process is stopped.
func runEcho(port int) error {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetReadBuffer(4 << 20); err != nil {
		return err
	}
	if err := conn.SetWriteBuffer(4 << 20); err != nil {
		return err
	}
	return echo(conn)
}

// echo writes every datagram back to its sender until conn is closed.
func echo(conn *net.UDPConn) error {
	buf := make([]byte, 2048)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return err
		}
		if _, err := conn.WriteToUDPAddrPort(buf[:n], from); err != nil {
			return err
		}
	}
}

// relayPortMin is the start of stox's [media] port range in the harness.
const relayPortMin = 30000

// maxPort is the end of stox's [media] port range: each call holds 3
// relay ports (docs/media.md), with room for twice the largest step since
// freed ports are not reused at once.
func maxPort(co callOptions) int { return relayPortMin + 6*slices.Max(co.levels) + 100 }

// sockDrops are the datagrams the kernel dropped on full receive buffers
// (the drops column of /proc/net/udp), summed over sipp's echo socket,
// stox's relay range and the callers' ephemeral range.
type sockDrops struct{ echo, stox, callers int64 }

func udpDrops(echoPort, relayMax int) sockDrops {
	var d sockDrops
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return d
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 13 {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		port, err1 := strconv.ParseInt(hexPort, 16, 32)
		n, err2 := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		switch {
		case int(port) == echoPort:
			d.echo += n
		case port >= relayPortMin && int(port) <= relayMax:
			d.stox += n
		case port >= 40000 && port <= 59999:
			d.callers += n
		}
	}
	return d
}

func runCalls(ctx context.Context, o options, co callOptions) error {
	if err := peers.LookBins("sipp", "prosody", "prosodyctl"); err != nil {
		return err
	}
	e := &callEnv{}
	var err error
	if e.dir, err = os.MkdirTemp("", "stox-load-calls-"); err != nil {
		return err
	}
	defer func() {
		for _, c := range e.clients {
			c.close()
		}
		stopAll()
		if co.keepCalls {
			fmt.Fprintln(os.Stderr, "kept", e.dir)
		} else {
			os.RemoveAll(e.dir)
		}
	}()
	if e.api, err = newCallAPI(); err != nil {
		return err
	}
	var rs []callResult
	defer func() {
		fmt.Println()
		for _, r := range rs {
			fmt.Println(r.line())
		}
	}()
	add := func(r callResult) error {
		rs = append(rs, r)
		fmt.Println(r.line())
		return appendCallsCSV(co.callsCSV, r)
	}
	if co.rtpengine {
		if err := e.startEcho(); err != nil {
			return err
		}
		if e.ngAddr, err = e.startRTPEngine(co); err != nil {
			return err
		}
	}
	if co.direct || co.rtpengine {
		for _, n := range co.levels {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r, err := e.step(ctx, co, n, nil)
			if err != nil {
				return err
			}
			if err := add(r); err != nil {
				return err
			}
		}
		return nil
	}
	users := map[string]string{}
	for i := range co.clients {
		users[fmt.Sprintf("caller%d", i)] = "callerpw"
	}
	if e.pros, err = startProsody(filepath.Join(e.dir, "prosody"), users); err != nil {
		return err
	}
	// sipp answers every INVITE (calls_uas.xml: 180, 200 with PCMU on the
	// echo's port, then waits for the BYE); the echo is this program again
	// (-mode rtp-echo), a separate process so that its CPU is counted
	// apart, with a 4 MiB receive buffer. sipp's own -rtp_echo (one thread,
	// the default 208 KiB buffer) dropped packets whenever the shared
	// machine starved it for a few ms.
	sp, err := peers.PickPort("udp+tcp")
	if err != nil {
		return err
	}
	if err := e.startEcho(); err != nil {
		return err
	}
	scen := filepath.Join(e.dir, "calls_uas.xml")
	if err := os.WriteFile(scen, []byte(strings.ReplaceAll(callsUAS, "ECHO_PORT", strconv.Itoa(e.echoPort))), 0o644); err != nil {
		return err
	}
	mp, err := peers.PickPort("udp")
	if err != nil {
		return err
	}
	cmd, err := sippCmd(e.dir, "-sf", scen, "-p", strconv.Itoa(sp), "-mp", strconv.Itoa(mp), "-max_socket", "4096")
	if err != nil {
		return err
	}
	if e.sipp, err = start("sipp-uas", cmd, filepath.Join(e.dir, "sipp-uas.log")); err != nil {
		return err
	}
	maxCalls := slices.Max(co.levels)
	if e.stox, err = writeStoxConfig(o.stoxBin, e.dir, e.pros.ComponentAddr(), "", true, o.grace); err != nil {
		return err
	}
	conf, err := os.ReadFile(e.stox.conf)
	if err != nil {
		return err
	}
	c := strings.Replace(string(conf), `outbound_proxy = ""`, fmt.Sprintf(`outbound_proxy = "udp:127.0.0.1:%d"`, sp), 1)
	c += fmt.Sprintf("[media]\nlisten = \"127.0.0.1\"\nport_min = %d\nport_max = %d\nmax_calls = %d\ninactivity = \"30s\"\n[calls]\nring_timeout = \"30s\"\n",
		relayPortMin, maxPort(co), maxCalls+100)
	if err := os.WriteFile(e.stox.conf, []byte(c), 0o600); err != nil {
		return err
	}
	if err := e.stox.start(); err != nil {
		return err
	}
	for i := range co.clients {
		c, err := dialJClient(ctx, e.pros.C2SAddr(), fmt.Sprintf("caller%d", i), "callerpw")
		if err != nil {
			return err
		}
		e.clients = append(e.clients, c)
	}
	for _, n := range co.levels {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := e.step(ctx, co, n, e.stox)
		if err != nil {
			return err
		}
		if err := add(r); err != nil {
			return err
		}
		if e.stox.p.Exited() {
			return fmt.Errorf("stox exited: %v\n%s", e.stox.p.Err(), peers.LogTail(e.stox.p.Log, 2000))
		}
		if e.echo.Exited() {
			return fmt.Errorf("rtp echo exited: %v\n%s", e.echo.Err(), peers.LogTail(e.echo.Log, 2000))
		}
		if e.sipp.Exited() {
			return fmt.Errorf("sipp exited: %v\n%s", e.sipp.Err(), peers.LogTail(e.sipp.Log, 2000))
		}
	}
	return nil
}

// newCallAPI is the pion API of the callers: PCMU only, no interceptors
// (a browser also sends RTCP reports and NACKs; here they would only load
// the harness), host candidates on 127.0.0.1 only, no mDNS, and ephemeral
// ports outside stox's relay range.
func newCallAPI() (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000},
		PayloadType:        0,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(0)
	se.SetIncludeLoopbackCandidate(true)
	// rtpengine's answer names no SSRC and its first echoes can beat the
	// end of SetRemoteDescription; a single audio m-line leaves no doubt
	// which track they are.
	se.SetHandleUndeclaredSSRCWithoutAnswer(true)
	if err := se.SetEphemeralUDPPortRange(40000, 59999); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se)), nil
}

// ---- one step of the ramp ----

// lcall is one call of the harness.
type lcall struct {
	c     *jclient // nil: direct (no stox)
	sid   string
	pc    *webrtc.PeerConnection
	echo  *webrtc.PeerConnection // direct mode: the in-process echo peer
	track *webrtc.TrackLocalStaticRTP

	start    time.Time
	accepted chan error // session-accept applied (or the call failed)
	echoed   chan struct{}
	echoOnce sync.Once
	firstAt  atomic.Int64 // unix ns of the first echo

	seq      uint16
	ts       uint32
	buf      []byte
	counting atomic.Bool // inside the hold window
	mu       sync.Mutex
	sent     int64
	recv     int64
	rtt      []float64 // ms, hold window only
	termErr  atomic.Value
	ng       string // rtpengine's ng address: the call is deleted there
}

func (e *callEnv) step(ctx context.Context, co callOptions, n int, s *stox) (callResult, error) {
	r := callResult{When: time.Now(), Load1: loadavg(), Calls: n, Mode: "stox"}
	relay := e.rtpe // the relay whose CPU is measured
	switch {
	case s != nil:
		relay = s.p
	case e.rtpe != nil:
		r.Mode = "rtpengine"
	default:
		r.Mode = "direct"
	}
	calls := make([]*lcall, n)
	sem := make(chan struct{}, co.inflight)
	var wg sync.WaitGroup
	var setup, echo []float64
	var mu sync.Mutex
	var failures []string
	begin := time.Now()
	var lastUp time.Time
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return r, ctx.Err()
		}
		var c *jclient
		if s != nil {
			c = e.clients[i%len(e.clients)]
		}
		lc := &lcall{c: c, accepted: make(chan error, 1), echoed: make(chan struct{}), buf: make([]byte, 160)}
		calls[i] = lc
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := e.place(ctx, lc)
			<-sem // the session-accept came (or the call failed): the next may start
			var acc time.Time
			if err == nil {
				acc = time.Now()
				select {
				case <-lc.echoed:
				case <-time.After(10 * time.Second):
					err = errors.New("no echo within 10 s of the session-accept")
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err.Error())
				return
			}
			setup = append(setup, float64(acc.Sub(lc.start).Microseconds())/1000)
			echo = append(echo, float64(lc.firstAt.Load()-lc.start.UnixNano())/1e6)
			if acc.After(lastUp) {
				lastUp = acc
			}
		}()
	}
	wg.Wait()
	r.Up, r.Failed = len(setup), len(failures)
	r.SetupSecs = lastUp.Sub(begin).Seconds()
	slices.Sort(setup)
	slices.Sort(echo)
	r.SetupP50, r.SetupP99 = pct(setup, 0.50), pct(setup, 0.99)
	r.EchoP50, r.EchoP99 = pct(echo, 0.50), pct(echo, 0.99)
	if len(failures) > 0 {
		r.Notes = fmt.Sprintf("first failure: %s", failures[0])
	}

	// Hold: every call sends; the window starts after a second of warm-up
	// so that the calls set up last have settled.
	time.Sleep(time.Second)
	var cpu0, sipp0 float64
	var media0 map[string]float64
	drops0 := udpDrops(e.echoPort, maxPort(co))
	self0 := procCPUSecs(os.Getpid())
	if relay != nil {
		cpu0, sipp0 = procCPUSecs(relay.Pid()), e.uasCPU()
	}
	if s != nil {
		media0 = s.metrics("stox_media_")
	}
	for _, lc := range calls {
		lc.counting.Store(true)
	}
	holdStart := time.Now()
	time.Sleep(co.hold)
	for _, lc := range calls {
		lc.counting.Store(false)
	}
	r.Hold = time.Since(holdStart).Seconds()
	r.SelfCPU = procCPUSecs(os.Getpid()) - self0
	if relay != nil {
		r.SippCPU = e.uasCPU() - sipp0
		r.CPUSecs = procCPUSecs(relay.Pid()) - cpu0
		if r.Up > 0 {
			r.CPUPerCall = 100 * r.CPUSecs / (float64(r.Up) * r.Hold)
		}
	}
	drops := udpDrops(e.echoPort, maxPort(co))
	r.Notes = strings.TrimSpace(fmt.Sprintf("%s socket_drops(echo=%d relay=%d callers=%d)", r.Notes,
		drops.echo-drops0.echo, drops.stox-drops0.stox, drops.callers-drops0.callers))
	if s != nil {
		// What stox itself counted in the window: packets relayed per
		// direction, dropped per reason, lost (sequence gaps it saw).
		var d []string
		for k, v := range s.metrics("stox_media_") {
			if dv := v - media0[k]; dv != 0 && !strings.Contains(k, "bytes") && !strings.Contains(k, "relays_ended") {
				d = append(d, fmt.Sprintf("%s=%.0f", strings.TrimPrefix(k, "stox_media_"), dv))
			}
		}
		slices.Sort(d)
		r.Notes = strings.TrimSpace(r.Notes + " " + strings.Join(d, " "))
	}
	// Echoes of the last packets of the window are still on their way.
	time.Sleep(500 * time.Millisecond)
	var rtt []float64
	for _, lc := range calls {
		lc.mu.Lock()
		r.Sent += lc.sent
		if lost := lc.sent - lc.recv; lost > 0 {
			r.Lost += lost
			r.CallsLoss++
		}
		rtt = append(rtt, lc.rtt...)
		lc.mu.Unlock()
	}
	slices.Sort(rtt)
	r.RTTP50, r.RTTP99 = pct(rtt, 0.50), pct(rtt, 0.99)
	if len(rtt) > 0 {
		r.RTTMax = rtt[len(rtt)-1]
	}
	// Hang up everything and wait for stox to have no call left.
	var hw sync.WaitGroup
	for _, lc := range calls {
		hw.Add(1)
		go func() {
			defer hw.Done()
			lc.hangup(ctx)
		}()
	}
	hw.Wait()
	if s != nil {
		deadline := time.Now().Add(30 * time.Second)
		for s.metric("stox_calls_active") > 0 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if v := s.metric("stox_calls_active"); v > 0 {
			r.Notes = strings.TrimSpace(r.Notes + fmt.Sprintf(" %v calls still active 30 s after hang-up", v))
		}
	}
	return r, nil
}

// place sets up one call: offer, session-initiate, session-accept, ICE
// and DTLS; it returns once the session-accept is applied. Sending starts
// when the PeerConnection is connected.
func (e *callEnv) place(ctx context.Context, lc *lcall) error {
	pc, err := e.api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle, RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire})
	if err != nil {
		return err
	}
	lc.pc = pc
	lc.track, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, "audio", "load")
	if err != nil {
		return err
	}
	if _, err := pc.AddTrack(lc.track); err != nil {
		return err
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { go lc.readEcho(tr) })
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			go lc.sendLoop(ctx)
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	<-gathered // candidates inline in the session-initiate (half-trickle is the other way)
	lc.start = time.Now()
	if lc.c == nil {
		if e.ngAddr != "" {
			return e.rtpengineCall(lc)
		}
		return e.directAnswer(lc)
	}
	sess, err := mapping.ParseSDP([]byte(pc.LocalDescription().SDP))
	if err != nil {
		return fmt.Errorf("our own offer: %w", err)
	}
	contents, group := mapping.SessionToJingle(sess, mapping.RoleInitiator, mapping.RoleInitiator)
	// Random, as clients make them: stox indexes sessions by sid alone
	// and answers a sid in use by another JID with conflict.
	lc.sid = rand.Text()
	lc.c.register(lc)
	j := mapping.Jingle{Action: mapping.ActSessionInitiate, SID: lc.sid, Initiator: lc.c.jid, Contents: contents, Group: group}
	if err := lc.c.setIQ(ctx, "bob@sip.localhost/phone", j); err != nil {
		return fmt.Errorf("session-initiate: %w", err)
	}
	select {
	case err := <-lc.accepted:
		return err
	case <-time.After(20 * time.Second):
		return errors.New("no session-accept within 20 s")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// accept applies stox's session-accept (it runs off the XMPP reader).
func (lc *lcall) accept(j mapping.Jingle) {
	sess, err := mapping.JingleToSession(j)
	if err == nil {
		var b []byte
		if b, err = mapping.MarshalSDP(sess); err == nil {
			err = lc.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(b)})
		}
	}
	if err != nil {
		err = fmt.Errorf("session-accept: %w", err)
	}
	lc.accepted <- err
}

// addCandidates applies a transport-info from stox.
func (lc *lcall) addCandidates(j mapping.Jingle) {
	ccs, err := mapping.CandidatesFromTransportInfo(j)
	if err != nil {
		return
	}
	for _, cc := range ccs {
		for _, c := range cc.Candidates {
			_ = lc.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: mapping.CandidateAttr(c)})
		}
	}
}

// sendLoop sends a 20 ms PCMU packet until the call is closed: payload
// bytes 0–7 the send time (unix ns), 8–11 a sequence number.
func (lc *lcall) sendLoop(ctx context.Context) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var n uint32
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if lc.pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
			return
		}
		counting := lc.counting.Load()
		n++
		binary.BigEndian.PutUint32(lc.buf[8:], n)
		if counting {
			lc.buf[12] = 1
		} else {
			lc.buf[12] = 0
		}
		lc.seq++
		lc.ts += 160
		binary.BigEndian.PutUint64(lc.buf, uint64(time.Now().UnixNano()))
		err := lc.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: lc.seq, Timestamp: lc.ts}, Payload: lc.buf})
		if err == nil && counting {
			lc.mu.Lock()
			lc.sent++
			lc.mu.Unlock()
		}
	}
}

// readEcho reads the echoed packets: the first closes echoed; packets sent
// in the hold window (byte 12) are counted with their round-trip time.
func (lc *lcall) readEcho(tr *webrtc.TrackRemote) {
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		if len(p.Payload) < 13 {
			continue
		}
		lc.echoOnce.Do(func() {
			lc.firstAt.Store(now)
			close(lc.echoed)
		})
		if p.Payload[12] != 1 {
			continue
		}
		sent := int64(binary.BigEndian.Uint64(p.Payload))
		lc.mu.Lock()
		lc.recv++
		lc.rtt = append(lc.rtt, float64(now-sent)/1e6)
		lc.mu.Unlock()
	}
}

func (lc *lcall) hangup(ctx context.Context) {
	if lc.c != nil && lc.sid != "" {
		j := mapping.Jingle{Action: mapping.ActSessionTerminate, SID: lc.sid, Reason: mapping.NewJingleReason("success", "")}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = lc.c.setIQ(ctx, "bob@sip.localhost/phone", j)
		cancel()
		lc.c.unregister(lc.sid)
	}
	if lc.ng != "" {
		_, _ = ngDo(lc.ng, map[string]any{"command": "delete", "call-id": lc.sid, "from-tag": "caller"})
	}
	if lc.pc != nil {
		_ = lc.pc.Close()
	}
	if lc.echo != nil {
		_ = lc.echo.Close()
	}
}

// directAnswer is the baseline: the offer is answered by an in-process
// pion peer that writes every packet it receives back on its own track.
// The round trip then holds the same two SRTP legs of the caller's pion
// stack and one pion peer, without stox, its sipp echo and the plain-RTP
// leg.
func (e *callEnv) directAnswer(lc *lcall) error {
	pc, err := e.api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle, RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire})
	if err != nil {
		return err
	}
	lc.echo = pc
	back, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, "audio", "echo")
	if err != nil {
		return err
	}
	if _, err := pc.AddTrack(back); err != nil {
		return err
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		go func() {
			for {
				p, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				_ = back.WriteRTP(p)
			}
		}()
	})
	if err := pc.SetRemoteDescription(*lc.pc.LocalDescription()); err != nil {
		return err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return err
	}
	<-gathered
	return lc.pc.SetRemoteDescription(*pc.LocalDescription())
}

// metrics is every sample of stox's /metrics whose name starts with
// prefix, by its full name with labels.
func (s *stox) metrics(prefix string) map[string]float64 {
	m := map[string]float64{}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.http))
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// procCPUSecs is utime+stime of pid in seconds (/proc/PID/stat fields 14
// and 15, in clock ticks of 100 Hz on Linux).
func procCPUSecs(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: fields count from the
	// last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// ---- the XMPP caller ----

// jclient is a c2s session (as client in xmppc.go) that sends Jingle IQs
// and routes stox's Jingle requests to the call they belong to.
type jclient struct {
	s   *xmpp.Session
	jid string

	mu      sync.Mutex
	n       int
	calls   map[string]*lcall
	pending map[string]chan error
}

type iqOut struct {
	XMLName xml.Name        `xml:"jabber:client iq"`
	Type    string          `xml:"type,attr"`
	ID      string          `xml:"id,attr"`
	To      string          `xml:"to,attr,omitempty"`
	Jingle  *mapping.Jingle `xml:"urn:xmpp:jingle:1 jingle,omitempty"`
}

type iqIn struct {
	XMLName xml.Name        `xml:"iq"`
	Type    string          `xml:"type,attr"`
	ID      string          `xml:"id,attr"`
	From    string          `xml:"from,attr"`
	Jingle  *mapping.Jingle `xml:"urn:xmpp:jingle:1 jingle"`
	Error   *struct {
		Inner []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"error"`
}

func dialJClient(ctx context.Context, addr, user, pass string) (*jclient, error) {
	origin, err := jid.Parse(user + "@localhost/load")
	if err != nil {
		return nil, err
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	s, err := xmpp.NewSession(ctx, origin.Domain(), origin, conn, xmpp.Secure,
		xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
			return xmpp.StreamConfig{Features: []xmpp.StreamFeature{
				xmpp.SASL("", pass, sasl.Plain), xmpp.BindResource(),
			}}
		}))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("xmpp login %s: %w", user, err)
	}
	c := &jclient{s: s, jid: s.LocalAddr().String(), calls: map[string]*lcall{}, pending: map[string]chan error{}}
	go func() {
		if err := s.Serve(xmpp.HandlerFunc(c.handle)); err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "xmpp %s: serve: %v\n", user, err)
		}
	}()
	if err := s.Encode(ctx, presence{Priority: 1}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *jclient) newID(prefix string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return prefix + strconv.Itoa(c.n)
}

func (c *jclient) register(lc *lcall) {
	c.mu.Lock()
	c.calls[lc.sid] = lc
	c.mu.Unlock()
}

func (c *jclient) unregister(sid string) {
	c.mu.Lock()
	delete(c.calls, sid)
	c.mu.Unlock()
}

// setIQ sends an IQ set with j and waits for its result.
func (c *jclient) setIQ(ctx context.Context, to string, j mapping.Jingle) error {
	id := c.newID("q")
	ch := make(chan error, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	if err := c.s.Encode(ctx, iqOut{Type: "set", ID: id, To: to, Jingle: &j}); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-time.After(20 * time.Second):
		return fmt.Errorf("no answer to %s within 20 s", j.Action)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *jclient) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Local != "iq" {
		return nil
	}
	var iq iqIn
	if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(&iq); err != nil {
		return nil
	}
	switch iq.Type {
	case "result", "error":
		c.mu.Lock()
		ch := c.pending[iq.ID]
		c.mu.Unlock()
		if ch != nil {
			var err error
			if iq.Type == "error" {
				cond := "undefined-condition"
				if iq.Error != nil {
					for _, e := range iq.Error.Inner {
						if e.XMLName.Local != "text" {
							cond = e.XMLName.Local
							break
						}
					}
				}
				err = fmt.Errorf("iq error %s", cond)
			}
			ch <- err
		}
		return nil
	case "set":
	default:
		return nil
	}
	// Every request is acknowledged (XEP-0166 §6.2), then acted on off
	// the reader.
	if err := t.Encode(iqOut{Type: "result", ID: iq.ID, To: iq.From}); err != nil {
		return err
	}
	if iq.Jingle == nil {
		return nil
	}
	c.mu.Lock()
	lc := c.calls[iq.Jingle.SID]
	c.mu.Unlock()
	if lc == nil {
		return nil
	}
	j := *iq.Jingle
	switch j.Action {
	case mapping.ActSessionAccept:
		go lc.accept(j)
	case mapping.ActTransportInfo:
		go lc.addCandidates(j)
	case mapping.ActSessionTerminate:
		reason := ""
		if j.Reason != nil {
			reason = j.Reason.Condition.XMLName.Local
		}
		lc.termErr.Store(reason)
		select {
		case lc.accepted <- fmt.Errorf("session-terminate %s", reason):
		default:
		}
	}
	return nil
}

func (c *jclient) close() {
	if c != nil && c.s != nil {
		_ = c.s.Close()
		_ = c.s.Conn().Close()
	}
}
