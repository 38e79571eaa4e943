package im

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// ReceiveSIP handles a pager-mode MESSAGE from the SIP side and returns its
// final response. It blocks until the XMPP server has acknowledged or
// bounced the translated stanza, so a 2xx is only given for a message the
// XMPP server has taken (docs/architecture.md, "Durability contract").
func (c *Service) ReceiveSIP(ctx context.Context, m mapping.SIPMessage) mapping.Outcome {
	xm, err := c.cfg.Domains.MessageToXMPP(m)
	if err != nil {
		c.cfg.Metrics.Message(SIPToXMPP, OutcomeRejected)
		f := asFailure(err, mapping.BadRequest)
		if f.Status == 0 {
			f.Status = mapping.StatusForCondition(f.Condition, false, f.Address != "")
		}
		return mapping.Outcome{Status: f.Status, Reason: f.Text}
	}
	select {
	case <-c.ready:
	default:
		c.cfg.Metrics.Message(SIPToXMPP, OutcomeRejected)
		return mapping.Outcome{Status: 480, Reason: "Gateway Starting", RetryAfter: time.Second}
	}
	if !c.xmpp.Up() {
		// The XMPP server is unreachable: refuse now rather than accept and
		// drop. 480 rather than 503, which would mark all of stox as down.
		c.cfg.Metrics.Message(SIPToXMPP, OutcomeRejected)
		return mapping.Outcome{Status: 480, Reason: "XMPP Service Unavailable", RetryAfter: 5 * time.Second}
	}
	if xm.ID == "" {
		xm.ID = c.ids.next()
	}
	// Remember the sender before sending: an XMPP error may come back at
	// any moment after, while we wait or long after we answered.
	waiter := c.recent.put(xm.ID, m.From, xm.To)
	acked := make(chan error, 1)
	if err := c.xmpp.Send(xm, func(err error) { acked <- err }); err != nil {
		c.recent.take(xm.ID)
		c.cfg.Metrics.Message(SIPToXMPP, OutcomeRejected)
		if errors.Is(err, mapping.ErrQueueFull) {
			return mapping.Outcome{Status: 503, Reason: "Overloaded", RetryAfter: time.Second}
		}
		return mapping.Outcome{Status: 480, Reason: "XMPP Service Unavailable", RetryAfter: 5 * time.Second}
	}
	expired, stop := c.after(c.cfg.AckTimeout)
	select {
	case err = <-acked:
	case <-expired:
		err = errAckTimeout
	case <-ctx.Done():
		err = errAckTimeout
	}
	stop()
	if err == nil && c.cfg.ErrorGrace > 0 {
		// The server has routed the message; an error its recipient's
		// client returns at once is still worth a SIP error code.
		over, stop := c.after(c.cfg.ErrorGrace)
		select {
		case f := <-waiter:
			err = f
		case <-over:
		case <-ctx.Done():
		}
		stop()
	}
	if err == nil {
		c.recent.detach(xm.ID)
		select { // an error that raced the detach
		case f := <-waiter:
			err = f
		default:
		}
	}
	var f *mapping.Failure
	switch {
	case err == nil:
		c.cfg.Metrics.Message(SIPToXMPP, OutcomeDelivered)
		// RFC 3428 §7: a gateway into a non-SIP domain answers 202, since
		// the message is relayed, not yet read.
		return mapping.Outcome{Status: 202, Reason: "Accepted"}
	case errors.As(err, &f):
		c.recent.take(xm.ID)
		c.cfg.Metrics.Message(SIPToXMPP, OutcomeFailed)
		status := mapping.StatusForCondition(f.Condition, xm.To.Resource != "", f.Address != "")
		// RFC 7247 §7: the <text/> becomes the reason phrase.
		return mapping.Outcome{Status: status, Reason: f.Text}
	case errors.Is(err, errAckTimeout):
		c.recent.take(xm.ID)
		c.cfg.Metrics.Message(SIPToXMPP, OutcomeFailed)
		return mapping.Outcome{Status: 504, Reason: "XMPP Server Time-out"}
	default:
		// The component session was lost before the server acknowledged:
		// it may or may not have the message; let the sender retry.
		c.recent.take(xm.ID)
		c.cfg.Metrics.Message(SIPToXMPP, OutcomeFailed)
		return mapping.Outcome{Status: 480, Reason: "XMPP Service Unavailable", RetryAfter: 5 * time.Second}
	}
}

