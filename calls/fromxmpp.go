package calls

import (
	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// ReceiveJingle takes a Jingle IQ set addressed to a SIP contact. It never
// blocks: it checks what can be checked at once (XEP-0166 §6.3: the IQ is
// acknowledged before the session is answered) and queues the rest on the
// call's goroutine.
func (s *Service) ReceiveJingle(iq mapping.JingleIQ) *mapping.JingleError {
	j := iq.Jingle
	if j.Action == mapping.ActSessionInitiate {
		return s.initiateFromXMPP(iq)
	}
	c := s.callBySID(iq.From, j.SID)
	if c == nil || !samePeer(c, iq.From) {
		return &mapping.JingleError{Condition: mapping.ItemNotFound, Jingle: "unknown-session"}
	}
	var f func(*call)
	switch j.Action {
	case mapping.ActSessionAccept:
		f = func(c *call) { c.xmppAccepted(iq) }
	case mapping.ActTransportInfo:
		cc, err := mapping.CandidatesFromTransportInfo(j)
		if err != nil {
			return &mapping.JingleError{Condition: mapping.BadRequest, Text: err.Error()}
		}
		var cands []mapping.Candidate
		for _, c := range cc {
			cands = append(cands, c.Candidates...)
		}
		f = func(c *call) { c.addCandidates(cands) }
	case mapping.ActSessionTerminate:
		f = func(c *call) { c.xmppTerminated(j) }
	case mapping.ActSessionInfo:
		f = func(c *call) { c.xmppInfo(j) }
	default:
		// content-add, transport-replace, …: stox's calls are one audio
		// stream (docs/calls.md); XEP-0166 §6.6 lets the peer know.
		return &mapping.JingleError{Condition: mapping.FeatureNotImplemented, Text: j.Action + " is not supported"}
	}
	queue := c.post
	if j.Action == mapping.ActSessionTerminate || j.Action == mapping.ActSessionAccept {
		queue = c.must // the user hung up or answered: never lost to a flood
	}
	if !queue(f) {
		return &mapping.JingleError{Condition: mapping.ResourceConstraint}
	}
	return nil
}

// samePeer reports whether from may act on c's session: the device the
// session is with, or, while only a proposal exists, any resource of the
// proposed-to account.
func samePeer(c *call, from mapping.JID) bool {
	// c.peer is written by the call's goroutine once (when the device is
	// known) before the session index holds it with a full JID; reading
	// the bare part is stable.
	return c.peerBare == from.Bare()
}

// initiateFromXMPP starts an XMPP→SIP call, or continues one proposed with
// JMI (XEP-0353 §3.3: the session-initiate reuses the proposal's id).
func (s *Service) initiateFromXMPP(iq mapping.JingleIQ) *mapping.JingleError {
	j := iq.Jingle
	offer, err := mapping.JingleToSession(j)
	if err != nil {
		return &mapping.JingleError{Condition: mapping.BadRequest, Text: err.Error()}
	}
	existing := s.callBySID(iq.From, j.SID)
	if existing != nil && !samePeer(existing, iq.From) {
		return &mapping.JingleError{Condition: mapping.Conflict, Text: "session id in use"}
	}
	c := existing
	if c == nil {
		c = s.newCall(mapping.XMPPToSIP)
		c.sid, c.peer, c.peerBare = j.SID, iq.From, iq.From.Bare()
		c.contact = s.contactJID(iq.To)
	}
	// The relay is opened here, before the IQ is answered, so a full relay
	// is the IQ's resource-constraint (XEP-0166 §6.3.2) rather than a
	// session-terminate after the client was told yes. Open only binds
	// ports; it does not block.
	m, err := s.media.Open(c.rec.ID)
	if err != nil {
		s.log.Info("no relay for a call", zap.Error(err))
		if isCapacity(err) {
			return &mapping.JingleError{Condition: mapping.ResourceConstraint, Text: "too many calls"}
		}
		return &mapping.JingleError{Condition: mapping.InternalServerError, Text: "no media relay"}
	}
	if !c.must(func(c *call) { c.initiated(iq, offer, m) }) {
		_ = m.Close()
		return &mapping.JingleError{Condition: mapping.ResourceConstraint}
	}
	if existing == nil && !s.start(c) {
		_ = m.Close()
		return &mapping.JingleError{Condition: mapping.ServiceUnavailable, Text: "gateway starting"}
	}
	return nil
}

// ReceiveJMI takes a XEP-0353 message. It never blocks.
func (s *Service) ReceiveJMI(m mapping.JMI) {
	if m.Kind == "propose" {
		s.proposedFromXMPP(m)
		return
	}
	c := s.callBySID(m.From, m.ID)
	if c == nil || c.peerBare != m.From.Bare() {
		s.log.Debug("JMI for no call", zap.String("kind", m.Kind), zap.String("id", m.ID))
		return
	}
	queue := c.post
	if m.Kind == "retract" {
		queue = c.must // the caller gave up: every device must stop ringing
	}
	queue(func(c *call) { c.jmi(m) })
}

// proposedFromXMPP answers a call proposal to a SIP contact (XEP-0353
// §3.1): stox proceeds at once from the contact's full JID, as a phone that
// rings only once the INVITE reaches it; the client then sends its
// session-initiate there.
func (s *Service) proposedFromXMPP(m mapping.JMI) {
	if c := s.callBySID(m.From, m.ID); c != nil {
		return // a duplicate (carbons, resend)
	}
	contact := s.contactJID(m.To)
	if !hasAudio(m.Media) {
		_ = s.x.SendJMI(mapping.JMI{From: contact.Bare(), To: m.From, Kind: "reject", ID: m.ID, Reason: "unsupported-applications"})
		return
	}
	if _, err := s.cfg.Domains.SIPTarget(m.To.Bare()); err != nil {
		_ = s.x.SendJMI(mapping.JMI{From: contact.Bare(), To: m.From, Kind: "reject", ID: m.ID, Reason: "gone"})
		return
	}
	c := s.newCall(mapping.XMPPToSIP)
	c.sid, c.peer, c.peerBare, c.contact = m.ID, m.From, m.From.Bare(), contact
	c.must(func(c *call) {
		c.arm(s.cfg.ProposeTimeout, func(c *call) { c.finish("no-session") })
		if err := s.x.SendJMI(mapping.JMI{From: contact, To: m.From, Kind: "proceed", ID: m.ID}); err != nil {
			c.log.Info("JMI proceed not sent", zap.Error(err))
			c.finish("failed")
		}
	})
	if !s.start(c) {
		_ = s.x.SendJMI(mapping.JMI{From: contact.Bare(), To: m.From, Kind: "reject", ID: m.ID, Reason: "connectivity-error"})
	}
}

// contactJID is the SIP contact's JID, with the contact resource.
func (s *Service) contactJID(to mapping.JID) mapping.JID {
	j := to.Bare()
	j.Resource = s.cfg.ContactResource
	return j
}

func hasAudio(media []string) bool {
	for _, m := range media {
		if m == "audio" {
			return true
		}
	}
	return len(media) == 0
}
