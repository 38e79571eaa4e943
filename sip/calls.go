package sip

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// INVITE dialogs for the calls capability (docs/sip-calls.md). The stack
// keeps each dialog, answers what it can itself (CANCEL, BYE, re-INVITE,
// UPDATE, INFO, ACK) and reports what happened as CallEvents; the calls
// capability decides the answers (Respond) and starts and ends calls
// (Dial, Hangup, Reinvite).

// CallHandler serves INVITE dialogs (package calls). Both methods are
// called on the stack's goroutines and must not block.
type CallHandler interface {
	// Invite is a new initial INVITE; the stack has sent 100 Trying and
	// waits for Respond.
	Invite(inv mapping.Invite)
	// CallEvent is what happened on a dialog.
	CallEvent(ev mapping.CallEvent)
}

// ErrNoCall is returned for a key the stack holds no dialog for (ended,
// never existed, or in a state the operation does not apply to).
var ErrNoCall = errors.New("no such call")

// HandleCalls registers the capability that serves INVITE dialogs. Without
// one an INVITE is answered 488, as before calls existed.
func (s *Stack) HandleCalls(h CallHandler) {
	s.register("calls", func() bool { ok := s.calls == nil; s.calls = h; return ok })
}

type callState int

const (
	stEarly     callState = iota // no final response yet
	stAnswered                   // inbound: 2xx sent, waiting for the ACK
	stConfirmed                  // ACK received (inbound) or sent (outbound)
	stEnded
)

// call is one INVITE dialog, inbound or outbound. Its fields are guarded by
// Stack.callMu.
type call struct {
	key     mapping.CallKey
	inbound bool
	state   callState
	d       mapping.Dialog // LocalCSeq is the last CSeq we used
	mine    bool           // ended by our own Hangup: no more events
	localSD []byte         // the SDP we last sent
	// inbound
	req     *sip.Request
	tx      *rtx
	release func() // the admission slot, until the final response
	acked   chan struct{}
	final   chan struct{} // closed once the INVITE has its final response
	ringT   *time.Timer
	// outbound
	invite     *sip.Request
	inviteHop  hop
	ctx        sip.ClientTransaction
	provisonal bool // a 1xx arrived: CANCEL may be sent (RFC 3261 §9.1)
	cancelWant bool // Hangup before the first 1xx: CANCEL on it
	cancelCode int  // Reason cause for that CANCEL
	cancelText string
	cancelSent chan struct{} // closed when our CANCEL went out
	busy       bool          // a re-INVITE of ours is in progress
	// the peer's re-INVITE we answered: its CSeq and the ACK's arrival
	reCSeq  uint32
	reAcked chan struct{}
}

// callTable indexes the dialogs by key and by Call-ID + local tag, which is
// what a request from the peer names in its Call-ID and To tag.
type callTable struct {
	byKey    map[mapping.CallKey]*call
	byDialog map[string]*call
}

func dialogKey(callID, localTag string) string { return callID + "\x00" + localTag }

// putCall indexes c; false when its key is taken already.
func (s *Stack) putCall(c *call) bool {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	if s.callTab.byKey == nil {
		s.callTab.byKey = make(map[mapping.CallKey]*call)
		s.callTab.byDialog = make(map[string]*call)
	}
	if _, ok := s.callTab.byKey[c.key]; ok {
		return false
	}
	s.callTab.byKey[c.key] = c
	s.callTab.byDialog[dialogKey(c.d.CallID, c.d.LocalTag)] = c
	s.met.callsActive.Set(float64(len(s.callTab.byKey)))
	return true
}

// finalLocked records that c's INVITE got its final response: the
// admission slot is given back and the handler's goroutine, which sipgo
// ties to the transaction, may return. s.callMu must be held.
func (s *Stack) finalLocked(c *call) {
	if c.release != nil {
		c.release()
		c.release = nil
	}
	if c.final != nil {
		select {
		case <-c.final:
		default:
			close(c.final)
		}
	}
}

// finalSent is finalLocked for a final response sent after the call ended.
func (s *Stack) finalSent(c *call) {
	s.callMu.Lock()
	s.finalLocked(c)
	s.callMu.Unlock()
}

