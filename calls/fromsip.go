package calls

import (
	"context"

	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// SIP→XMPP: the INVITE rings every device of the XMPP user with a JMI
// proposal to the bare JID (XEP-0353 §3.1); the first device to proceed
// gets the session-initiate, whose offer is the relay's WebRTC leg with
// the one voice codec the SIP caller prefers among those both have. The
// Jingle answer fixes the call, and only then is the INVITE answered.

// Invite takes an initial INVITE. It never blocks: the call's goroutine
// answers it.
func (s *Service) Invite(inv mapping.Invite) {
	to, err := s.cfg.Domains.XMPPTarget(inv.RequestURI)
	if err != nil {
		_ = s.s.Respond(inv.Key, 404, "Not Found", nil, 0)
		return
	}
	c := s.newCall(mapping.SIPToXMPP)
	c.key, c.sipURI = inv.Key, inv.From
	c.peer, c.peerBare = to.Bare(), to.Bare()
	c.contact = s.contactJID(s.cfg.Domains.XMPPFrom(inv.From))
	c.sid = newID()
	s.bindKey(c, inv.Key)
	c.must(func(c *call) { c.invited(inv) })
	if !s.start(c) {
		s.forget(c)
		_ = s.s.Respond(inv.Key, 503, "Service Unavailable", nil, s.cfg.RetryAfter)
	}
}

// CallEvent takes what the SIP stack reports on a dialog. It never blocks.
func (s *Service) CallEvent(ev mapping.CallEvent) {
	c := s.callByKey(ev.Key)
	if c == nil {
		return
	}
	f := func(c *call) {
		if c.rec.Direction == mapping.XMPPToSIP {
			c.sipEventOut(ev)
		} else {
			c.sipEventIn(ev)
		}
	}
	// A re-INVITE may come again and again; every other event moves the
	// dialog on and comes once.
	queue := c.must
	if ev.Kind == mapping.CallReoffered {
		queue = c.post
	}
	if !queue(f) {
		c.log.Warn("call event dropped: inbox full", zap.Int("kind", int(ev.Kind)))
	}
}

// invited checks the offer and proposes the call to every device.
func (c *call) invited(inv mapping.Invite) {
	respond := func(status int, reason string) {
		c.key = ""
		if err := c.svc.s.Respond(inv.Key, status, reason, nil, 0); err != nil {
			c.log.Info("INVITE answer failed", zap.Error(err))
		}
	}
	offer, err := mapping.ParseSDP(inv.SDP)
	if err != nil || len(inv.SDP) == 0 {
		// RFC 3261 §13.3.1.1 allows an offerless INVITE; stox needs the
		// offer to choose the codec it relays (docs/calls.md).
		respond(488, "Not Acceptable Here")
		c.finish("rejected")
		return
	}
	audio, ok := firstAudio(offer)
	if !ok {
		respond(488, "Not Acceptable Here")
		c.finish("rejected")
		return
	}
	if chk, ok := c.svc.media.(RTPChecker); ok {
		if err := chk.CheckRTP(audio); err != nil {
			c.log.Info("SIP offer refused", zap.Error(err))
			respond(488, "Not Acceptable Here")
			c.finish("rejected")
			return
		}
	}
	c.sipOffer = audio
	c.codecs = pickVoice(mapping.CommonCodecs(audio.Codecs, mapping.SupportedCodecs()), nil)
	if len(c.codecs) == 0 {
		respond(488, "Not Acceptable Here")
		c.finish("rejected")
		return
	}
	if err := c.openMedia(); err != nil {
		c.log.Info("no relay for the call", zap.Error(err))
		c.key = ""
		_ = c.svc.s.Respond(inv.Key, 503, "Service Unavailable", nil, c.svc.cfg.RetryAfter)
		c.finish("failed")
		return
	}
	if !c.svc.x.Up() {
		respond(480, "Temporarily Unavailable")
		c.finish("failed")
		return
	}
	c.svc.bindSID(c, c.sid)
	if err := c.svc.x.SendJMI(mapping.JMI{From: c.contact.Bare(), To: c.peer.Bare(), Kind: "propose", ID: c.sid, Media: []string{"audio"}}); err != nil {
		respond(480, "Temporarily Unavailable")
		c.finish("failed")
		return
	}
	c.state = stProposed
	c.proposing = true
	c.armRing(0)
	c.save()
}

// jmi handles a device's answer to our proposal.
func (c *call) jmi(m mapping.JMI) {
	ctx, cancel := c.reqCtx()
	defer cancel()
	if c.rec.Direction == mapping.XMPPToSIP {
		if m.Kind == "retract" && c.state == stProposed {
			c.finish("cancelled")
		}
		return
	}
	if m.Kind != "ringing" {
		c.proposing = false // a device answered the proposal
	}
	switch m.Kind {
	case "ringing":
		if c.state == stProposed && c.key != "" {
			_ = c.svc.s.Respond(c.key, 180, "Ringing", nil, 0)
		}
	case "proceed":
		if c.state == stProposed {
			c.proceeded(ctx, m.From)
		}
	case "reject":
		if c.state == stProposed {
			reason := m.Reason
			if reason == "" {
				reason = "busy" // XEP-0353 §3.2: reject without a reason is busy
			}
			c.end(ctx, reason, 0, "", outcomeForReason(reason))
		}
	case "error":
		if c.state == stProposed {
			c.log.Info("JMI proposal bounced", zap.String("condition", m.Reason))
			c.end(ctx, "gone", 480, "XMPP user unavailable", "unreachable")
		}
	}
}

// proceeded sends the session-initiate to the device that proceeded.
func (c *call) proceeded(ctx context.Context, device mapping.JID) {
	c.peer = device
	local, err := c.media.OfferWebRTC(c.codecs)
	if err != nil {
		c.log.Info("WebRTC offer failed", zap.Error(err))
		c.end(ctx, "failed-application", 500, "media setup failed", "failed")
		return
	}
	c.flushCandidates()
	j := mapping.Jingle{Action: mapping.ActSessionInitiate, SID: c.sid, Initiator: c.contact.String()}
	j.Contents, j.Group = mapping.SessionToJingle(mapping.Session{Media: []mapping.Media{local}, Bundle: []string{local.Mid}}, mapping.RoleInitiator, mapping.RoleInitiator)
	c.state = stSetup
	c.jingle = true
	if err := c.svc.x.SendJingle(ctx, c.contact, c.peer, j); err != nil {
		c.jingle = false
		status := 480
		if je, ok := err.(*mapping.JingleError); ok {
			status = mapping.StatusForCondition(je.Condition, true, false)
		}
		c.end(ctx, "general-error", status, "session-initiate refused", "failed")
	}
}

// xmppAccepted completes a SIP→XMPP call: the device's answer goes to the
// relay and the INVITE is answered with the relay's RTP leg.
func (c *call) xmppAccepted(iq mapping.JingleIQ) {
	ctx, cancel := c.reqCtx()
	defer cancel()
	if c.state != stSetup || c.rec.Direction != mapping.SIPToXMPP {
		return
	}
	ans, err := mapping.JingleToSession(iq.Jingle)
	audio, ok := firstAudio(ans)
	if err != nil || !ok {
		c.end(ctx, "incompatible-parameters", 488, "unusable session-accept", "failed")
		return
	}
	chosen := pickVoice(mapping.CommonCodecs(audio.Codecs, c.codecs), c.codecs)
	if len(chosen) == 0 {
		c.end(ctx, "incompatible-parameters", 488, "no common codec", "failed")
		return
	}
	if err := c.media.SetWebRTCAnswer(audio); err != nil {
		c.log.Info("WebRTC answer refused", zap.Error(err))
		c.end(ctx, "failed-transport", 488, "media setup failed", "failed")
		return
	}
	c.addCandidates(audio.Candidates)
	sipCodecs := inNumbering(chosen, c.sipOffer.Codecs)
	// One step, so that an SDES offer gets an RTP/SAVP answer with the
	// relay's own key (RFC 4568 §7.1.2).
	local, err := c.media.AnswerRTP(c.sipOffer, sipCodecs)
	if err == nil {
		c.sipLocal = local
	}
	var sdp []byte
	if err == nil {
		sdp, err = c.sdp(local)
	}
	if err != nil {
		c.end(ctx, "failed-application", 500, "media setup failed", "failed")
		return
	}
	c.stopTimer()
	if err := c.svc.s.Respond(c.key, 200, "OK", sdp, 0); err != nil {
		c.log.Info("200 not sent", zap.Error(err))
		c.key = ""
		c.end(ctx, "connectivity-error", 0, "", "failed")
		return
	}
	c.answered(chosen)
}

// sipEventIn handles what the SIP side says on an incoming call's dialog.
func (c *call) sipEventIn(ev mapping.CallEvent) {
	ctx, cancel := c.reqCtx()
	defer cancel()
	switch ev.Kind {
	case mapping.CallCancelled:
		c.key = "" // the stack answered 487
		c.end(ctx, "cancel", 0, "", "cancelled")
	case mapping.CallConfirmed:
		// The ACK: nothing to do, the call is already up.
	default:
		c.sipEventCommon(ctx, ev)
	}
}
