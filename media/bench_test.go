package media

import (
	"github.com/pion/webrtc/v4"
	"net/netip"
	"stox.dev/stox/mapping"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// BenchmarkFromSIP is stox's part of the SIP → WebRTC packet path: source
// check, parse, PT map, seq/timestamp rewrite, counters (pion's SRTP write
// is faked).
func BenchmarkFromSIP(b *testing.B) {
	c, _, peer := packetPath(b, Config{})
	pkt := mkRTP(0, 1, 1)
	var sm seqMap
	var h rtp.Header
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for i := 0; b.Loop(); i++ {
		pkt[2], pkt[3] = byte(i>>8), byte(i)
		c.fromSIP(pkt, peer, &sm, &h)
	}
}

// BenchmarkToSIP is the WebRTC → SIP path after pion's SRTP decryption:
// parse, PT map, rewrite into stox's header, and the UDP write.
func BenchmarkToSIP(b *testing.B) {
	c, _, _ := packetPath(b, Config{})
	sink := newEngine(b, Config{PortMin: 16200, PortMax: 16299})
	s, err := sink.Open("sink")
	if err != nil {
		b.Fatal(err)
	}
	c.remote.Store(&sipRemote{addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(s.ports[1])), send: true})
	pkt := mkRTP(126, 1, 1)
	out := make([]byte, 1500)
	var sm seqMap
	var h rtp.Header
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for i := 0; b.Loop(); i++ {
		pkt[2], pkt[3] = byte(i>>8), byte(i)
		c.toSIPLeg(pkt, out, &sm, &h)
	}
}

// BenchmarkCallSetup opens a call, answers a WebRTC offer (certificate,
// ICE-lite agent, gathering), sets up the SIP leg and closes it.
func BenchmarkCallSetup(b *testing.B) {
	e := newEngine(b, Config{})
	ph := mapping0()
	b.ReportAllocs()
	for b.Loop() {
		c, err := e.Open("bench")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.AnswerWebRTC(fakeOffer(), webSet); err != nil {
			b.Fatal(err)
		}
		if _, err := c.LocalRTP(sipSet); err != nil {
			b.Fatal(err)
		}
		if err := c.SetRemoteRTP(ph); err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
}

func mapping0() (m mapping.Media) {
	m.Kind, m.Profile, m.Addr, m.Port, m.Codecs = "audio", "RTP/AVP", "127.0.0.1", 9, sipSet
	return m
}

// BenchmarkFromSIPPion is the whole SIP → WebRTC path on a connected call:
// stox's part, then pion's interceptors, SRTP encryption and the UDP write
// toward a pion "browser" on loopback.
func BenchmarkFromSIPPion(b *testing.B) {
	e := newEngine(b, Config{})
	c, err := e.Open("pion")
	if err != nil {
		b.Fatal(err)
	}
	br := newBrowser(b)
	if _, err := br.pc.AddTransceiverFromTrack(br.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
		b.Fatal(err)
	}
	o, err := br.pc.CreateOffer(nil)
	if err != nil {
		b.Fatal(err)
	}
	ans, err := c.AnswerWebRTC(br.local(b, o), webSet)
	if err != nil {
		b.Fatal(err)
	}
	if err := br.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: webrtcSDP(ans)}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.LocalRTP(sipSet); err != nil {
		b.Fatal(err)
	}
	peer := netip.MustParseAddrPort("127.0.0.1:40000")
	if err := c.SetRemoteRTP(mapping.Media{Profile: "RTP/AVP", Addr: "127.0.0.1", Port: 40000, Codecs: sipSet}); err != nil {
		b.Fatal(err)
	}
	<-br.connected
	for c.xl.out.Load() == nil || !c.xl.dtlsUp.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	pkt := mkRTP(0, 1, 1)
	var sm seqMap
	var h rtp.Header
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for i := 0; b.Loop(); i++ {
		pkt[2], pkt[3] = byte(i>>8), byte(i)
		c.fromSIP(pkt, peer, &sm, &h)
	}
	if d := c.Stats().ToWebRTC.Dropped; d != 0 {
		b.Errorf("%d packets dropped", d)
	}
}

// TestPacketPathAllocs keeps both packet paths free of allocations.
func TestPacketPathAllocs(t *testing.T) {
	c, _, peer := packetPath(t, Config{})
	pkt := mkRTP(0, 1, 1)
	out := make([]byte, 1500)
	var sm, sm2 seqMap
	var h rtp.Header
	if n := testing.AllocsPerRun(100, func() { pkt[3]++; c.fromSIP(pkt, peer, &sm, &h) }); n != 0 {
		t.Errorf("SIP → WebRTC: %v allocations per packet", n)
	}
	if n := testing.AllocsPerRun(100, func() { pkt[3]++; c.toSIPLeg(pkt, out, &sm2, &h) }); n != 0 {
		t.Errorf("WebRTC → SIP: %v allocations per packet", n)
	}
}
