package sip

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// Dial sends an INVITE with d.SDP to d.Target (a registered binding or the
// trunk, like SendMessage) and returns at once with the call's key; 1xx,
// 2xx and the final outcome come as CallEvents. An INVITE unanswered after
// CallRingTimeout is CANCELled and reported CallFailed 408.
func (s *Stack) Dial(ctx context.Context, d mapping.Dial) (mapping.CallKey, error) {
	t := d.Target
	if err := checkHeaders(
		field{"From display name", d.FromDisplay},
		field{"From", d.From.User + d.From.Host + d.From.GR}, field{"To", d.To.User + d.To.Host + d.To.GR},
		field{"Request-URI", t.URI.User + t.URI.Host + t.URI.GR}, field{"Destination", t.Destination},
	); err != nil {
		return "", err
	}
	if t.URI.Host == "" || d.From.Host == "" || d.To.Host == "" {
		return "", badRequest("missing host")
	}
	ruri, err1 := fromURI(t.URI)
	furi, err2 := fromURI(d.From)
	turi, err3 := fromURI(d.To)
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", badRequest("bad URI: " + err.Error())
	}
	from := &sip.FromHeader{Address: furi, Params: sip.NewParams()}
	if d.FromDisplay != "" {
		from.DisplayName = escapeDisplay(d.FromDisplay)
	}
	localTag := sip.GenerateTagN(16)
	from.Params.Add("tag", localTag)
	to := &sip.ToHeader{Address: turi, Params: sip.NewParams()}
	cid := newCallID()
	req, h, err := s.newRequest(uacRequest{method: sip.INVITE, ruri: ruri, from: from, to: to,
		callID: cid, cseq: 1, destination: t.Destination})
	if err != nil {
		return "", err
	}
	req.AppendHeader(s.allowHeader())
	setBody(req, "application/sdp", d.SDP)
	key := d.Key
	if key == "" {
		key = newCallKey("out-")
	}
	c := &call{
		key: key, state: stEarly,
		d: mapping.Dialog{CallID: cid, LocalTag: localTag, LocalURI: furi.String(), RemoteURI: turi.String(),
			LocalCSeq: 1, Destination: t.Destination},
		localSD: d.SDP, invite: req, inviteHop: h, cancelSent: make(chan struct{}),
	}
	rctx := s.context()
	if rctx == nil {
		return "", ErrNotRunning
	}
	// Indexed before the INVITE leaves, so a response or Hangup finds it.
	if !s.putCall(c) {
		return "", fmt.Errorf("invite %s: call key %s in use", ruri.String(), key)
	}
	s.setHop(req, h)
	log := s.flow(zap.String("call_id", cid), zap.Stringer("from", &from.Address), zap.Stringer("to", &to.Address))
	log.Debug("invite out", zap.String("key", string(c.key)), zap.String("dest", h.dest))
	ctx = context.WithoutCancel(ctx) // the transaction outlives Dial's caller
	tx, err := s.client.TransactionRequest(ctx, req, noBuild)
	if err != nil {
		s.callMu.Lock()
		s.endLocked(c)
		s.callMu.Unlock()
		s.met.invite("out", "error")
		return "", fmt.Errorf("invite %s: %w", ruri.String(), err)
	}
	c.ctx = tx // read by runOutbound only
	s.goCall(func() { s.runOutbound(rctx, c, log) })
	return c.key, nil
}

