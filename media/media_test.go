package media

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"stox.dev/stox/mapping"
)

var (
	pcmu   = mapping.Codec{PT: 0, Name: "PCMU", Clock: 8000}
	teSIP  = mapping.Codec{PT: 101, Name: "telephone-event", Clock: 8000, Fmtp: "0-16"}
	teWeb  = mapping.Codec{PT: 126, Name: "telephone-event", Clock: 8000, Fmtp: "0-16"}
	webSet = []mapping.Codec{pcmu, teWeb}
	sipSet = []mapping.Codec{pcmu, teSIP}
)

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1"
	}
	if cfg.PortMin == 0 {
		cfg.PortMin, cfg.PortMax = 16000, 16099
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// browser is a pion PeerConnection playing the XMPP client: full ICE on
// loopback, PCMU and telephone-event 126, and a track that writes raw RTP
// with any PT (pion's static tracks would rewrite it).
type browser struct {
	pc        *webrtc.PeerConnection
	track     *rawTrack
	connected chan struct{}
	mu        sync.Mutex
	got       map[uint8]int
	ssrcs     map[uint32]bool
	seqs      []uint16
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	me := &webrtc.MediaEngine{}
	for _, c := range webSet {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/" + c.Name, ClockRate: c.Clock, SDPFmtpLine: c.Fmtp},
			PayloadType:        webrtc.PayloadType(c.PT)}, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	if err := se.SetEphemeralUDPPortRange(41000, 41999); err != nil {
		t.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	b := &browser{pc: pc, track: &rawTrack{}, connected: make(chan struct{}), got: map[uint8]int{}, ssrcs: map[uint32]bool{}}
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(b.connected) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) || n == 0 && isEOF(err) {
					return
				}
				continue
			}
			p, ok := parseRTP(buf[:n])
			if !ok {
				continue
			}
			b.mu.Lock()
			b.got[p.pt]++
			b.ssrcs[p.ssrc] = true
			b.seqs = append(b.seqs, p.seq)
			b.mu.Unlock()
		}
	})
	return b
}

func (b *browser) counts() (map[uint8]int, map[uint32]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, s := map[uint8]int{}, map[uint32]bool{}
	for k, v := range b.got {
		g[k] = v
	}
	for k := range b.ssrcs {
		s[k] = true
	}
	return g, s
}