// endLocked marks c ended and forgets it; s.callMu must be held. The
// handler's goroutine stays until finalLocked: a final response sent
// after endLocked must leave before it, or sipgo ends the transaction.
func (s *Stack) endLocked(c *call) {
	if c.state == stEnded {
		return
	}
	if c.release != nil {
		c.release()
		c.release = nil
	}
	if c.reAcked != nil {
		close(c.reAcked)
		c.reAcked = nil
	}
	c.state = stEnded
	if c.ringT != nil {
		c.ringT.Stop()
	}
	delete(s.callTab.byKey, c.key)
	delete(s.callTab.byDialog, dialogKey(c.d.CallID, c.d.LocalTag))
	s.met.callsActive.Set(float64(len(s.callTab.byKey)))
}

// inDialog returns the dialog a request from the peer belongs to (RFC
// 3261 §12.2.2: Call-ID and our tag in To), or nil.
func (s *Stack) inDialog(req *sip.Request) *call {
	to := req.To()
	if to == nil {
		return nil
	}
	s.callMu.Lock()
	defer s.callMu.Unlock()
	return s.callTab.byDialog[dialogKey(callID(req), tagOf(to.Params))]
}

// emit reports ev unless the call was ended by our own Hangup.
func (s *Stack) emit(c *call, ev mapping.CallEvent) {
	s.callMu.Lock()
	mine := c.mine
	s.callMu.Unlock()
	if mine || s.calls == nil {
		return
	}
	ev.Key = c.key
	s.calls.CallEvent(ev)
}

func newCallKey(prefix string) mapping.CallKey { return mapping.CallKey(prefix + newCallID()[:20]) }

// goCall runs f on a goroutine owned by the stack: Run waits for it.
func (s *Stack) goCall(f func()) {
	s.callWG.Add(1)
	go func() {
		defer s.callWG.Done()
		f()
	}()
}

// handleInvite is the INVITE UAS (RFC 3261 §13.3).
func (s *Stack) handleInvite(req *sip.Request, tx *rtx) {
	if s.calls == nil {
		// No calls capability: the offer cannot be accepted (§21.4.26).
		s.respond(req, tx, 488, "Not Acceptable Here", []sip.Header{s.allowHeader()})
		return
	}
	from, to := req.From(), req.To()
	if ok := s.sdpBody(req, tx); !ok {
		return
	}
	if tagOf(to.Params) != "" {
		c := s.inDialog(req)
		if c == nil { // RFC 3261 §12.2.2
			s.respond(req, tx, 481, "Call/Transaction Does Not Exist", nil)
			return
		}
		s.handleReoffer(c, req, tx)
		return
	}
	if tagOf(from.Params) == "" { // RFC 3261 §8.1.1.3: MUST
		s.respond(req, tx, 400, "Missing From tag", nil)
		return
	}
	ct := req.Contact()
	if ct == nil || ct.Address.Wildcard || ct.Address.Host == "" { // RFC 3261 §8.1.1.8
		s.respond(req, tx, 400, "Missing Contact", nil)
		return
	}
	log := s.flow(zap.String("call_id", callID(req)),
		zap.Stringer("from", &from.Address), zap.Stringer("to", &to.Address))
	release, ok := s.admit(req, tx, log)
	if !ok {
		s.met.invite("in", "overload")
		return
	}
	keep := false
	defer func() {
		if !keep {
			release()
		}
	}()
	if !s.authorizeSender(req, tx, from, log) {
		return
	}
	u, ok := s.uris(req, tx, "", log, &req.Recipient, &from.Address, &to.Address)
	if !ok {
		return
	}
	localTag := sip.GenerateTagN(16)
	// Every response to this INVITE carries our tag (RFC 3261 §8.2.6.2),
	// also the 487 sipgo sends by itself on CANCEL: it builds it from the
	// request. No other goroutine uses req until the 100 below.
	to.Params.Add("tag", localTag)
	c := &call{
		key: newCallKey("in-"), inbound: true, state: stEarly,
		d:   uasDialog(req, localTag, ct.Address.String()),
		req: req, tx: tx, release: release, acked: make(chan struct{}), final: make(chan struct{}),
	}
	c.d.LocalCSeq = 0
	tx.owned.Store(true)
	keep = true
	s.putCall(c) // a fresh random key
	if !tx.OnCancel(func(*sip.Request) { s.cancelled(c) }) {
		// CANCELled before we got here: sipgo answered it; nobody heard
		// of the call.
		s.callMu.Lock()
		s.endLocked(c)
		s.finalLocked(c)
		s.callMu.Unlock()
		s.met.invite("in", "cancelled")
		return
	}
	// RFC 3261 §8.2.6.1: 100 at once, the answer waits on a person.
	if err := tx.ServerTransaction.Respond(sip.NewResponseFromRequest(req, 100, "Trying", nil)); err != nil {
		log.Debug("invite: sending 100 failed", zap.Error(err))
	}
	// A safety net under the capability's own ring timeout: every
	// request gets a final response.
	s.callMu.Lock()
	c.ringT = time.AfterFunc(s.cfg.CallRingTimeout+handlerTimeout, func() { s.ringExpired(c) })
	s.callMu.Unlock()
	inv := mapping.Invite{
		Key: c.key, RequestURI: u[0], From: u[1], FromDisplay: from.DisplayName, To: u[2],
		CallID: callID(req), SDP: req.Body(),
		Source: strings.ToLower(req.Transport()) + ":" + req.Source(),
	}
	log.Debug("invite in", zap.String("key", string(c.key)))
	s.calls.Invite(inv)
	// sipgo ends the transaction when this handler returns (server.go,
	// TerminateGracefully): stay until the final response is out. Over
	// UDP it then keeps a 2xx transaction for Timer L, through which the
	// 2xx is retransmitted.
	select {
	case <-c.final:
	case <-tx.Done():
		s.callMu.Lock()
		early := c.state == stEarly
		s.endLocked(c)
		s.finalLocked(c)
		s.callMu.Unlock()
		if early {
			s.emit(c, mapping.CallEvent{Kind: mapping.CallLost, Status: 500, Reason: "INVITE transaction ended"})
		}
	case <-s.context().Done():
	}
}

