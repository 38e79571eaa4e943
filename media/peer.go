package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"stox.dev/stox/mapping"
)

// pcLeg is a leg that speaks ICE and DTLS-SRTP (RFC 8827): always the leg
// toward XMPP, and the SIP leg when the phone is WebRTC-capable
// (docs/media.md). pion's PeerConnection runs it over one UDP port.
type pcLeg struct {
	conn *net.UDPConn // handed to pion's UDP mux
	port int
	lite bool   // ICE-lite (stox answered); full ICE when stox offered
	mid  string // the stream's mid as pion knows it

	// Guarded by Call.mu.
	pc  *webrtc.PeerConnection
	mux ice.UDPMux

	out    atomic.Pointer[binding] // stox's sending track, once pion bound it
	dtlsUp atomic.Bool             // the DTLS handshake completed once
}

// close ends pion's side of the leg and its socket.
func (l *pcLeg) close() {
	if l.pc != nil {
		_ = l.pc.Close()
	}
	if l.mux != nil {
		_ = l.mux.Close()
	}
	_ = l.conn.Close()
}

// newPCLocked builds the PeerConnection of leg l: ICE (lite when lite) on
// the leg's one UDP port (a UDP mux over it), the advertised address in the
// host candidate, no mDNS, only the given codecs, RTCP reports from pion.
// read relays each remote track pion opens.
func (c *Call) newPCLocked(l *pcLeg, codecs []mapping.Codec, lite bool, read func(*webrtc.TrackRemote)) (*webrtc.PeerConnection, error) {
	if c.stopping {
		return nil, ErrClosed
	}
	if l.pc != nil {
		return nil, errors.New("the leg is already negotiated")
	}
	me := &webrtc.MediaEngine{}
	for _, cd := range codecs {
		if cd.PT >= 128 || cd.Name == "" || cd.Clock == 0 {
			return nil, fmt.Errorf("%w: codec %d %q", ErrProfile, cd.PT, cd.Name)
		}
		fb := make([]webrtc.RTCPFeedback, 0, len(cd.FB))
		for _, f := range cd.FB {
			fb = append(fb, webrtc.RTCPFeedback{Type: f.Type, Parameter: f.Subtype})
		}
		p := webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/" + cd.Name, ClockRate: cd.Clock,
				Channels: cd.Channels, SDPFmtpLine: cd.Fmtp, RTCPFeedback: fb},
			PayloadType: webrtc.PayloadType(cd.PT),
		}
		if err := me.RegisterCodec(p, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, fmt.Errorf("%w: codec %s: %w", ErrProfile, cd.Name, err)
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	l.lite = lite
	se := webrtc.SettingEngine{LoggerFactory: pionLogs{c.log}}
	se.SetLite(lite)
	if d := c.e.iceFailed; d > 0 {
		se.SetICETimeouts(d/2, d, d/4)
	}
	nt := webrtc.NetworkTypeUDP4
	if c.e.listen.Is6() {
		nt = webrtc.NetworkTypeUDP6
	}
	se.SetNetworkTypes([]webrtc.NetworkType{nt})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	// Only the Listen address is used: pion must not enumerate other
	// interfaces (nor announce them).
	listen := c.e.listen
	se.SetIPFilter(func(ip net.IP) bool {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return false
		}
		a = a.Unmap()
		if listen.IsUnspecified() {
			return a.Is4() == listen.Is4()
		}
		return a == listen
	})
	if c.e.adv != c.e.listen {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{External: []string{c.e.adv.String()},
			AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace}); err != nil {
			return nil, err
		}
	}
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleClient); err != nil { // setup=active (RFC 5763 §5)
		return nil, err
	}
	l.mux = webrtc.NewICEUDPMux(pionLogs{c.log}.NewLogger("mux"), l.conn)
	se.SetICEUDPMux(l.mux)
	se.SetNet(c.e.net)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir))
	pc, err := api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{c.e.cert}})
	if err != nil {
		return nil, err
	}
	l.pc = pc
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if s == webrtc.ICEConnectionStateFailed {
			c.fail(ErrICEFailed)
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateFailed:
			if pc.ICEConnectionState() == webrtc.ICEConnectionStateFailed {
				c.fail(ErrICEFailed)
			} else {
				c.fail(ErrDTLSFailed)
			}
		case webrtc.PeerConnectionStateClosed:
			// pion closes the connection when the peer's DTLS close_notify
			// or a fatal alert arrives (RFC 5246 §7.2); when stox closed
			// it, the call has already failed with its own reason.
			if l.dtlsUp.Load() {
				c.fail(fmt.Errorf("%w: the peer closed DTLS", ErrDTLSFailed))
			} else {
				c.fail(fmt.Errorf("%w: handshake failed (fingerprint mismatch or alert)", ErrDTLSFailed))
			}
		}
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.stopping {
			return
		}
		c.wg.Add(1)
		go read(t)
	})
	return pc, nil
}