var errAckTimeout = errors.New("xmpp acknowledgement timed out")

// after returns a channel closed once d has passed on the service's clock,
// and a function that disarms it.
func (c *Service) after(d time.Duration) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	t := c.cfg.Clock.AfterFunc(d, func() { close(ch) })
	return ch, func() { t.Stop() }
}

// lateBounce handles an XMPP error for a message the server had already
// acknowledged, typically a server-to-server failure reported later. The
// SIP transaction is long finished, so the sender is told with a MESSAGE
// of its own: an accepted message is delivered or its sender hears why.
func (c *Service) lateBounce(m mapping.XMPPMessage) {
	f := m.Error
	if f == nil {
		f = &mapping.Failure{Condition: mapping.UndefinedCondition}
	}
	to, orig, waiter, ok := c.recent.take(m.ID)
	if !ok {
		c.log.Debug("unmatched xmpp error", zap.String("stanza_id", m.ID), zap.Stringer("from", m.From))
		return
	}
	if waiter != nil { // its SIP transaction is still pending: answer it
		select {
		case waiter <- f:
		default:
		}
		return
	}
	cond := f.Condition
	c.log.Info("late xmpp error", zap.String("stanza_id", m.ID), zap.Stringer("from", orig), zap.String("condition", string(cond)))
	note := mapping.SIPMessage{
		RequestURI:  to,
		To:          to,
		From:        c.cfg.Domains.SIPFrom(orig.Bare()),
		ContentType: "text/plain;charset=UTF-8",
		Body:        []byte("Your message could not be delivered to " + orig.Bare().String() + ": " + string(cond)),
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		targets, f := c.targets(to)
		if f != nil {
			c.log.Info("delivery failure notice not sent", zap.String("stanza_id", m.ID), zap.Stringer("to", to), zap.String("condition", string(f.Condition)))
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.SendTimeout)
		defer cancel()
		for _, t := range targets {
			if _, err := c.sip.SendMessage(ctx, note, t); err != nil {
				c.log.Warn("delivery failure notice not sent", zap.String("stanza_id", m.ID), zap.Error(err))
			}
		}
	}()
}

// recentSenders remembers, for a bounded number of recent SIP→XMPP
// messages, who sent them, so a late XMPP error can be reported back.
type recentSenders struct {
	mu   sync.Mutex
	ring []string // ids in insertion order; the oldest is overwritten
	next int
	m    map[string]recentEntry
}

type recentEntry struct {
	sender mapping.URI
	to     mapping.JID
	waiter chan *mapping.Failure // non-nil while the SIP transaction is pending
}

func newRecentSenders(max int) recentSenders {
	return recentSenders{ring: make([]string, max), m: make(map[string]recentEntry, max)}
}

func (r *recentSenders) put(id string, sender mapping.URI, to mapping.JID) chan *mapping.Failure {
	w := make(chan *mapping.Failure, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.ring[r.next]; old != "" {
		delete(r.m, old)
	}
	r.ring[r.next] = id
	r.next = (r.next + 1) % len(r.ring)
	r.m[id] = recentEntry{sender: sender, to: to, waiter: w}
	return w
}

// detach marks id's SIP transaction as answered: later errors become
// notices.
func (r *recentSenders) detach(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.m[id]; ok {
		e.waiter = nil
		r.m[id] = e
	}
}

func (r *recentSenders) take(id string) (mapping.URI, mapping.JID, chan *mapping.Failure, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[id]
	if ok {
		delete(r.m, id)
	}
	return e.sender, e.to, e.waiter, ok
}

// idSource makes stanza ids for messages that arrive from SIP without one:
// a random per-process prefix and a counter, unique without coordination.
type idSource struct {
	prefix string
	n      atomic.Uint64
}

func newIDSource() *idSource {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &idSource{prefix: "stox-" + hex.EncodeToString(b[:]) + "-"}
}

func (s *idSource) next() string {
	return s.prefix + strconv.FormatUint(s.n.Add(1), 36)
}