// sdpBody accepts an INVITE, UPDATE or re-INVITE body: none, or
// application/sdp (RFC 3261 §13.2.1); 415 with Accept otherwise (§21.4.13).
func (s *Stack) sdpBody(req *sip.Request, tx *rtx) bool {
	ctype, body, ok := s.bodyAndType(req, tx, "")
	if !ok {
		return false
	}
	if len(body) == 0 {
		return true
	}
	mt, _, _ := strings.Cut(ctype, ";")
	if !strings.EqualFold(strings.TrimSpace(mt), "application/sdp") {
		s.respond(req, tx, 415, "Unsupported Media Type", []sip.Header{sip.NewHeader("Accept", "application/sdp")})
		return false
	}
	return true
}

// cancelled is sipgo's OnCancel callback: it has answered 200 to the
// CANCEL and sends 487 to the INVITE (RFC 3261 §9.2).
func (s *Stack) cancelled(c *call) {
	s.callMu.Lock()
	if c.state != stEarly {
		s.callMu.Unlock()
		return
	}
	s.endLocked(c)
	s.finalLocked(c) // sipgo has set its 487 already (actCancel)
	s.callMu.Unlock()
	s.met.request(string(sip.INVITE), 487)
	s.met.invite("in", "cancelled")
	s.emit(c, mapping.CallEvent{Kind: mapping.CallCancelled, Status: 487, Reason: "Request Terminated"})
}

// ringExpired answers an INVITE nobody answered in time with 480 and
// reports the call lost.
func (s *Stack) ringExpired(c *call) {
	s.callMu.Lock()
	if c.state != stEarly {
		s.callMu.Unlock()
		return
	}
	s.endLocked(c)
	s.callMu.Unlock()
	s.sendFinal(c, 480, "Temporarily Unavailable", nil, 0, 0, "")
	s.finalSent(c)
	s.met.invite("in", "timeout")
	s.emit(c, mapping.CallEvent{Kind: mapping.CallLost, Status: 480, Reason: "no answer from the calls capability"})
}