// answerPCLocked answers offer on leg l: its remote description, stox's
// sending track, the answer. The answer names the offer's mid, "" when the
// offer had none (a SIP phone).
func (c *Call) answerPCLocked(l *pcLeg, offer mapping.Media) (mapping.Media, error) {
	mid := offer.Mid
	if offer.Mid == "" {
		offer.Mid = "0"
	}
	l.mid = offer.Mid
	if err := l.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: webrtcSDP(offer)}); err != nil {
		return mapping.Media{}, fmt.Errorf("%w: %w", ErrProfile, err)
	}
	sender, err := l.pc.AddTrack(&outTrack{l: l})
	if err != nil {
		return mapping.Media{}, err
	}
	c.watchSenderLocked(l, sender)
	ans, err := l.pc.CreateAnswer(nil)
	if err != nil {
		return mapping.Media{}, fmt.Errorf("%w: %w", ErrProfile, err)
	}
	local, err := c.setLocalLocked(l, ans)
	if err != nil {
		return mapping.Media{}, err
	}
	local.Mid = mid
	return local, nil
}

// offerPCLocked makes stox's offer on leg l, whose PeerConnection is a full
// ICE agent: controlling as the offerer (RFC 8445 §6.1.1).
func (c *Call) offerPCLocked(l *pcLeg) (mapping.Media, error) {
	tr, err := l.pc.AddTransceiverFromTrack(&outTrack{l: l}, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		return mapping.Media{}, err
	}
	c.watchSenderLocked(l, tr.Sender())
	off, err := l.pc.CreateOffer(nil)
	if err != nil {
		return mapping.Media{}, err
	}
	local, err := c.setLocalLocked(l, off)
	if err != nil {
		return mapping.Media{}, err
	}
	l.mid = local.Mid
	return local, nil
}

// setAnswerPCLocked takes the peer's answer to offerPCLocked.
func setAnswerPCLocked(l *pcLeg, answer mapping.Media) error {
	answer.Mid = l.mid // the one stream; a renamed content (or no mid) is still it
	if answer.Fingerprint.Setup == "" || answer.Fingerprint.Setup == "actpass" {
		answer.Fingerprint.Setup = "active" // RFC 5763 §5: the answerer must not say actpass
	}
	if err := l.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: webrtcSDP(answer)}); err != nil {
		return fmt.Errorf("%w: %w", ErrProfile, err)
	}
	return nil
}

// setLocalLocked applies the local description of leg l and returns it
// once the host candidate is in it (gathering on a UDP mux is immediate).
func (c *Call) setLocalLocked(l *pcLeg, d webrtc.SessionDescription) (mapping.Media, error) {
	pc := l.pc
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		return mapping.Media{}, err
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		return mapping.Media{}, errors.New("ICE gathering did not complete")
	case <-c.stop:
		return mapping.Media{}, ErrClosed
	}
	m, err := parseWebRTC(pc.LocalDescription().SDP)
	if err != nil {
		return mapping.Media{}, err
	}
	m.ICELite = l.lite
	// One host candidate on the advertised address is all stox announces
	// (ICE-lite, RFC 8445 §2.5): pion also writes the component-2 copy
	// that rtcp-mux makes useless, and with Listen unspecified it finds
	// the machine's other addresses.
	adv := c.e.adv.String()
	var keep []mapping.Candidate
	for _, cd := range m.Candidates {
		if cd.Component == 1 && cd.IP == adv && cd.Port == l.port && len(keep) == 0 {
			cd.ID = "stox1"
			keep = append(keep, cd)
		}
	}
	if len(keep) == 0 {
		return mapping.Media{}, fmt.Errorf("pion announced no host candidate on %s:%d", adv, l.port)
	}
	m.Candidates = keep
	m.Addr, m.Port = adv, l.port
	m.EndOfCandidates = true // the host candidate is all there is
	return m, nil
}

// watchSenderLocked follows the DTLS transport of stox's sender on leg l,
// and reads the RTCP pion hands the sender so that its interceptors run;
// stox terminates RTCP and uses none of it.
func (c *Call) watchSenderLocked(l *pcLeg, s *webrtc.RTPSender) {
	s.Transport().OnStateChange(func(st webrtc.DTLSTransportState) {
		switch st {
		case webrtc.DTLSTransportStateConnected:
			l.dtlsUp.Store(true)
		case webrtc.DTLSTransportStateFailed:
			// A fingerprint that does not match the certificate (RFC 8122
			// §5) fails the handshake.
			c.fail(fmt.Errorf("%w: handshake failed", ErrDTLSFailed))
		}
	})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := s.Read(buf); err != nil {
				return
			}
		}
	}()
}

// addCandidateLocked hands pion a trickled candidate of leg l's peer.
func addCandidateLocked(l *pcLeg, cand mapping.Candidate) error {
	attr, _ := candidateAttr(cand)
	mid := l.mid
	if err := l.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: attr, SDPMid: &mid}); err != nil {
		return fmt.Errorf("remote candidate %s:%d: %w", cand.IP, cand.Port, err)
	}
	return nil
}

// outTrack is stox's sending track on a leg. Bind hands its writer to the
// other leg's reader, which writes each packet with the mapped PT.
type outTrack struct{ l *pcLeg }

func (t *outTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	cps := ctx.CodecParameters()
	if len(cps) == 0 {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	pick := cps[0]
	for _, cp := range cps {
		if !strings.EqualFold(cp.MimeType, "audio/telephone-event") {
			pick = cp
			break
		}
	}
	t.l.out.Store(&binding{w: ctx.WriteStream(), ssrc: uint32(ctx.SSRC())})
	return pick, nil
}

func (t *outTrack) Unbind(webrtc.TrackLocalContext) error {
	t.l.out.Store(nil)
	return nil
}

func (t *outTrack) ID() string                { return "audio" }
func (t *outTrack) RID() string               { return "" }
func (t *outTrack) StreamID() string          { return "stox" }
func (t *outTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }
