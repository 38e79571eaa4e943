package calls

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"stox.dev/stox/clock"
	"stox.dev/stox/mapping"
)

// state is where a call stands; both directions go through the same ones.
type state int

const (
	// stProposed: a JMI proposal is between the two (XEP-0353). X→S: stox
	// proceeded and waits for the session-initiate; S→X: stox proposed and
	// waits for a device to proceed.
	stProposed state = iota
	// stSetup: X→S: the INVITE is out; S→X: the session-initiate is out.
	stSetup
	// stActive: both legs answered; media is relayed.
	stActive
	// stEnded: both legs are ended or being ended.
	stEnded
)

// inboxSize bounds the events a peer may queue for one call: a client that
// floods a call with transport-info gets resource-constraint, not stox's
// memory. The events that end or advance a call (a SIP final response,
// BYE, CANCEL, the call's own timer) are queued past it, so a flood never
// leaves a leg up; each dialog has only a few of them.
const inboxSize = 64

// mustSize bounds even the events queued past inboxSize, against a peer
// that repeats one of them (session-terminate) without end.
const mustSize = 4 * inboxSize

// mediaGrace is how long a call whose relay ended on its own waits for the
// signalling that explains it (session-terminate, BYE) before it is ended
// as a media failure.
const mediaGrace = time.Second

// call is one call, owned by its goroutine (run): every field is touched
// only there, except those set before start.
type call struct {
	svc *Service
	log *zap.Logger
	// inbox holds the events for the call's goroutine, in arrival order;
	// wake tells it that there are some.
	inboxMu sync.Mutex
	inbox   []func(*call)
	wake    chan struct{}
	rec     mapping.CallRecord

	state state
	sid   string      // Jingle session id (the JMI id when JMI was used)
	peer  mapping.JID // the XMPP user; a full JID once the device is known
	// peerBare is peer's bare JID, set before start and never changed:
	// the stacks' handlers read it to check who may act on the call.
	peerBare mapping.JID
	contact  mapping.JID     // the SIP party's JID with the contact resource
	sipURI   mapping.URI     // the SIP party
	key      mapping.CallKey // the SIP dialog, once there is one
	jingle   bool            // a Jingle session exists (initiate sent or received)
	// proposing: our JMI proposal is out and no device answered it yet;
	// ending the call then retracts it (XEP-0353 §3.2).
	proposing bool

	media     MediaCall
	mediaDone <-chan struct{}
	xOffer    mapping.Media  // X→S: the XMPP side's offer
	sipOffer  mapping.Media  // S→X: the SIP side's offer
	sipLocal  mapping.Media  // the relay's RTP leg as offered or answered to SIP
	origin    mapping.Origin // o= of stox's SDPs toward SIP
	codecs    []mapping.Codec
	cands     []mapping.Candidate // trickled before the WebRTC leg existed
	webrtc    bool                // the WebRTC leg exists
	// earlyInfo is the direction of a re-INVITE that came before the call
	// was up ("hold" or "active"), told once it is.
	earlyInfo string

	timer clock.Timer
}

func (s *Service) newCall(dir string) *call {
	id := newID()
	return &call{
		svc:  s,
		log:  s.log.With(zap.String("call", id)),
		wake: make(chan struct{}, 1),
		rec:  mapping.CallRecord{ID: id, Direction: dir, Started: s.cfg.Clock.Now()},
	}
}

// post queues f, an event a peer may repeat at will, for the call's
// goroutine; false when inboxSize events are waiting.
func (c *call) post(f func(*call)) bool { return c.enqueue(f, false) }

// must queues f, an event that ends or advances the call, whatever is
// waiting (inboxSize); false only past mustSize.
func (c *call) must(f func(*call)) bool { return c.enqueue(f, true) }

func (c *call) enqueue(f func(*call), must bool) bool {
	c.inboxMu.Lock()
	if n := len(c.inbox); !must && n >= inboxSize || n >= mustSize {
		c.inboxMu.Unlock()
		return false
	}
	c.inbox = append(c.inbox, f)
	c.inboxMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // already signalled
	}
	return true
}

// next takes the oldest waiting event; nil when there is none.
func (c *call) next() func(*call) {
	c.inboxMu.Lock()
	defer c.inboxMu.Unlock()
	if len(c.inbox) == 0 {
		return nil
	}
	f := c.inbox[0]
	c.inbox[0] = nil
	c.inbox = c.inbox[1:]
	return f
}

// run is the call's goroutine: it applies events until the call has ended
// on both legs, or ends it when ctx is done (stox stopping).
func (c *call) run(ctx context.Context) {
	defer c.svc.forget(c)
	defer c.stopTimer()
	for c.state != stEnded {
		select {
		case <-c.wake:
			for f := c.next(); f != nil && c.state != stEnded; f = c.next() {
				f(c)
			}
		case <-c.mediaDone:
			// A client that hangs up closes its DTLS association as it
			// sends session-terminate, and the relay may see the close
			// first: the signalling gets a moment to arrive and name the
			// real reason before the relay's end is taken as a failure.
			c.mediaDone = nil
			c.arm(mediaGrace, func(c *call) { c.mediaEnded(ctx) })
		case <-ctx.Done():
			// Stopping: end both legs with a short grace of their own,
			// since ctx is already done.
			sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			c.end(sctx, "gone", 503, "gateway shutting down", "failed")
			cancel()
		}
	}
}