// Respond answers the inbound INVITE of key: a provisional response
// (180/183, with sdp as early media), a 2xx with sdp (retransmitted until
// the ACK, RFC 3261 §13.3.1.4; the ACK is reported as CallConfirmed, its
// absence after 64·T1 ends the dialog with a BYE and CallLost), or a final
// error with Retry-After when retryAfter > 0.
func (s *Stack) Respond(key mapping.CallKey, status int, reason string, sdp []byte, retryAfter time.Duration) error {
	if status < 101 || status > 699 {
		return badRequest("status out of range")
	}
	s.callMu.Lock()
	c := s.callTab.byKey[key]
	if c == nil || !c.inbound || c.state != stEarly {
		s.callMu.Unlock()
		return ErrNoCall
	}
	if status >= 200 {
		if status < 300 {
			c.state = stAnswered
			c.localSD = sdp
			if c.ringT != nil {
				c.ringT.Stop()
			}
		} else {
			s.endLocked(c)
		}
	}
	s.callMu.Unlock()
	switch {
	case status < 200:
		res := s.callResponse(c.req, status, reason, sdp)
		return c.tx.ServerTransaction.Respond(res)
	case status < 300:
		res := s.callResponse(c.req, status, reason, sdp)
		err := c.tx.Respond(res)
		s.callMu.Lock()
		if err != nil {
			s.endLocked(c)
		} else {
			s.finalLocked(c)
		}
		s.callMu.Unlock()
		if err != nil {
			return err
		}
		s.met.request(string(sip.INVITE), status)
		s.met.invite("in", "answered")
		s.goCall(func() { s.awaitAck(c, res) })
		return nil
	}
	s.sendFinal(c, status, reason, nil, retryAfter, 0, "")
	s.finalSent(c)
	s.met.invite("in", "rejected")
	return nil
}

// callResponse is a response to an INVITE or UPDATE of a dialog: our tag
// is in req's To already; Contact for every response that may establish
// the dialog (RFC 3261 §12.1.1), Allow, and the SDP body when given.
func (s *Stack) callResponse(req *sip.Request, status int, reason string, sdp []byte) *sip.Response {
	res := sip.NewResponseFromRequest(req, status, finalReason(status, reason), nil)
	if status > 100 && status < 300 {
		res.AppendHeader(sip.NewHeader("Contact", s.ourContact(strings.ToLower(req.Transport()))))
		res.AppendHeader(s.allowHeader())
	}
	if len(sdp) > 0 {
		ct := sip.ContentTypeHeader("application/sdp")
		res.AppendHeader(&ct)
	}
	res.SetBody(sdp)
	return res
}

// sendFinal sends a final error response to c's INVITE with a Reason header
// when cause > 0.
func (s *Stack) sendFinal(c *call, status int, reason string, hdrs []sip.Header, retry time.Duration, cause int, text string) {
	if cause > 0 {
		hdrs = append(hdrs, sip.NewHeader("Reason", formatReason(cause, text)))
	}
	s.answer(c.req, c.tx, status, reason, retry, "", hdrs)
	s.met.request(string(sip.INVITE), status)
}

// awaitAck retransmits the 2xx with T1 doubling up to T2 until the ACK
// arrives; after 64·T1 without one the dialog is ended with a BYE and
// reported lost (RFC 3261 §13.3.1.4).
func (s *Stack) awaitAck(c *call, res *sip.Response) {
	ctx := s.context()
	t1 := s.cfg.CallT1
	interval := t1
	deadline := time.NewTimer(64 * t1)
	defer deadline.Stop()
	tick := time.NewTimer(interval)
	defer tick.Stop()
	for {
		select {
		case <-c.acked:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
			s.callMu.Lock()
			ended := c.state != stAnswered
			s.callMu.Unlock()
			if ended {
				return
			}
			// Past the transaction's own lifetime the write fails;
			// the deadline below still ends the dialog.
			_ = c.tx.ServerTransaction.Respond(res)
			interval = min(2*interval, sip.T2)
			tick.Reset(interval)
		case <-deadline.C:
			s.callMu.Lock()
			if c.state != stAnswered {
				s.callMu.Unlock()
				return
			}
			s.endLocked(c)
			d := c.d
			d.LocalCSeq++
			s.callMu.Unlock()
			s.met.invite("in", "no-ack")
			s.emit(c, mapping.CallEvent{Kind: mapping.CallLost, Status: 408, Reason: "no ACK for the 2xx"})
			bctx, cancel := context.WithTimeout(ctx, handlerTimeout)
			_ = s.sendBye(bctx, d, 0, "")
			cancel()
			return
		}
	}
}

