package main

import (
	"encoding/xml"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"stox.dev/stox/mapping"
)

// The callers' offer is what a browser sends (ICE, DTLS fingerprint,
// rtcp-mux, BUNDLE, PCMU) and survives the trip the harness gives it:
// SDP → mapping.SessionToJingle → session-initiate XML → JingleToSession →
// SDP that another pion peer accepts and answers.
func TestCallerOfferAsSessionInitiate(t *testing.T) {
	api, err := newCallAPI()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle, RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, "audio", "load")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(tr); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	sess, err := mapping.ParseSDP([]byte(pc.LocalDescription().SDP))
	if err != nil {
		t.Fatal(err)
	}
	contents, group := mapping.SessionToJingle(sess, mapping.RoleInitiator, mapping.RoleInitiator)
	j := mapping.Jingle{Action: mapping.ActSessionInitiate, SID: "sid1", Initiator: "caller0@localhost/load", Contents: contents, Group: group}
	raw, err := xml.Marshal(iqOut{Type: "set", ID: "q1", To: "bob@sip.localhost/phone", Jingle: &j})
	if err != nil {
		t.Fatal(err)
	}
	wire := string(raw)
	for _, want := range []string{
		`<iq xmlns="jabber:client" type="set" id="q1" to="bob@sip.localhost/phone">`,
		`action="session-initiate"`,
		`xmlns="urn:xmpp:jingle:apps:rtp:1"`, `media="audio"`,
		`id="0"`, `name="PCMU"`, `clockrate="8000"`,
		`<rtcp-mux`,
		`xmlns="urn:xmpp:jingle:transports:ice-udp:1"`,
		`xmlns="urn:xmpp:jingle:apps:dtls:0"`, `setup="actpass"`,
		`ip="127.0.0.1"`,
		`semantics="BUNDLE"`,
	} {
		if !strings.Contains(wire, want) {
			t.Errorf("session-initiate lacks %s:\n%s", want, wire)
		}
	}
	if strings.Contains(wire, "opus") || strings.Contains(wire, "PCMA") {
		t.Errorf("session-initiate offers more than PCMU:\n%s", wire)
	}

	var in iqIn
	if err := xml.Unmarshal(raw, &in); err != nil {
		t.Fatal(err)
	}
	if in.Jingle == nil || in.Jingle.SID != "sid1" {
		t.Fatalf("decoded %+v", in)
	}
	back, err := mapping.JingleToSession(*in.Jingle)
	if err != nil {
		t.Fatal(err)
	}
	sdp, err := mapping.MarshalSDP(back)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer ans.Close()
	if err := ans.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(sdp)}); err != nil {
		t.Fatalf("pion refuses the offer after the round trip: %v\n%s", err, sdp)
	}
	if _, err := ans.CreateAnswer(nil); err != nil {
		t.Fatal(err)
	}
}

// The echo sends every datagram back to its sender, unchanged.
func TestRTPEcho(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- echo(conn) }()
	defer func() {
		conn.Close()
		<-done
	}()
	c, err := net.DialUDP("udp4", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("\x80\x00ping")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "\x80\x00ping" {
		t.Fatalf("echo %q", got)
	}
}

func TestProcCPUSecs(t *testing.T) {
	// Burn a little CPU so the figure is above zero.
	x := 0
	for i := range 50_000_000 {
		x += i
	}
	_ = x
	if v := procCPUSecs(os.Getpid()); v <= 0 {
		t.Errorf("procCPUSecs(self) = %v, want > 0", v)
	}
	if v := procCPUSecs(-1); v != 0 {
		t.Errorf("procCPUSecs(-1) = %v, want 0", v)
	}
}