// runOutbound follows our INVITE transaction to its end: progress, the
// 2xx (ACK sent by us, RFC 3261 §13.2.2.4, also for its retransmissions
// while the transaction is Accepted, RFC 6026 §7.2), a final error (ACKed
// by the transaction) or its timeout; and the ring timeout.
func (s *Stack) runOutbound(ctx context.Context, c *call, log flowLog) {
	tx := c.ctx
	defer tx.Terminate()
	ring := time.NewTimer(s.cfg.CallRingTimeout)
	defer ring.Stop()
	// RFC 3261 §9.1: a CANCELled INVITE without a final response after
	// 64·T1 is given up.
	var guard <-chan time.Time
	cancelSent := c.cancelSent
	answered, timedOut := false, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-cancelSent:
			cancelSent = nil
			g := time.NewTimer(64 * s.cfg.CallT1)
			defer g.Stop()
			guard = g.C
		case <-guard:
			if answered {
				return
			}
			s.callMu.Lock()
			s.endLocked(c)
			s.callMu.Unlock()
			s.met.invite("out", "timeout")
			s.emit(c, mapping.CallEvent{Kind: mapping.CallFailed, Status: 408, Reason: "Request Timeout"})
			return
		case <-ring.C:
			if answered {
				continue
			}
			timedOut = true
			s.sendCancel(ctx, c, 0, "")
		case res := <-tx.Responses():
			switch {
			case res.StatusCode == 100:
			case res.IsProvisional():
				s.callMu.Lock()
				c.provisonal = true
				want := c.cancelWant && c.state == stEarly
				code, text := c.cancelCode, c.cancelText
				s.callMu.Unlock()
				if want {
					s.sendCancel(ctx, c, code, text)
					continue
				}
				s.emit(c, mapping.CallEvent{Kind: mapping.CallProgress, Status: res.StatusCode, Reason: res.Reason, SDP: res.Body()})
			case res.IsSuccess():
				s.outboundAnswered(ctx, c, res, !answered, log)
				answered = true
			default:
				if answered {
					continue
				}
				s.callMu.Lock()
				s.endLocked(c)
				s.callMu.Unlock()
				ev := mapping.CallEvent{Kind: mapping.CallFailed, Status: res.StatusCode, Reason: res.Reason}
				outcome := "rejected"
				if timedOut {
					ev.Status, ev.Reason, outcome = 408, "Request Timeout", "timeout"
				}
				s.met.invite("out", outcome)
				s.emit(c, ev)
				return
			}
		case <-tx.Done():
			if !answered {
				s.callMu.Lock()
				s.endLocked(c)
				s.callMu.Unlock()
				ev := mapping.CallEvent{Kind: mapping.CallFailed, Status: 408, Reason: "Request Timeout"}
				if err := tx.Err(); err != nil && !errors.Is(err, sip.ErrTransactionTimeout) {
					ev.Status, ev.Reason = 503, "Service Unavailable"
					log.Info("invite out failed", zap.Error(err))
				}
				s.met.invite("out", "timeout")
				s.emit(c, ev)
			}
			return
		}
	}
}

// outboundAnswered handles a 2xx to our INVITE: the first sets the dialog
// (RFC 3261 §12.1.2); each is ACKed; a 2xx that crosses our CANCEL or
// Hangup is ACKed and the dialog ended with a BYE.
func (s *Stack) outboundAnswered(ctx context.Context, c *call, res *sip.Response, first bool, log flowLog) {
	s.callMu.Lock()
	if first {
		c.d = updateDialog(c.d, res)
		if c.state == stEarly {
			c.state = stConfirmed
		}
	}
	d := c.d
	d.LocalCSeq = c.invite.CSeq().SeqNo
	hangup := c.mine || c.state == stEnded
	s.callMu.Unlock()
	if err := s.sendAck(d); err != nil {
		log.Info("ack out failed", zap.Error(err))
	}
	if !first {
		return
	}
	if hangup {
		s.callMu.Lock()
		s.endLocked(c)
		d.LocalCSeq = c.d.LocalCSeq + 1
		code, text := c.cancelCode, c.cancelText
		s.callMu.Unlock()
		bctx, cancel := context.WithTimeout(ctx, handlerTimeout)
		_ = s.sendBye(bctx, d, code, text)
		cancel()
		return
	}
	s.met.invite("out", "answered")
	s.emit(c, mapping.CallEvent{Kind: mapping.CallAnswered, Status: res.StatusCode, Reason: res.Reason, SDP: res.Body()})
}

// sendAck sends the ACK for a 2xx in dialog d, whose LocalCSeq is the
// INVITE's (RFC 3261 §13.2.2.4).
func (s *Stack) sendAck(d mapping.Dialog) error {
	ack, h, err := s.dialogRequest(sip.ACK, d)
	if err != nil {
		return err
	}
	ack.SetBody(nil)
	s.setHop(ack, h)
	return s.client.WriteRequest(ack, noBuild)
}