// local waits for gathering and returns the browser's description.
func (b *browser) local(t testing.TB, d webrtc.SessionDescription) mapping.Media {
	t.Helper()
	gathered := webrtc.GatheringCompletePromise(b.pc)
	if err := b.pc.SetLocalDescription(d); err != nil {
		t.Fatal(err)
	}
	<-gathered
	m, err := parseWebRTC(b.pc.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type rawTrack struct {
	w    atomic.Pointer[binding]
	seq  uint16
	ts   uint32
	lock sync.Mutex
}

func (r *rawTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	r.w.Store(&binding{w: ctx.WriteStream(), ssrc: uint32(ctx.SSRC())})
	return ctx.CodecParameters()[0], nil
}
func (r *rawTrack) Unbind(webrtc.TrackLocalContext) error { return nil }
func (r *rawTrack) ID() string                            { return "a" }
func (r *rawTrack) RID() string                           { return "" }
func (r *rawTrack) StreamID() string                      { return "b" }
func (r *rawTrack) Kind() webrtc.RTPCodecType             { return webrtc.RTPCodecTypeAudio }

func (r *rawTrack) send(t testing.TB, pt uint8) {
	t.Helper()
	r.lock.Lock()
	defer r.lock.Unlock()
	w := r.w.Load()
	if w == nil {
		t.Fatal("browser track not bound")
	}
	r.seq++
	r.ts += 160
	h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: r.seq, Timestamp: r.ts, SSRC: w.ssrc}
	if _, err := w.w.WriteRTP(&h, make([]byte, 160)); err != nil {
		t.Fatal(err)
	}
}

// phone is the SIP side: a UDP socket that sends and counts RTP.
type phone struct {
	conn  *net.UDPConn
	mu    sync.Mutex
	got   map[uint8]int
	ssrcs map[uint32]bool
	seq   uint16
}

func newPhone(t testing.TB) *phone {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &phone{conn: c, got: map[uint8]int{}, ssrcs: map[uint32]bool{}, seq: 1000}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if r, ok := parseRTP(buf[:n]); ok {
				p.mu.Lock()
				p.got[r.pt]++
				p.ssrcs[r.ssrc] = true
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return p
}

func (p *phone) media() mapping.Media {
	return mapping.Media{Kind: "audio", Profile: "RTP/AVP", Addr: "127.0.0.1", Port: p.conn.LocalAddr().(*net.UDPAddr).Port,
		Codecs: sipSet, Direction: mapping.SendRecv}
}

func mkRTP(pt uint8, seq uint16, ssrc uint32) []byte {
	b := make([]byte, 12+160)
	writeHeader(b, false, pt, seq, uint32(seq)*160, ssrc)
	return b
}

func (p *phone) send(t *testing.T, to mapping.Media, pt uint8) {
	t.Helper()
	p.seq++
	if _, err := p.conn.WriteToUDP(mkRTP(pt, p.seq, 0x1234), &net.UDPAddr{IP: net.ParseIP(to.Addr), Port: to.Port}); err != nil {
		t.Fatal(err)
	}
}

func (p *phone) counts() (map[uint8]int, map[uint32]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, s := map[uint8]int{}, map[uint32]bool{}
	for k, v := range p.got {
		g[k] = v
	}
	for k := range p.ssrcs {
		s[k] = true
	}
	return g, s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func inRange(t *testing.T, port int) {
	t.Helper()
	if port < 16000 || port > 16099 {
		t.Errorf("port %d outside 16000–16099", port)
	}
}

// relayBothWays sends PCMU and DTMF each way and checks PTs and SSRCs on
// the far side.
func relayBothWays(t *testing.T, c *Call, b *browser, ph *phone, local, web mapping.Media) {
	t.Helper()
	select {
	case <-b.connected:
	case <-time.After(10 * time.Second):
		t.Fatal("browser never connected")
	}
	waitFor(t, "browser track bound", func() bool { return b.track.w.Load() != nil })
	for i := 0; i < 20; i++ {
		ph.send(t, local, 0)
		if i%4 == 0 {
			ph.send(t, local, 101)
		}
		b.track.send(t, 0)
		if i%4 == 0 {
			b.track.send(t, 126)
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitFor(t, "packets in the browser", func() bool { g, _ := b.counts(); return g[0] >= 15 && g[126] >= 3 })
	waitFor(t, "packets in the phone", func() bool { g, _ := ph.counts(); return g[0] >= 15 && g[101] >= 3 })
	g, ss := b.counts()
	if len(g) != 2 || len(ss) != 1 || ss[0x1234] {
		t.Errorf("browser got PTs %v SSRCs %v; want 0 and 126 on one stox SSRC", g, ss)
	}
	if web.SSRC != 0 && !ss[web.SSRC] {
		t.Errorf("browser got SSRCs %v, stox announced %d", ss, web.SSRC)
	}
	g, ss = ph.counts()
	if len(g) != 2 || len(ss) != 1 || !ss[local.SSRC] {
		t.Errorf("phone got PTs %v SSRCs %v; want 0 and 101 on stox's SSRC %d", g, ss, local.SSRC)
	}
	// A packet from an address the SIP side did not negotiate is dropped.
	before := c.Stats().ToWebRTC
	stranger := newPhone(t)
	for i := 0; i < 5; i++ {
		stranger.send(t, local, 0)
	}
	waitFor(t, "strangers dropped", func() bool { return c.Stats().ToWebRTC.Dropped >= before.Dropped+5 })
	if s := c.Stats().ToWebRTC; s.Packets != before.Packets {
		t.Errorf("a stranger's packets were relayed: %d → %d", before.Packets, s.Packets)
	}
	if c.Stats().Started.IsZero() {
		t.Error("Stats.Started is zero on a relaying call")
	}
}

func TestAnswerWebRTC(t *testing.T) {
	t.Run("loopback", func(t *testing.T) { testAnswerWebRTC(t, Config{}) })
	// Bound to every address, announcing one (docs/media.md: Advertise).
	t.Run("any", func(t *testing.T) { testAnswerWebRTC(t, Config{Listen: "0.0.0.0", Advertise: "127.0.0.1"}) })
}

func testAnswerWebRTC(t *testing.T, cfg Config) {
	e := newEngine(t, cfg)
	c, err := e.Open("answer")
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	if _, err := b.pc.AddTransceiverFromTrack(b.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
		t.Fatal(err)
	}
	o, err := b.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	offer := b.local(t, o)
	cands := offer.Candidates // trickled after the answer (XEP-0176 transport-info)
	offer.Candidates = nil
	if len(cands) == 0 {
		t.Fatal("browser gathered no candidate")
	}
	ans, err := c.AnswerWebRTC(offer, webSet)
	if err != nil {
		t.Fatal(err)
	}
	if !ans.ICELite || ans.Fingerprint == nil || ans.Fingerprint.Setup != "active" || !ans.RTCPMux || ans.Mid != offer.Mid {
		t.Errorf("answer: lite %v fingerprint %+v rtcp-mux %v mid %q (offer %q)", ans.ICELite, ans.Fingerprint, ans.RTCPMux, ans.Mid, offer.Mid)
	}
	if len(ans.Candidates) == 0 {
		t.Fatal("answer has no candidate")
	}
	for _, cd := range ans.Candidates {
		if cd.IP != "127.0.0.1" || cd.Type != "host" {
			t.Errorf("answer candidate %+v: want host on 127.0.0.1", cd)
		}
		inRange(t, cd.Port)
	}
	if len(ans.Codecs) != 2 || ans.Codecs[0].PT != 0 || ans.Codecs[1].PT != 126 {
		t.Errorf("answer codecs %+v; want PCMU 0, telephone-event 126", ans.Codecs)
	}
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: webrtcSDP(ans)}); err != nil {
		t.Fatal(err)
	}
	for _, cd := range cands {
		if err := c.AddRemoteCandidate(cd); err != nil {
			t.Fatal(err)
		}
	}
	ph := newPhone(t)
	local, err := c.LocalRTP(sipSet)
	if err != nil {
		t.Fatal(err)
	}
	if local.Port%2 != 0 || local.Addr != "127.0.0.1" || local.Profile != "RTP/AVP" || local.SSRC == 0 {
		t.Errorf("local RTP %+v", local)
	}
	inRange(t, local.Port)
	if err := c.SetRemoteRTP(ph.media()); err != nil {
		t.Fatal(err)
	}
	relayBothWays(t, c, b, ph, local, ans)
	if e.InUse() != PortsPerCall {
		t.Errorf("%d ports in use, want %d", e.InUse(), PortsPerCall)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err after Close = %v", c.Err())
	}
	if e.InUse() != 0 {
		t.Errorf("%d ports in use after Close", e.InUse())
	}
}

func TestOfferWebRTC(t *testing.T) {
	e := newEngine(t, Config{})
	c, err := e.Open("offer")
	if err != nil {
		t.Fatal(err)
	}
	ph := newPhone(t)
	local, err := c.LocalRTP(sipSet)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetRemoteRTP(ph.media()); err != nil {
		t.Fatal(err)
	}
	off, err := c.OfferWebRTC(webSet)
	if err != nil {
		t.Fatal(err)
	}
	if off.ICELite || off.Fingerprint == nil || off.Fingerprint.Setup != "actpass" || !off.RTCPMux || len(off.Candidates) == 0 {
		t.Fatalf("offer: %+v", off)
	}
	b := newBrowser(t)
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: webrtcSDP(off)}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pc.AddTrack(b.track); err != nil {
		t.Fatal(err)
	}
	a, err := b.pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	ans := b.local(t, a)
	cands := ans.Candidates
	ans.Candidates = nil
	// Trickled before the answer arrives: kept until it.
	for _, cd := range cands {
		if err := c.AddRemoteCandidate(cd); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetWebRTCAnswer(ans); err != nil {
		t.Fatal(err)
	}
	relayBothWays(t, c, b, ph, local, off)
}

// fakeOffer is a WebRTC offer nobody will answer checks for.
func fakeOffer() mapping.Media {
	return mapping.Media{Mid: "audio", Kind: "audio", Profile: "UDP/TLS/RTP/SAVPF", ICEUfrag: "abcd", ICEPwd: "abcdefghijklmnopqrstuvwx",
		Fingerprint: &mapping.Fingerprint{Hash: "sha-256", Setup: "actpass",
			Value: "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99"},
		Codecs: webSet, Direction: mapping.SendRecv, RTCPMux: true}
}

func TestInactivity(t *testing.T) {
	e := newEngine(t, Config{Inactivity: 200 * time.Millisecond})
	c, err := e.Open("idle")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AnswerWebRTC(fakeOffer(), webSet); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LocalRTP(sipSet); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.SetRemoteRTP(newPhone(t).media()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the idle call did not end")
	}
	if !errors.Is(c.Err(), ErrInactive) {
		t.Errorf("Err = %v, want ErrInactive", c.Err())
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("ended after %v, before the timeout", d)
	}
	if e.InUse() != 0 {
		t.Errorf("%d ports in use after the call ended", e.InUse())
	}
}

func TestLimits(t *testing.T) {
	e := newEngine(t, Config{PortMin: 16000, PortMax: 16005, MaxCalls: 3})
	a, err := e.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Open("b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Open("c"); !errors.Is(err, ErrNoPorts) {
		t.Errorf("third call in 6 ports: %v, want ErrNoPorts", err)
	}
	for _, c := range []*Call{a, b} {
		for _, p := range c.ports {
			if p < 16000 || p > 16005 {
				t.Errorf("port %d outside 16000–16005", p)
			}
		}
	}
	_ = a.Close()
	if e.InUse() != PortsPerCall {
		t.Errorf("%d ports in use, want %d", e.InUse(), PortsPerCall)
	}
	if _, err := e.Open("d"); err != nil {
		t.Errorf("after Close freed ports: %v", err)
	}

	e2 := newEngine(t, Config{PortMin: 16010, PortMax: 16099, MaxCalls: 2})
	for i := 0; i < 2; i++ {
		if _, err := e2.Open("x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e2.Open("y"); !errors.Is(err, ErrTooManyCalls) {
		t.Errorf("call over MaxCalls: %v, want ErrTooManyCalls", err)
	}
	_ = e2.Close()
	if _, err := e2.Open("z"); !errors.Is(err, ErrClosed) {
		t.Errorf("Open after Close: %v, want ErrClosed", err)
	}
	if e2.InUse() != 0 {
		t.Errorf("%d ports in use after engine Close", e2.InUse())
	}
}

func TestProfile(t *testing.T) {
	e := newEngine(t, Config{})
	c, err := e.Open("p")
	if err != nil {
		t.Fatal(err)
	}
	sdes := fakeOffer()
	sdes.Fingerprint = nil
	if _, err := c.AnswerWebRTC(sdes, webSet); !errors.Is(err, ErrProfile) {
		t.Errorf("offer without DTLS: %v", err)
	}
	inj := fakeOffer()
	inj.ICEUfrag = "a\r\na=ice-lite"
	if _, err := c.AnswerWebRTC(inj, webSet); !errors.Is(err, ErrProfile) {
		t.Errorf("offer with CRLF: %v", err)
	}
	savp := newPhone(t).media()
	savp.Profile = "RTP/SAVP"
	if err := c.SetRemoteRTP(savp); !errors.Is(err, ErrProfile) {
		t.Errorf("SAVP on the SIP leg: %v", err)
	}
}

// fakeWriter stands for pion's SRTP writer in the unit tests of the packet
// path.
type fakeWriter struct {
	n    int
	last rtp.Header
}

func (f *fakeWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	f.n++
	f.last = *h
	return len(payload), nil
}
func (f *fakeWriter) Write(b []byte) (int, error) { return len(b), nil }

// packetPath sets a call up with a fake WebRTC writer and the phone's
// address, without pion.
func packetPath(t testing.TB, cfg Config) (*Call, *fakeWriter, netip.AddrPort) {
	e := newEngine(t, cfg)
	c, err := e.Open("path")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	fw := &fakeWriter{}
	c.xl.out.Store(&binding{w: fw, ssrc: 0xabcdef})
	c.mu.Lock()
	c.sipLocal, c.sipPeer, c.webIn, c.webOut = sipSet, sipSet, webSet, webSet
	c.updateMapsLocked()
	c.mu.Unlock()
	peer := netip.MustParseAddrPort("127.0.0.1:40000")
	c.remote.Store(&sipRemote{addr: peer, send: true})
	return c, fw, peer
}

func TestFromSIPPath(t *testing.T) {
	c, fw, peer := packetPath(t, Config{})
	var sm seqMap
	var h rtp.Header
	c.fromSIP(mkRTP(101, 7, 1), peer, &sm, &h)
	if fw.n != 1 || fw.last.PayloadType != 126 || fw.last.SSRC != 0xabcdef || fw.last.SequenceNumber != 7 {
		t.Errorf("relayed %d, header %+v", fw.n, fw.last)
	}
	c.fromSIP(mkRTP(0, 8, 1), netip.MustParseAddrPort("127.0.0.1:40001"), &sm, &h)
	c.fromSIP(mkRTP(9, 8, 1), peer, &sm, &h)
	c.fromSIP([]byte{0x80, 0}, peer, &sm, &h)
	if fw.n != 1 || c.Stats().ToWebRTC.Dropped != 3 {
		t.Errorf("relayed %d, dropped %d; want 1, 3 (source, PT, malformed)", fw.n, c.Stats().ToWebRTC.Dropped)
	}
	// A new source SSRC continues the output sequence.
	c.fromSIP(mkRTP(0, 500, 2), peer, &sm, &h)
	if fw.last.SequenceNumber != 8 {
		t.Errorf("after an SSRC change seq = %d, want 8", fw.last.SequenceNumber)
	}
	c.fromSIP(mkRTP(0, 503, 2), peer, &sm, &h)
	if s := c.Stats().ToWebRTC; s.Lost != 2 || s.Packets != 3 {
		t.Errorf("stats %+v; want 3 packets, 2 lost", s)
	}
}

func TestLatch(t *testing.T) {
	c, fw, _ := packetPath(t, Config{Latch: true})
	var sm seqMap
	var h rtp.Header
	nat := netip.MustParseAddrPort("127.0.0.1:40002")
	c.fromSIP(mkRTP(0, 1, 1), nat, &sm, &h)
	c.fromSIP(mkRTP(0, 2, 1), netip.MustParseAddrPort("127.0.0.1:40003"), &sm, &h)
	if fw.n != 1 || c.remote.Load().addr != nat {
		t.Errorf("latching: relayed %d, remote %v; want 1 from %v", fw.n, c.remote.Load().addr, nat)
	}
}

func TestToSIPPath(t *testing.T) {
	c, _, _ := packetPath(t, Config{})
	ph := newPhone(t)
	addr := netip.MustParseAddrPort(ph.conn.LocalAddr().String())
	c.remote.Store(&sipRemote{addr: addr, send: true})
	out := make([]byte, 1500)
	var sm seqMap
	in := mkRTP(126, 1, 99)
	in[0] |= 0x10 // an extension the SIP leg did not negotiate is removed
	in = append(in[:12], append([]byte{0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0}, in[12:]...)...)
	c.toSIPLeg(in, out, &sm, &rtp.Header{})
	waitFor(t, "DTMF at the phone", func() bool { g, ss := ph.counts(); return g[101] == 1 && ss[c.sipSSRC] })
}

func TestAdvertise(t *testing.T) {
	e := newEngine(t, Config{Advertise: "192.0.2.7"})
	c, err := e.Open("adv")
	if err != nil {
		t.Fatal(err)
	}
	ans, err := c.AnswerWebRTC(fakeOffer(), webSet)
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Candidates) != 1 || ans.Candidates[0].IP != "192.0.2.7" || ans.Candidates[0].Port != c.ports[2] {
		t.Errorf("candidates %+v; want one host on 192.0.2.7:%d", ans.Candidates, c.ports[2])
	}
	local, err := c.LocalRTP(sipSet)
	if err != nil {
		t.Fatal(err)
	}
	if local.Addr != "192.0.2.7" || local.Port != c.ports[0] {
		t.Errorf("local RTP on %s:%d", local.Addr, local.Port)
	}
}

// countMetrics records what the relay reports.
type countMetrics struct {
	mu      sync.Mutex
	relayed [2]int
	dropped map[Drop]int
	lost    [2]int
	ended   []error
}

func (m *countMetrics) Relayed(d Dir, _ int) { m.mu.Lock(); m.relayed[d]++; m.mu.Unlock() }
func (m *countMetrics) Dropped(_ Dir, why Drop) {
	m.mu.Lock()
	m.dropped[why]++
	m.mu.Unlock()
}
func (m *countMetrics) Lost(d Dir, n int) { m.mu.Lock(); m.lost[d] += n; m.mu.Unlock() }
func (m *countMetrics) CallEnded(err error) {
	m.mu.Lock()
	m.ended = append(m.ended, err)
	m.mu.Unlock()
}

func TestMetrics(t *testing.T) {
	met := &countMetrics{dropped: map[Drop]int{}}
	c, _, peer := packetPath(t, Config{Metrics: met})
	var sm seqMap
	var h rtp.Header
	c.fromSIP(mkRTP(0, 1, 1), peer, &sm, &h)
	c.fromSIP(mkRTP(0, 4, 1), peer, &sm, &h)
	c.fromSIP(mkRTP(0, 5, 1), netip.MustParseAddrPort("127.0.0.1:1"), &sm, &h)
	c.fromSIP(mkRTP(13, 5, 1), peer, &sm, &h)
	_ = c.Close()
	met.mu.Lock()
	defer met.mu.Unlock()
	if met.relayed[ToWebRTC] != 2 || met.lost[ToWebRTC] != 2 || met.dropped[DropSource] != 1 || met.dropped[DropPT] != 1 {
		t.Errorf("relayed %v lost %v dropped %v", met.relayed, met.lost, met.dropped)
	}
	if len(met.ended) != 1 || !errors.Is(met.ended[0], ErrClosed) {
		t.Errorf("ended %v", met.ended)
	}
}

// TestSIPDirection: nothing is sent to a SIP side that does not receive.
func TestSIPDirection(t *testing.T) {
	c, _, _ := packetPath(t, Config{})
	ph := newPhone(t)
	for _, m := range []func(*mapping.Media){
		func(m *mapping.Media) { m.Direction = mapping.SendOnly },
		func(m *mapping.Media) { m.Direction = mapping.Inactive },
		func(m *mapping.Media) { m.Addr = "0.0.0.0" }, // RFC 3264 §8.4, the old hold
	} {
		r := ph.media()
		m(&r)
		if err := c.SetRemoteRTP(r); err != nil {
			t.Fatal(err)
		}
		var sm seqMap
		c.toSIPLeg(mkRTP(0, 1, 1), make([]byte, 1500), &sm, &rtp.Header{})
	}
	time.Sleep(50 * time.Millisecond)
	if g, _ := ph.counts(); len(g) != 0 {
		t.Errorf("the phone got %v", g)
	}
	if d := c.Stats().ToSIP.Dropped; d != 3 {
		t.Errorf("dropped %d, want 3", d)
	}
}

// TestBusyPort: a port some other process holds is skipped.
func TestBusyPort(t *testing.T) {
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 16300})
	if err != nil {
		t.Skipf("cannot hold port 16300: %v", err)
	}
	defer busy.Close()
	e := newEngine(t, Config{PortMin: 16300, PortMax: 16305})
	c, err := e.Open("busy")
	if err != nil {
		t.Fatal(err)
	}
	if c.ports[0] != 16302 || c.ports[1] != 16303 || c.ports[2] != 16304 {
		t.Errorf("ports %v, want 16302–16304", c.ports)
	}
	if _, err := e.Open("none"); !errors.Is(err, ErrNoPorts) {
		t.Errorf("second call: %v, want ErrNoPorts", err)
	}
}

// TestChromeOffer answers the codec list Chromium offers through StanzaJS
// (opus, red, G722, PCMU, PCMA, CN, two telephone-events) with a chosen
// subset, keeping the offer's PTs.
func TestChromeOffer(t *testing.T) {
	e := newEngine(t, Config{})
	c, err := e.Open("chrome")
	if err != nil {
		t.Fatal(err)
	}
	opus := mapping.Codec{PT: 111, Name: "opus", Clock: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1",
		FB: []mapping.RTCPFB{{Type: "transport-cc"}}}
	te8k := mapping.Codec{PT: 126, Name: "telephone-event", Clock: 8000, Channels: 1}
	offer := fakeOffer()
	offer.Mid = "0"
	offer.RTCPRsize = true
	offer.SSRC, offer.CNAME = 1321869397, "1ZagI2ibfZaQhIBg"
	offer.Codecs = []mapping.Codec{opus,
		{PT: 63, Name: "red", Clock: 48000, Channels: 2, Fmtp: "111/111"},
		{PT: 9, Name: "G722", Clock: 8000, Channels: 1}, {PT: 0, Name: "PCMU", Clock: 8000, Channels: 1},
		{PT: 8, Name: "PCMA", Clock: 8000, Channels: 1}, {PT: 13, Name: "CN", Clock: 8000, Channels: 1},
		{PT: 110, Name: "telephone-event", Clock: 48000, Channels: 1}, te8k}
	ans, err := c.AnswerWebRTC(offer, []mapping.Codec{opus, te8k})
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Codecs) != 2 || ans.Codecs[0].PT != 111 || ans.Codecs[0].Channels != 2 || ans.Codecs[1].PT != 126 || ans.Mid != "0" {
		t.Errorf("answer codecs %+v mid %q", ans.Codecs, ans.Mid)
	}
}
