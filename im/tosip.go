package im

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// ReceiveXMPP takes a message stanza read off the component stream. It
// never blocks: admission, translation errors and overload are answered
// with error stanzas through the XMPP link.
func (c *Service) ReceiveXMPP(m mapping.XMPPMessage) {
	if m.Type == "error" {
		c.lateBounce(m)
		return
	}
	select {
	case <-c.ready:
	default:
		c.reject(m, &mapping.Failure{Condition: mapping.RecipientUnavailable, Text: "gateway starting"})
		return
	}
	sm, err := c.cfg.Domains.MessageToSIP(m)
	if errors.Is(err, mapping.ErrNoContent) {
		// Chat states and receipts carry no text: SIP pager mode has
		// nothing to say for them, and bouncing them would be noise.
		return
	}
	if err != nil {
		c.reject(m, asFailure(err, mapping.BadRequest))
		return
	}
	key := sm.RequestURI.AOR()
	if !c.admit(key) {
		c.reject(m, &mapping.Failure{Condition: mapping.ResourceConstraint, Text: "too many messages waiting for this recipient"})
		return
	}
	j := &job{entry: mapping.OutboxEntry{Message: m, Accepted: c.cfg.Clock.Now()}, sip: sm, key: key}
	select {
	case c.commit <- j:
	default: // cannot happen: commit's capacity equals MaxQueued, which admit enforces
		c.finish(j.key)
		c.reject(m, &mapping.Failure{Condition: mapping.ResourceConstraint})
	}
}

// admit reserves a place for one message to key, enforcing both bounds.
func (c *Service) admit(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.queued.Load() >= int64(c.cfg.MaxQueued) {
		return false
	}
	q := c.queues[key]
	if q == nil {
		q = &destQueue{}
		c.queues[key] = q
	}
	if q.admitted >= c.cfg.PerDestination {
		return false
	}
	q.admitted++
	c.cfg.Metrics.QueueDepth(int(c.queued.Add(1)))
	return true
}

// finish releases the place admit reserved.
func (c *Service) finish(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.queues[key]; q != nil {
		q.admitted--
		if q.admitted == 0 && !q.running {
			delete(c.queues, key)
		}
	}
	c.cfg.Metrics.QueueDepth(int(c.queued.Add(-1)))
}

// commitLoop makes admitted messages durable in groups: whatever arrived
// while the previous transaction ran goes into the next one, so the batch
// grows with the load and an idle gateway adds no waiting (group commit).
func (c *Service) commitLoop(ctx context.Context) {
	defer c.wg.Done()
	const maxBatch = 512
	batch := make([]*job, 0, maxBatch)
	entries := make([]mapping.OutboxEntry, 0, maxBatch)
	for {
		var ok bool
		if batch, ok = nextBatch(ctx, c.commit, batch, maxBatch); !ok {
			return
		}
		entries = entries[:0]
		for _, j := range batch {
			entries = append(entries, j.entry)
		}
		ids, err := c.outbox.AppendOutbox(ctx, entries)
		if err == nil && len(ids) != len(batch) {
			err = fmt.Errorf("outbox returned %d ids for %d entries", len(ids), len(batch))
		}
		if err != nil {
			c.log.Error("outbox append failed", zap.Int("messages", len(batch)), zap.Error(err))
			for _, j := range batch {
				c.fail(j, &mapping.Failure{Condition: mapping.InternalServerError, Text: "message could not be stored"})
			}
			continue
		}
		for i, j := range batch {
			j.entry.ID = ids[i]
			c.enqueue(j)
		}
	}
}

// nextBatch waits for one item of ch, then takes whatever else is already
// queued, up to limit, into buf[:0]: the batch grows with the load and an
// idle loop adds no wait (group commit). It reports false once ctx is done.
func nextBatch[T any](ctx context.Context, ch <-chan T, buf []T, limit int) ([]T, bool) {
	select {
	case <-ctx.Done():
		return buf, false
	case v := <-ch:
		buf = append(buf[:0], v)
	}
	for len(buf) < limit {
		select {
		case v := <-ch:
			buf = append(buf, v)
		default:
			return buf, true
		}
	}
	return buf, true
}

// deleteLoop removes finished messages from the outbox in batches.
func (c *Service) deleteLoop(ctx context.Context) {
	defer c.wg.Done()
	const maxBatch = 1024
	ids := make([]int64, 0, maxBatch)
	for {
		var ok bool
		if ids, ok = nextBatch(ctx, c.delete, ids, maxBatch); !ok {
			return
		}
		if err := c.outbox.DeleteOutbox(ctx, ids); err != nil && ctx.Err() == nil {
			// The messages were delivered; a failed delete means they may be
			// delivered again after a restart, never lost.
			c.log.Error("outbox delete failed", zap.Int("messages", len(ids)), zap.Error(err))
		}
	}
}

// enqueue appends a committed job to its destination FIFO and starts the
// destination's worker when it is idle.
func (c *Service) enqueue(j *job) {
	c.mu.Lock()
	q := c.queues[j.key]
	if q == nil { // recovered entry admitted before Run's ctx existed
		q = &destQueue{admitted: 1}
		c.queues[j.key] = q
	}
	q.items = append(q.items, j)
	start := !q.running
	q.running = true
	c.mu.Unlock()
	if start {
		c.wg.Add(1)
		go c.drain(j.key, q)
	}
}