// ctx returns a context for one outgoing request of the call.
func (c *call) reqCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// arm (re)starts the call's single timer; f runs on the call's goroutine.
func (c *call) arm(d time.Duration, f func(*call)) {
	c.stopTimer()
	c.timer = c.svc.cfg.Clock.AfterFunc(d, func() {
		c.must(f)
	})
}

// answered marks the call up on both legs, relaying codecs[0], and records it.
func (c *call) answered(codecs []mapping.Codec) {
	c.state = stActive
	c.rec.Answered = c.svc.cfg.Clock.Now()
	c.rec.Codec = codecName(codecs)
	c.save()
	if c.earlyInfo == "hold" && c.jingle {
		c.sendInfo(c.earlyInfo) // the phone held the call before it was up
	}
	c.earlyInfo = ""
}

// armRing ends the call as unanswered after the ring timeout, with status
// toward an INVITE still unanswered (0: from the reason).
func (c *call) armRing(status int) {
	c.arm(c.svc.cfg.RingTimeout, func(c *call) {
		ctx, cancel := c.reqCtx()
		defer cancel()
		c.end(ctx, "timeout", status, "no answer", "no-answer")
	})
}

func (c *call) stopTimer() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

// save records the call; a store failure is logged, not fatal: the call
// itself does not depend on its record.
func (c *call) save() {
	if c.svc.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c.key != "" {
		if d, ok := c.svc.s.DialogRecord(c.key); ok {
			c.rec.Dialog = &d
		}
	}
	c.rec.SID, c.rec.XMPPPeer, c.rec.Contact = c.sid, c.peer, c.contact
	c.rec.SIPPeer = c.sipURI.String()
	if err := c.svc.store.PutCall(ctx, c.rec); err != nil {
		c.log.Warn("call record not saved", zap.Error(err))
	}
}

// openMedia opens the relay, or reports how to refuse the call.
func (c *call) openMedia() error {
	m, err := c.svc.media.Open(c.rec.ID)
	if err != nil {
		return err
	}
	c.media = m
	c.mediaDone = m.Done()
	return nil
}

// mediaEnded ends a call whose relay stopped on its own: ICE or DTLS
// failed on the XMPP leg, or no media flowed for the inactivity timeout.
func (c *call) mediaEnded(ctx context.Context) {
	err := c.media.Err()
	c.log.Info("media ended", zap.Error(err))
	reason, text := "failed-transport", "media failed"
	if err != nil {
		text = err.Error()
	}
	rctx, cancel := c.reqCtx()
	defer cancel()
	c.end(rctx, reason, 0, text, "failed")
}

// end ends both legs, whatever state they are in, and records the outcome.
// reason is the Jingle reason toward XMPP; status the SIP status for an
// incoming INVITE not answered yet (0: derived from reason).
func (c *call) end(ctx context.Context, reason string, status int, text, outcome string) {
	if c.state == stEnded {
		return
	}
	wasActive := c.state == stActive
	c.state = stEnded
	c.stopTimer()
	c.endXMPP(ctx, reason, text)
	if c.key != "" {
		st := status
		if st == 0 {
			st, _ = mapping.StatusForJingleReason(reason)
		}
		cause := 0
		if wasActive && reason != "success" {
			cause = st
		}
		if err := c.svc.s.Hangup(ctx, c.key, st, cause, text); err != nil {
			c.log.Info("SIP leg hangup", zap.Error(err))
		}
	}
	c.finish(outcome)
}

// endXMPP ends the XMPP leg: a session-terminate when there is a session,
// a JMI retract (our proposal) or reject (theirs) when there is only a
// proposal.
func (c *call) endXMPP(ctx context.Context, reason, text string) {
	switch {
	case c.jingle:
		c.jingle = false
		j := mapping.Jingle{Action: mapping.ActSessionTerminate, SID: c.sid, Reason: mapping.NewJingleReason(reason, text)}
		if err := c.svc.x.SendJingle(ctx, c.contact, c.peer, j); err != nil {
			c.log.Info("XMPP leg terminate", zap.Error(err))
		}
	case c.proposing:
		c.proposing = false
		_ = c.svc.x.SendJMI(mapping.JMI{From: c.contact.Bare(), To: c.peer.Bare(), Kind: "retract", ID: c.sid, Reason: reason})
	}
}

// finish closes the relay and records the outcome.
func (c *call) finish(outcome string) {
	c.state = stEnded
	if c.media != nil {
		if err := c.media.Close(); err != nil {
			c.log.Debug("relay close", zap.Error(err))
		}
	}
	c.rec.Ended = c.svc.cfg.Clock.Now()
	c.rec.Outcome = outcome
	c.save()
	c.svc.cfg.Metrics.Ended(c.rec.Direction, outcome)
	c.log.Info("call ended", zap.String("outcome", outcome), zap.String("direction", c.rec.Direction),
		zap.Duration("duration", c.rec.Ended.Sub(c.rec.Started)))
}

// addCandidates hands trickled candidates to the relay, or keeps them until
// its WebRTC leg exists.
func (c *call) addCandidates(cs []mapping.Candidate) {
	if !c.webrtc {
		c.cands = append(c.cands, cs...)
		return
	}
	for _, cand := range cs {
		if err := c.media.AddRemoteCandidate(cand); err != nil {
			c.log.Debug("remote candidate refused", zap.Error(err))
		}
	}
}

// flushCandidates hands the kept candidates over once the WebRTC leg exists.
func (c *call) flushCandidates() {
	c.webrtc = true
	cs := c.cands
	c.cands = nil
	c.addCandidates(cs)
}

// isCapacity reports whether err says the relay is full.
func isCapacity(err error) bool { return errors.Is(err, ErrNoCapacity) }
