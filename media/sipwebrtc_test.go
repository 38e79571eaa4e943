package media

import (
	"errors"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"stox.dev/stox/mapping"
)

// answeredXMPPLeg sets up the XMPP leg of c with browser b as the client
// that offered, and returns stox's answer.
func answeredXMPPLeg(t *testing.T, c *Call, b *browser) mapping.Media {
	t.Helper()
	if _, err := b.pc.AddTransceiverFromTrack(b.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
		t.Fatal(err)
	}
	o, err := b.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := c.AnswerWebRTC(b.local(t, o), webSet)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: webrtcSDP(ans)}); err != nil {
		t.Fatal(err)
	}
	return ans
}

// relayBetweenBrowsers sends PCMU and DTMF each way between the XMPP
// client x and the WebRTC phone p, both encrypted, and checks what the
// far side got.
func relayBetweenBrowsers(t *testing.T, x, p *browser) {
	t.Helper()
	for _, b := range []*browser{x, p} {
		select {
		case <-b.connected:
		case <-time.After(10 * time.Second):
			t.Fatal("a peer never connected")
		}
		waitFor(t, "track bound", func() bool { return b.track.w.Load() != nil })
	}
	for i := 0; i < 20; i++ {
		x.track.send(t, 0)
		p.track.send(t, 0)
		if i%4 == 0 {
			x.track.send(t, 126)
			p.track.send(t, 126)
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitFor(t, "packets at the phone", func() bool { g, _ := p.counts(); return g[0] >= 15 && g[126] >= 3 })
	waitFor(t, "packets at the client", func() bool { g, _ := x.counts(); return g[0] >= 15 && g[126] >= 3 })
}

// A WebRTC-capable phone calls (docs/media.md "WebRTC-capable phones"):
// its offer has ICE, a fingerprint with actpass and rtcp-mux; stox answers
// ICE-lite with setup=active on a fourth port, and relays SRTP on both legs.
func TestAnswerWebRTCPhone(t *testing.T) {
	e := newEngine(t, Config{})
	c, err := e.Open("phone-webrtc")
	if err != nil {
		t.Fatal(err)
	}
	p := newBrowser(t)
	if _, err := p.pc.AddTransceiverFromTrack(p.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
		t.Fatal(err)
	}
	o, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	offer := p.local(t, o)
	offer.Mid = "" // a SIP phone names no mid
	if err := CheckRTP(offer); err != nil {
		t.Fatalf("CheckRTP of a WebRTC phone's offer: %v", err)
	}
	x := newBrowser(t)
	answeredXMPPLeg(t, c, x)
	local, err := c.AnswerRTP(offer, webSet)
	if err != nil {
		t.Fatal(err)
	}
	if !local.ICELite || local.Fingerprint == nil || local.Fingerprint.Setup != "active" || !local.RTCPMux ||
		local.Profile != "UDP/TLS/RTP/SAVPF" || local.Mid != "" || len(local.Candidates) != 1 {
		t.Fatalf("answer to the phone: %+v", local)
	}
	inRange(t, local.Port)
	if e.InUse() != PortsPerCall+1 {
		t.Errorf("%d ports in use, want %d", e.InUse(), PortsPerCall+1)
	}
	local.Mid = "0"
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: webrtcSDP(local)}); err != nil {
		t.Fatal(err)
	}
	relayBetweenBrowsers(t, x, p)
	// RTP sent to the plain RTP port is not the phone's media any more.
	before := c.Stats().ToWebRTC
	stranger := newPhone(t)
	rtpPort := mapping.Media{Addr: "127.0.0.1", Port: c.ports[0]}
	for i := 0; i < 5; i++ {
		stranger.send(t, rtpPort, 0)
	}
	waitFor(t, "RTP-port packets dropped", func() bool { return c.Stats().ToWebRTC.Dropped >= before.Dropped+5 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if e.InUse() != 0 {
		t.Errorf("%d ports in use after Close", e.InUse())
	}
}

// With Config.OfferWebRTC stox's offer to the phone is ICE (full,
// controlling) and DTLS-SRTP, and the phone's answer completes the leg.
func TestOfferWebRTCPhone(t *testing.T) {
	e := newEngine(t, Config{OfferWebRTC: true})
	c, err := e.Open("offer-webrtc-phone")
	if err != nil {
		t.Fatal(err)
	}
	x := newBrowser(t)
	answeredXMPPLeg(t, c, x)
	off, err := c.LocalRTP(webSet)
	if err != nil {
		t.Fatal(err)
	}
	if off.ICELite || off.Fingerprint == nil || off.Fingerprint.Setup != "actpass" || !off.RTCPMux || off.Profile != "UDP/TLS/RTP/SAVPF" {
		t.Fatalf("offer to the phone: %+v", off)
	}
	p := newBrowser(t)
	off.Mid = "0"
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: webrtcSDP(off)}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.pc.AddTrack(p.track); err != nil {
		t.Fatal(err)
	}
	a, err := p.pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	ans := p.local(t, a)
	ans.Mid = ""
	plain := newPhone(t).media()
	if err := c.SetRemoteRTP(plain); !errors.Is(err, ErrProfile) {
		t.Errorf("an RTP/AVP answer to a WebRTC offer: %v, want ErrProfile", err)
	}
	if err := c.SetRemoteRTP(ans); err != nil {
		t.Fatal(err)
	}
	relayBetweenBrowsers(t, x, p)
}

// What a WebRTC SIP leg cannot be is refused before anyone rings.
func TestWebRTCPhoneProfile(t *testing.T) {
	dtlsOnly := fakeOffer()
	dtlsOnly.ICEUfrag, dtlsOnly.ICEPwd = "", ""
	noMux := fakeOffer()
	noMux.RTCPMux = false
	avp := fakeOffer()
	avp.Profile = "RTP/AVP"
	for name, m := range map[string]mapping.Media{"DTLS without ICE": dtlsOnly, "no rtcp-mux": noMux, "RTP/AVP with a fingerprint": avp} {
		if err := CheckRTP(m); !errors.Is(err, ErrProfile) {
			t.Errorf("%s: CheckRTP = %v, want ErrProfile", name, err)
		}
	}
	if err := CheckRTP(fakeOffer()); err != nil {
		t.Errorf("a WebRTC phone's offer: %v", err)
	}
	// An answer that is not what stox offered (plain RTP) is refused.
	e := newEngine(t, Config{})
	c, err := e.Open("p")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.LocalRTP(sipSet); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRemoteRTP(fakeOffer()); !errors.Is(err, ErrProfile) {
		t.Errorf("a WebRTC answer to an RTP/AVP offer: %v, want ErrProfile", err)
	}
}
