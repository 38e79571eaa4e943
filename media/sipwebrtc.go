package media

import (
	"errors"
	"fmt"
	"strings"

	"stox.dev/stox/mapping"
)

// A WebRTC-capable SIP phone (baresip with medianat=ice and
// mediaenc=dtls_srtp, a browser behind a SIP-over-WebSocket proxy) offers
// UDP/TLS/RTP/SAVPF with ICE credentials, a DTLS fingerprint and rtcp-mux.
// stox then runs the SIP leg as it runs the XMPP leg: a pion PeerConnection
// on a port of its own (docs/media.md "WebRTC-capable phones"), and the
// relay decrypts on one leg and encrypts on the other.

// isWebRTC reports whether a SIP-side description asks for ICE or
// DTLS-SRTP rather than RTP or SDES-SRTP.
func isWebRTC(m mapping.Media) bool {
	return m.Fingerprint != nil || m.ICEUfrag != "" || strings.Contains(m.Profile, "TLS")
}

// checkSIPWebRTC refuses a WebRTC SIP description pion could not run:
// besides what checkWebRTC refuses, DTLS without ICE (a PeerConnection
// needs ICE; RFC 5763 §5 alone is not enough) and RTCP on its own port
// (one ICE component is all stox gathers; RFC 8843 §9 needs rtcp-mux).
func checkSIPWebRTC(m mapping.Media) error {
	if !strings.HasPrefix(m.Profile, "UDP/TLS/RTP/SAVP") {
		return fmt.Errorf("%w: profile %q with ICE or a fingerprint (stox takes UDP/TLS/RTP/SAVP(F))", ErrProfile, m.Profile)
	}
	if err := checkWebRTC(m); err != nil {
		return err
	}
	if !m.RTCPMux {
		return fmt.Errorf("%w: ICE and DTLS-SRTP on the SIP leg need rtcp-mux (RFC 5761)", ErrProfile)
	}
	return nil
}

// answerSIPWebRTCLocked answers a WebRTC SIP offer: ICE-lite with one host
// candidate on a fourth port, setup=active, the given codecs with the
// offer's PTs. It is AnswerRTP for such an offer.
func (c *Call) answerSIPWebRTCLocked(offer mapping.Media, codecs []mapping.Codec) (mapping.Media, error) {
	if c.stopping {
		return mapping.Media{}, ErrClosed
	}
	if c.sl.Load() != nil || c.sipReady {
		// Re-offers in the dialog are answered by the SIP stack with the
		// description stox gave; the leg is negotiated once.
		return mapping.Media{}, fmt.Errorf("%w: the SIP leg is already negotiated", ErrProfile)
	}
	l, err := c.openSIPPCLocked(codecs, true)
	if err != nil {
		return mapping.Media{}, err
	}
	local, err := c.answerPCLocked(l, offer) // names the offer's mid, "" for a phone
	if err != nil {
		return mapping.Media{}, err
	}
	c.sipLocal = local.Codecs // the phone sends with the PTs of its offer
	c.sipPeer = append([]mapping.Codec(nil), offer.Codecs...)
	c.sipDescribed = true
	c.sipProfile = offer.Profile
	c.sipReadyLocked(offer)
	return local, nil
}

// offerSIPWebRTCLocked makes stox's WebRTC offer to the phone
// (Config.OfferWebRTC): full ICE, controlling (RFC 8445 §6.1.1),
// setup=actpass, rtcp-mux. It is LocalRTP in that mode.
func (c *Call) offerSIPWebRTCLocked(codecs []mapping.Codec) (mapping.Media, error) {
	if c.sl.Load() != nil {
		return mapping.Media{}, errors.New("the WebRTC SIP leg is already offered")
	}
	l, err := c.openSIPPCLocked(codecs, false)
	if err != nil {
		return mapping.Media{}, err
	}
	local, err := c.offerPCLocked(l)
	if err != nil {
		return mapping.Media{}, err
	}
	local.Mid = ""
	c.sipLocal = append([]mapping.Codec(nil), codecs...)
	c.sipDescribed = true
	c.sipOffered = true
	c.updateMapsLocked()
	return local, nil
}

// setSIPWebRTCAnswerLocked takes the phone's answer to offerSIPWebRTCLocked.
func (c *Call) setSIPWebRTCAnswerLocked(answer mapping.Media) error {
	l := c.sl.Load()
	if l == nil {
		return fmt.Errorf("%w: %s remote, but stox offered %s (RFC 3264 §6.1)", ErrProfile, answer.Profile, c.sipProfileLocked())
	}
	if !c.sipOffered {
		// A later answer (a re-INVITE stox sent for hold): the transport
		// stays; only the direction counts.
		c.sipReadyLocked(answer)
		return nil
	}
	if err := setAnswerPCLocked(l, answer); err != nil {
		return err
	}
	c.sipOffered = false
	c.sipPeer = append([]mapping.Codec(nil), answer.Codecs...)
	c.sipReadyLocked(answer)
	return nil
}

func (c *Call) sipProfileLocked() string {
	if c.sipProfile != "" {
		return c.sipProfile
	}
	return "RTP/AVP"
}

// openSIPPCLocked binds the WebRTC SIP leg's port and builds its
// PeerConnection. The leg is published at once so that Close ends it
// whatever happens next.
func (c *Call) openSIPPCLocked(codecs []mapping.Codec, lite bool) (*pcLeg, error) {
	conn, err := c.e.openExtra()
	if err != nil {
		return nil, err
	}
	l := &pcLeg{conn: conn, port: c.e.port(conn)}
	c.sl.Store(l)
	if _, err := c.newPCLocked(l, codecs, lite, c.readSIPTrack); err != nil {
		return nil, err
	}
	c.sipProfile = "UDP/TLS/RTP/SAVPF"
	return l, nil
}

// sipReadyLocked marks the SIP leg as set up with remote's direction.
func (c *Call) sipReadyLocked(remote mapping.Media) {
	c.sdes.Store(nil)
	c.remote.Store(&sipRemote{send: remote.Direction != mapping.SendOnly && remote.Direction != mapping.Inactive})
	c.sipReady = true
	c.updateMapsLocked()
	c.armLocked()
}