// drain delivers one destination's messages in order, one at a time: RFC
// 3428 §8 forbids a second MESSAGE to a URI while one is pending.
func (c *Service) drain(key string, q *destQueue) {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		if len(q.items) == 0 || c.ctx.Err() != nil {
			q.running = false
			if q.admitted == 0 {
				delete(c.queues, key)
			}
			c.mu.Unlock()
			return
		}
		j := q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		c.mu.Unlock()

		f := c.deliver(j)
		if c.ctx.Err() != nil && f != nil {
			// Shutting down mid-send: leave the entry in the outbox so the
			// next run delivers it.
			c.finish(j.key)
			continue
		}
		if f != nil {
			c.fail(j, f)
			continue
		}
		c.cfg.Metrics.Message(XMPPToSIP, OutcomeDelivered)
		c.done(j)
	}
}

// deliver sends one message to every binding of its destination (or via
// the trunk) and returns nil on the first 2xx.
func (c *Service) deliver(j *job) *mapping.Failure {
	targets, f := c.targets(j.sip.RequestURI)
	if f != nil {
		return f
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.SendTimeout)
	defer cancel()
	if len(targets) == 1 {
		return c.send(ctx, j.sip, targets[0])
	}
	// Parallel forking (RFC 3261 §16.7): first 2xx wins; otherwise the
	// best final failure, preferring a 6xx.
	results := make(chan *mapping.Failure, len(targets))
	for _, t := range targets {
		go func() { results <- c.send(ctx, j.sip, t) }()
	}
	var best *mapping.Failure
	for range targets {
		f := <-results
		if f == nil {
			return nil
		}
		if best == nil || (f.Status >= 600 && best.Status < 600) {
			best = f
		}
	}
	return best
}

// targets says where a request for uri goes: a user of S to each of its
// registered contacts (RFC 3261 §16.5), or through the trunk when it has
// none and a trunk is configured; any other domain to the URI itself,
// which the SIP stack sends to the outbound proxy or resolves.
func (c *Service) targets(uri mapping.URI) ([]mapping.Target, *mapping.Failure) {
	if uri.Host != c.cfg.Domains.SIP {
		return []mapping.Target{{URI: uri}}, nil
	}
	var targets []mapping.Target
	for _, b := range c.loc.Bindings(uri.AOR()) {
		contact, err := mapping.ParseURI(b.Contact)
		if err != nil {
			continue
		}
		targets = append(targets, mapping.Target{URI: contact, Destination: b.Source})
	}
	if len(targets) > 0 {
		return targets, nil
	}
	if c.cfg.Trunk {
		return []mapping.Target{{URI: uri}}, nil
	}
	return nil, c.unreachable(uri.User)
}

func (c *Service) send(ctx context.Context, m mapping.SIPMessage, t mapping.Target) *mapping.Failure {
	res, err := c.sip.SendMessage(ctx, m, t)
	if err != nil {
		var f *mapping.Failure
		if errors.As(err, &f) {
			return f
		}
		// No final response: the SIP side timed out or the transport failed.
		return &mapping.Failure{Condition: mapping.RemoteServerTimeout, Status: 408, Text: err.Error()}
	}
	if res.Status >= 200 && res.Status < 300 {
		return nil
	}
	return mapping.FailureFromStatus(res.Status, res.Reason)
}

// unreachable is the failure for a user of S with no binding: the account
// exists but is offline, or there is no such account (RFC 7247 Table 3).
func (c *Service) unreachable(user string) *mapping.Failure {
	ok, err := c.loc.AccountExists(c.ctx, user)
	switch {
	case err != nil:
		return &mapping.Failure{Condition: mapping.InternalServerError, Status: 500, Text: "account lookup failed"}
	case ok:
		return &mapping.Failure{Condition: mapping.RecipientUnavailable, Status: 480, Text: "not registered"}
	default:
		return &mapping.Failure{Condition: mapping.ItemNotFound, Status: 404, Text: "no such user"}
	}
}

// fail answers the sender of j with an error stanza and retires j.
func (c *Service) fail(j *job, f *mapping.Failure) {
	c.cfg.Metrics.Message(XMPPToSIP, OutcomeFailed)
	c.log.Info("message to sip failed", zap.String("stanza_id", j.entry.Message.ID),
		zap.Stringer("from", j.entry.Message.From), zap.Stringer("to", j.entry.Message.To),
		zap.String("condition", string(f.Condition)), zap.Int("status", f.Status))
	c.bounce(j.entry.Message, f)
	c.done(j)
}

// done retires a finished job: its outbox entry and its queue place.
func (c *Service) done(j *job) {
	if j.entry.ID != 0 {
		select {
		case c.delete <- j.entry.ID:
		default:
			// The delete queue is as large as the admission bound, so this is
			// unreachable; a leftover entry is redelivered, never lost.
		}
	}
	c.finish(j.key)
}

// reject answers a message that was never admitted.
func (c *Service) reject(m mapping.XMPPMessage, f *mapping.Failure) {
	c.cfg.Metrics.Message(XMPPToSIP, OutcomeRejected)
	c.bounce(m, f)
}

// bounce sends m back to its sender as an error stanza (RFC 6120 §8.2).
func (c *Service) bounce(m mapping.XMPPMessage, f *mapping.Failure) {
	if m.From.IsZero() {
		return
	}
	e := mapping.XMPPMessage{ID: m.ID, From: m.To, To: m.From, Type: "error", Lang: m.Lang, Body: m.Body, Error: f}
	if err := c.xmpp.Send(e, nil); err != nil {
		c.log.Warn("error stanza not sent", zap.String("stanza_id", m.ID), zap.Stringer("to", m.From), zap.Error(err))
	}
}

func asFailure(err error, fallback mapping.Condition) *mapping.Failure {
	var f *mapping.Failure
	if errors.As(err, &f) {
		return f
	}
	return &mapping.Failure{Condition: fallback, Text: err.Error()}
}
