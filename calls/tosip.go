package calls

import (
	"context"

	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// XMPP→SIP: the XMPP user's session-initiate becomes an INVITE whose offer
// is the relay's RTP leg with the codecs both sides have; the SIP answer
// decides the codec, and only then is the Jingle session accepted, with the
// relay's WebRTC leg restricted to that codec (no transcoding).

// initiated handles the session-initiate (the IQ is already acknowledged).
// m is the relay ReceiveJingle opened for it.
func (c *call) initiated(iq mapping.JingleIQ, offer mapping.Session, m MediaCall) {
	c.stopTimer()
	if c.state != stProposed {
		_ = m.Close()
		return // a duplicate session-initiate
	}
	c.media, c.mediaDone = m, m.Done()
	c.peer, c.jingle = iq.From, true
	c.contact = c.svc.contactJID(iq.To)
	ctx, cancel := c.reqCtx()
	defer cancel()

	audio, ok := firstAudio(offer)
	if !ok {
		c.end(ctx, "unsupported-applications", 0, "no audio stream", "rejected")
		return
	}
	c.xOffer = audio
	c.codecs = mapping.CommonCodecs(audio.Codecs, mapping.SupportedCodecs())
	if !hasVoice(c.codecs) {
		c.end(ctx, "incompatible-parameters", 0, "no common codec", "rejected")
		return
	}
	to, err := c.svc.cfg.Domains.SIPTarget(iq.To.Bare())
	if err != nil {
		c.end(ctx, "gone", 0, err.Error(), "rejected")
		return
	}
	c.sipURI = to
	target, f := c.svc.target(to)
	if f != nil {
		c.end(ctx, reasonForFailure(f), 0, f.Text, "unreachable")
		return
	}
	local, err := c.media.LocalRTP(c.codecs)
	if err != nil {
		c.end(ctx, "failed-application", 0, "no media port", "failed")
		return
	}
	c.sipLocal = local
	sdp, err := c.sdp(local)
	if err != nil {
		c.end(ctx, "failed-application", 0, err.Error(), "failed")
		return
	}
	// The call is indexed under its dialog's key before the INVITE leaves,
	// so no event of the dialog can come first.
	key := mapping.CallKey("x-" + c.rec.ID)
	c.svc.bindKey(c, key)
	if _, err := c.svc.s.Dial(ctx, mapping.Dial{
		From: c.svc.cfg.Domains.SIPFrom(c.peer.Bare()), To: to, Target: target, SDP: sdp, Key: key,
	}); err != nil {
		c.log.Info("INVITE not sent", zap.Error(err))
		c.end(ctx, "connectivity-error", 0, "call could not be placed", "failed")
		return
	}
	c.key = key
	c.state = stSetup
	c.armRing(0)
	c.save()
}

// sipEventOut handles what the SIP side says about our INVITE.
func (c *call) sipEventOut(ev mapping.CallEvent) {
	ctx, cancel := c.reqCtx()
	defer cancel()
	switch ev.Kind {
	case mapping.CallProgress:
		if c.state == stSetup && (ev.Status == 180 || ev.Status == 183) {
			// XEP-0167 §7: ringing maps to 180; early media (183) is not
			// relayed before the answer, so it is ringing too.
			j := mapping.Jingle{Action: mapping.ActSessionInfo, SID: c.sid, Info: []mapping.JingleInfo{ringing()}}
			// Not waited for: the 200 that often follows at once must not
			// wait for the client's answer to this (XEP-0167 §7).
			if err := c.svc.x.PostJingle(c.contact, c.peer, j); err != nil {
				c.log.Debug("ringing not delivered", zap.Error(err))
			}
		}
	case mapping.CallAnswered:
		c.sipAnswered(ev)
	case mapping.CallFailed:
		c.key = "" // the INVITE transaction is over: nothing to hang up
		reason := mapping.JingleReasonForStatus(ev.Status)
		c.end(ctx, reason, 0, ev.Reason, outcomeForStatus(ev.Status))
	default:
		c.sipEventCommon(ctx, ev)
	}
}

// sipAnswered completes an XMPP→SIP call: the SIP answer fixes the codec,
// and the Jingle session is accepted with the relay's WebRTC leg.
func (c *call) sipAnswered(ev mapping.CallEvent) {
	ctx, cancel := c.reqCtx()
	defer cancel()
	if c.state != stSetup {
		return
	}
	c.stopTimer()
	ans, err := mapping.ParseSDP(ev.SDP)
	var audio mapping.Media
	if err == nil {
		var ok bool
		if audio, ok = firstAudio(ans); !ok {
			err = errNoAudio
		}
	}
	if err != nil {
		c.end(ctx, "incompatible-parameters", 0, "unusable SDP answer", "failed")
		return
	}
	// The answer's codecs, in our offer's numbering (RFC 3264 §6.1 lets
	// the answerer renumber dynamic payload types).
	chosen := pickVoice(mapping.CommonCodecs(audio.Codecs, c.codecs), c.codecs)
	if len(chosen) == 0 {
		c.end(ctx, "incompatible-parameters", 0, "no common codec in the answer", "failed")
		return
	}
	if err := c.media.SetRemoteRTP(audio); err != nil {
		c.end(ctx, "failed-application", 0, err.Error(), "failed")
		return
	}
	local, err := c.media.AnswerWebRTC(c.xOffer, inNumbering(chosen, c.xOffer.Codecs))
	if err != nil {
		c.log.Info("WebRTC answer failed", zap.Error(err))
		c.end(ctx, "failed-transport", 0, "media setup failed", "failed")
		return
	}
	c.flushCandidates()
	j := mapping.Jingle{Action: mapping.ActSessionAccept, SID: c.sid, Responder: c.contact.String()}
	j.Contents, j.Group = mapping.SessionToJingle(mapping.Session{Media: []mapping.Media{local}, Bundle: bundleOf(c.xOffer, local)}, mapping.RoleInitiator, mapping.RoleResponder)
	if err := c.svc.x.SendJingle(ctx, c.contact, c.peer, j); err != nil {
		c.log.Info("session-accept refused", zap.Error(err))
		c.jingle = false
		c.end(ctx, "failed-application", 0, "XMPP side refused the answer", "failed")
		return
	}
	c.answered(chosen)
}

// xmppTerminated handles the XMPP side's session-terminate (XEP-0166 §6.7).
func (c *call) xmppTerminated(j mapping.Jingle) {
	ctx, cancel := c.reqCtx()
	defer cancel()
	c.jingle = false
	reason := "success"
	if n := j.Reason.Name(); n != "" {
		reason = n
	}
	outcome := "answered"
	switch {
	case c.state == stActive:
	case c.rec.Direction == mapping.XMPPToSIP:
		outcome = "cancelled"
	default:
		outcome = outcomeForReason(reason)
	}
	c.end(ctx, reason, 0, "", outcome)
}

// xmppInfo handles session-info: hold and unhold become a re-INVITE
// (RFC 6337 §5.3); ringing, mute and pings need nothing on the SIP side.
func (c *call) xmppInfo(j mapping.Jingle) {
	if c.state != stActive || c.key == "" {
		return
	}
	for _, in := range j.Info {
		if in.XMLName.Space != mapping.NSJingleInfo {
			continue
		}
		switch in.XMLName.Local {
		case "hold":
			c.reinvite(mapping.SendOnly)
		case "unhold", "active":
			c.reinvite(mapping.SendRecv)
		}
	}
}

// reinvite offers the SIP side the current RTP leg with direction d.
func (c *call) reinvite(d mapping.Direction) {
	ctx, cancel := c.reqCtx()
	defer cancel()
	local := c.sipLocal
	local.Direction = d
	sdp, err := c.sdp(local)
	if err != nil {
		return
	}
	if _, err := c.svc.s.Reinvite(ctx, c.key, sdp); err != nil {
		c.log.Info("hold re-INVITE failed", zap.Error(err))
	}
}

// sipEventCommon handles the events both directions share.
func (c *call) sipEventCommon(ctx context.Context, ev mapping.CallEvent) {
	switch ev.Kind {
	case mapping.CallHungUp:
		c.key = ""
		reason := "success"
		if c.state != stActive {
			reason = "cancel"
		} else if ev.Status > 0 {
			// The BYE's RFC 3326 Reason (a Q.850 cause) says why.
			if r := mapping.JingleReasonForQ850(ev.Status); r != "" {
				reason = r
			}
		}
		c.end(ctx, reason, 0, "", outcomeOr(c, "answered", "cancelled"))
	case mapping.CallLost:
		c.key = ""
		c.end(ctx, "connectivity-error", 0, "SIP dialog lost", "failed")
	case mapping.CallReoffered:
		c.sipReoffered(ev)
	}
}

// sipReoffered tells the XMPP side of a hold or unhold from the SIP side;
// the stack has answered the re-INVITE itself. A phone may re-INVITE as
// soon as it sent its 200, before the Jingle session is accepted: its
// direction is then kept and told once the call is up (answered).
func (c *call) sipReoffered(ev mapping.CallEvent) {
	if c.state == stEnded || !c.jingle && c.state == stActive {
		return
	}
	s, err := mapping.ParseSDP(ev.SDP)
	if err != nil {
		return
	}
	audio, ok := firstAudio(s)
	if !ok {
		return
	}
	info := "active"
	if audio.Direction == mapping.SendOnly || audio.Direction == mapping.Inactive {
		info = "hold"
	}
	if c.state != stActive {
		c.earlyInfo = info
		return
	}
	c.sendInfo(info)
}

// sendInfo tells the XMPP side hold or active (XEP-0167 §7).
func (c *call) sendInfo(info string) {
	j := mapping.Jingle{Action: mapping.ActSessionInfo, SID: c.sid, Info: []mapping.JingleInfo{rtpInfo(info)}}
	if err := c.svc.x.PostJingle(c.contact, c.peer, j); err != nil {
		c.log.Debug("hold not delivered", zap.Error(err))
	}
}

func outcomeOr(c *call, active, before string) string {
	if c.state == stActive {
		return active
	}
	return before
}