// handleAck matches an ACK for a 2xx to its dialog (RFC 3261 §13.3.1.4:
// the ACK is a request of its own, outside the INVITE transaction). An ACK
// for a non-2xx final stays with its transaction in sipgo.
func (s *Stack) handleAck(req *sip.Request) {
	c := s.inDialog(req)
	if c == nil {
		return
	}
	s.callMu.Lock()
	confirm := c.inbound && c.state == stAnswered && req.CSeq() != nil && req.CSeq().SeqNo == c.d.RemoteCSeq
	if confirm {
		c.state = stConfirmed
		close(c.acked)
	}
	if c.reAcked != nil && req.CSeq() != nil && req.CSeq().SeqNo == c.reCSeq {
		close(c.reAcked)
		c.reAcked = nil
	}
	s.callMu.Unlock()
	if confirm {
		s.emit(c, mapping.CallEvent{Kind: mapping.CallConfirmed})
	}
}

// handleBye ends the dialog the BYE names (RFC 3261 §15.1.2): 200, and
// CallHungUp with the RFC 3326 Reason cause; 481 for an unknown dialog. A
// BYE in the early dialog of an inbound INVITE also ends the INVITE with
// 487.
func (s *Stack) handleBye(req *sip.Request, tx *rtx) {
	c := s.inDialog(req)
	if c == nil {
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	s.callMu.Lock()
	early := c.inbound && c.state == stEarly
	if c.inbound && c.state == stAnswered {
		close(c.acked) // stops the 2xx retransmissions
	}
	s.endLocked(c)
	s.callMu.Unlock()
	s.respond(req, tx, 200, "OK", nil)
	if early {
		s.sendFinal(c, 487, "Request Terminated", nil, 0, 0, "")
		s.finalSent(c)
	}
	ev := mapping.CallEvent{Kind: mapping.CallHungUp}
	if h := req.GetHeader("Reason"); h != nil {
		ev.Status, ev.Reason = hangupCause(h.Value())
	}
	s.emit(c, ev)
}

// handleReoffer answers a re-INVITE or UPDATE of the peer itself, with the
// SDP we last sent, directions mirrored (RFC 3264 §8), and reports the
// new offer as CallReoffered. A request whose CSeq is not above the last
// one is refused with 500 (RFC 3261 §12.2.2).
func (s *Stack) handleReoffer(c *call, req *sip.Request, tx *rtx) {
	s.callMu.Lock()
	cseq := req.CSeq().SeqNo
	if c.state == stEnded || (c.inbound && c.state == stEarly && req.Method == sip.INVITE) {
		s.callMu.Unlock()
		s.respond(req, tx, 491, "Request Pending", nil)
		return
	}
	if c.d.RemoteCSeq != 0 && cseq <= c.d.RemoteCSeq {
		s.callMu.Unlock()
		s.respond(req, tx, 500, "CSeq Out of Order", nil)
		return
	}
	c.d.RemoteCSeq = cseq
	if ct := req.Contact(); ct != nil && !ct.Address.Wildcard && ct.Address.Host != "" {
		c.d.RemoteTarget = ct.Address.String() // target refresh (§12.2.2)
	}
	offer := req.Body()
	var answer []byte
	if len(offer) > 0 || req.Method == sip.INVITE {
		answer = mirroredAnswer(c.localSD, offer)
		if answer != nil {
			c.localSD = answer
		}
	}
	s.callMu.Unlock()
	if answer == nil && len(offer) > 0 {
		// No SDP of ours yet (an UPDATE before the answer): nothing to
		// answer the offer with (RFC 3311 §5.2).
		s.respond(req, tx, 488, "Not Acceptable Here", nil)
		return
	}
	res := s.callResponse(req, 200, "OK", answer)
	if err := tx.Respond(res); err != nil {
		s.log.Debug("sip respond failed", zap.Int("status", 200), zap.String("call_id", callID(req)), zap.Error(err))
	}
	if req.Method == sip.INVITE && !sip.IsReliable(req.Transport()) {
		// The 2xx to a re-INVITE is retransmitted until its ACK like
		// any 2xx (RFC 3261 §13.3.1.4), through the transaction sipgo
		// keeps for Timer L; no ACK ends nothing here.
		acked := make(chan struct{})
		s.callMu.Lock()
		if c.reAcked != nil {
			close(c.reAcked)
		}
		c.reCSeq, c.reAcked = cseq, acked
		s.callMu.Unlock()
		s.goCall(func() { s.retransmit2xx(tx, res, acked) })
	}
	if len(offer) > 0 {
		s.emit(c, mapping.CallEvent{Kind: mapping.CallReoffered, SDP: offer})
	}
}

// handleInDialog serves INFO and UPDATE: inside a dialog 200 (UPDATE
// answered like a re-INVITE), 481 with a To tag naming no dialog, and 405
// outside dialogs as before calls existed.
func (s *Stack) handleInDialog(req *sip.Request, tx *rtx) {
	if s.calls == nil || tagOf(req.To().Params) == "" {
		s.respond(req, tx, 405, "Method Not Allowed", []sip.Header{s.allowHeader()})
		return
	}
	c := s.inDialog(req)
	if c == nil {
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	if req.Method == sip.UPDATE {
		if !s.sdpBody(req, tx) {
			return
		}
		s.handleReoffer(c, req, tx)
		return
	}
	s.respond(req, tx, 200, "OK", nil) // INFO (RFC 6086): nothing stox acts on
}

// DialogRecord returns what is needed to end the dialog of key after a
// restart (ByeRecord); false when there is no answered dialog.
func (s *Stack) DialogRecord(key mapping.CallKey) (mapping.DialogRecord, bool) {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	c := s.callTab.byKey[key]
	if c == nil || c.state == stEarly || c.state == stEnded {
		return mapping.DialogRecord{}, false
	}
	d := c.d
	return mapping.DialogRecord{
		CallID: d.CallID, LocalTag: d.LocalTag, RemoteTag: d.RemoteTag,
		LocalURI: d.LocalURI, RemoteURI: d.RemoteURI, RemoteTarget: d.RemoteTarget,
		RouteSet: append([]string(nil), d.RouteSet...), LocalCSeq: d.LocalCSeq,
		Destination: d.Destination,
	}, true
}

// ByeRecord sends a BYE in the dialog r describes (after a restart), with
// a Reason header when cause > 0. A 481 or 408 means the dialog is gone
// anyway and is not an error.
func (s *Stack) ByeRecord(ctx context.Context, r mapping.DialogRecord, cause int, text string) error {
	d := mapping.Dialog{
		CallID: r.CallID, LocalTag: r.LocalTag, RemoteTag: r.RemoteTag,
		LocalURI: r.LocalURI, RemoteURI: r.RemoteURI, RemoteTarget: r.RemoteTarget,
		RouteSet: r.RouteSet, LocalCSeq: r.LocalCSeq + 1, Destination: r.Destination,
	}
	if d.RemoteTag == "" {
		return badRequest("dialog record without a remote tag")
	}
	return s.sendBye(ctx, d, cause, text)
}

// sendBye sends a BYE in d (d.LocalCSeq is its CSeq) and waits for the
// answer: 2xx, 481 and 408 end the dialog alike (RFC 3261 §15.1.1).
func (s *Stack) sendBye(ctx context.Context, d mapping.Dialog, cause int, text string) error {
	var hdrs []sip.Header
	if cause > 0 {
		hdrs = append(hdrs, sip.NewHeader("Reason", formatReason(cause, text)))
	}
	res, err := s.dialogDo(ctx, sip.BYE, d, hdrs, "", nil)
	if err != nil {
		return err
	}
	if res.IsSuccess() || res.StatusCode == 481 || res.StatusCode == 408 {
		return nil
	}
	return &mapping.Failure{Condition: mapping.UndefinedCondition, Status: res.StatusCode, Text: "BYE answered " + res.Reason}
}

// stopCalls stops the timers of the calls left when Run ends.
func (s *Stack) stopCalls() {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	for _, c := range s.callTab.byKey {
		if c.ringT != nil {
			c.ringT.Stop()
		}
	}
}

// retransmit2xx sends res again from T1 doubling up to T2 until acked is
// closed or 64·T1 passed (RFC 3261 §13.3.1.4).
func (s *Stack) retransmit2xx(tx *rtx, res *sip.Response, acked <-chan struct{}) {
	ctx := s.context()
	interval := s.cfg.CallT1
	deadline := time.NewTimer(64 * interval)
	defer deadline.Stop()
	tick := time.NewTimer(interval)
	defer tick.Stop()
	for {
		select {
		case <-acked:
			return
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
			_ = tx.ServerTransaction.Respond(res)
			interval = min(2*interval, sip.T2)
			tick.Reset(interval)
		}
	}
}