// sendCancel CANCELs our INVITE (RFC 3261 §9.1): same Request-URI, top
// Via, Route, Call-ID, From, To and CSeq number; a Reason when cause > 0.
func (s *Stack) sendCancel(ctx context.Context, c *call, cause int, text string) {
	inv := c.invite
	req := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	if v := inv.Via(); v != nil {
		req.AppendHeader(v.Clone())
	}
	for _, r := range inv.GetHeaders("Route") {
		req.AppendHeader(sip.HeaderClone(r))
	}
	req.AppendHeader(sip.HeaderClone(inv.From()))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	req.AppendHeader(sip.HeaderClone(inv.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	if cause > 0 {
		req.AppendHeader(sip.NewHeader("Reason", formatReason(cause, text)))
	}
	req.SetBody(nil)
	s.setHop(req, c.inviteHop)
	s.callMu.Lock()
	select {
	case <-c.cancelSent:
	default:
		close(c.cancelSent)
	}
	s.callMu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, handlerTimeout)
	defer cancel()
	// The 487 to the INVITE ends runOutbound; the CANCEL's own answer
	// does not matter beyond being there.
	if _, err := s.client.Do(cctx, req, noBuild); err != nil {
		s.log.Debug("cancel out failed", zap.String("call_id", c.d.CallID), zap.Error(err))
	}
}

// Hangup ends the dialog of key whatever its state, with an RFC 3326
// Reason header (Q.850 cause, text sanitised) when cause > 0: CANCEL for
// our unanswered INVITE (then ACK and BYE if a 2xx crosses it), final
// status for an unanswered inbound INVITE, BYE for an answered dialog. No
// CallEvents are reported for key afterwards.
func (s *Stack) Hangup(ctx context.Context, key mapping.CallKey, status, cause int, text string) error {
	s.callMu.Lock()
	c := s.callTab.byKey[key]
	if c == nil || c.mine {
		s.callMu.Unlock()
		return ErrNoCall
	}
	c.mine = true
	switch {
	case c.state == stEarly && !c.inbound:
		send := c.provisonal
		c.cancelWant, c.cancelCode, c.cancelText = true, cause, text
		s.callMu.Unlock()
		if send {
			s.sendCancel(ctx, c, cause, text)
		}
		// runOutbound forgets the call on the final response; a 2xx
		// crossing the CANCEL is ACKed and BYEd there.
		return nil
	case c.state == stEarly:
		s.endLocked(c)
		s.callMu.Unlock()
		if status < 300 || status > 699 {
			status = 480
		}
		s.sendFinal(c, status, "", nil, 0, cause, text)
		s.finalSent(c)
		s.met.invite("in", "rejected")
		return nil
	}
	if c.inbound && c.state == stAnswered {
		// RFC 3261 §15: no BYE before the ACK for our 2xx or the end of
		// its retransmissions; awaitAck BYEs the dialog itself then.
		acked := c.acked
		s.callMu.Unlock()
		wait := time.NewTimer(64 * s.cfg.CallT1)
		select {
		case <-acked:
		case <-ctx.Done():
		case <-wait.C:
		}
		wait.Stop()
		s.callMu.Lock()
		if c.state == stEnded {
			s.callMu.Unlock()
			return nil
		}
		if c.state == stAnswered {
			close(c.acked) // stops the retransmissions
		}
	}
	s.endLocked(c)
	c.d.LocalCSeq++
	d := c.d
	s.callMu.Unlock()
	return s.sendBye(ctx, d, cause, text)
}

// Reinvite sends a re-INVITE with sdp in the confirmed dialog of key (hold,
// unhold) and returns the answer SDP; a non-2xx answer is a
// *mapping.Failure with its status (491 on glare, RFC 3261 §14.1), and the
// dialog goes on with the previous session.
func (s *Stack) Reinvite(ctx context.Context, key mapping.CallKey, sdp []byte) ([]byte, error) {
	s.callMu.Lock()
	c := s.callTab.byKey[key]
	if c == nil || c.state != stConfirmed || c.mine {
		s.callMu.Unlock()
		return nil, ErrNoCall
	}
	if c.busy {
		s.callMu.Unlock()
		return nil, &mapping.Failure{Condition: mapping.UnexpectedRequest, Status: 491, Text: "re-INVITE in progress"}
	}
	c.busy = true
	c.d.LocalCSeq++
	d := c.d
	s.callMu.Unlock()
	defer func() {
		s.callMu.Lock()
		c.busy = false
		s.callMu.Unlock()
	}()
	req, h, err := s.dialogRequest(sip.INVITE, d, s.allowHeader())
	if err != nil {
		return nil, err
	}
	setBody(req, "application/sdp", sdp)
	s.setHop(req, h)
	res, err := s.client.Do(ctx, req, noBuild)
	if err != nil {
		return nil, fmt.Errorf("re-invite %s: %w", d.CallID, err)
	}
	if !res.IsSuccess() {
		return nil, &mapping.Failure{Condition: mapping.NotAcceptable, Status: res.StatusCode, Text: res.Reason}
	}
	s.callMu.Lock()
	c.d = updateDialog(c.d, res)
	c.localSD = sdp
	ad := c.d
	s.callMu.Unlock()
	ad.LocalCSeq = d.LocalCSeq
	if err := s.sendAck(ad); err != nil {
		return nil, fmt.Errorf("ack re-invite %s: %w", d.CallID, err)
	}
	return res.Body(), nil
}

// defaultCallT1 and defaultRingTimeout are Config.CallT1 and
// Config.CallRingTimeout when unset.
const (
	defaultCallT1      = 500 * time.Millisecond
	defaultRingTimeout = 3 * time.Minute
)
