package mapping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// CoreConfig configures the routing core.
type CoreConfig struct {
	Domains Domains
	// Trunk is true when an outbound proxy serves the SIP world beyond
	// stox's registrar: users of S that have no binding at stox are then
	// tried through the proxy instead of failing (trunk mode).
	Trunk bool
	// PerDestination bounds the XMPP→SIP messages waiting for one SIP
	// destination (default 1024); MaxQueued bounds them all (default 65536).
	PerDestination int
	MaxQueued      int
	// AckTimeout bounds how long a SIP MESSAGE waits for the XMPP server's
	// acknowledgement before it is answered 504 (default 8 s).
	AckTimeout time.Duration
	// ErrorGrace is how long a SIP MESSAGE stays pending after the XMPP
	// server acknowledged it, so an error returned at once by the
	// recipient's client still becomes the SIP response (RFC 7247 Table 2)
	// rather than a later notice. Zero answers at the acknowledgement.
	ErrorGrace time.Duration
	// SendTimeout bounds one outgoing MESSAGE transaction (default 32 s,
	// RFC 3261 Timer F).
	SendTimeout time.Duration
	Logger      *slog.Logger
	Metrics     Metrics
	// LocatorReady, when set, is closed once the Locator answers from warm
	// state (the registrar has loaded its bindings). Run waits for it
	// before recovering the outbox: a recovered message tried against an
	// empty registrar would fail as "not registered".
	LocatorReady <-chan struct{}
}

// Metrics receives the core's counters; cmd/stox backs it with Prometheus.
type Metrics interface {
	// Message counts one message by direction ("xmpp_to_sip",
	// "sip_to_xmpp") and outcome ("delivered", "failed", "rejected").
	Message(direction, outcome string)
	// QueueDepth reports the XMPP→SIP messages accepted but not yet answered.
	QueueDepth(n int)
}

type nopMetrics struct{}

func (nopMetrics) Message(string, string) {}
func (nopMetrics) QueueDepth(int)         {}

// Directions and outcomes reported to Metrics.
const (
	XMPPToSIP = "xmpp_to_sip"
	SIPToXMPP = "sip_to_xmpp"

	OutcomeDelivered = "delivered"
	OutcomeFailed    = "failed"
	OutcomeRejected  = "rejected"
)

// Core routes instant messages between the XMPP and SIP stacks.
//
// XMPP→SIP: a message read off the component stream is admitted against the
// bounded queues, made durable in the outbox (group commit), then sent on
// its destination's FIFO: one pending MESSAGE per destination (RFC 3428
// §8). Every accepted message ends delivered or as an error stanza to its
// sender.
//
// SIP→XMPP: a MESSAGE is translated, written to the component stream and
// answered only once the XMPP server has acknowledged it (XMPPLink's
// barrier) or bounced it; so a 2xx means the XMPP server has it.
type Core struct {
	cfg    CoreConfig
	log    *slog.Logger
	xmpp   XMPPLink
	sip    SIPLink
	loc    Locator
	outbox Outbox

	ctx    context.Context // set by Run; workers derive from it
	ready  chan struct{}
	wg     sync.WaitGroup
	commit chan *job
	delete chan int64

	mu     sync.Mutex
	queues map[string]*destQueue
	queued atomic.Int64

	recent recentSenders
	ids    *idSource
}

// job is one XMPP→SIP message on its way.
type job struct {
	entry OutboxEntry
	sip   SIPMessage
	key   string // destination queue key (Request-URI AOR)
}

type destQueue struct {
	admitted int    // admitted and not yet finished (includes those in commit)
	items    []*job // committed, waiting their turn
	running  bool
}

// NewCore returns a core wired to the two stacks, the registrar's locator
// and the outbox. Run must be called before messages flow.
func NewCore(cfg CoreConfig, x XMPPLink, s SIPLink, loc Locator, outbox Outbox) *Core {
	if cfg.PerDestination <= 0 {
		cfg.PerDestination = 1024
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 65536
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 8 * time.Second
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 32 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	return &Core{
		cfg: cfg, log: cfg.Logger, xmpp: x, sip: s, loc: loc, outbox: outbox,
		ready:  make(chan struct{}),
		commit: make(chan *job, cfg.MaxQueued),
		delete: make(chan int64, cfg.MaxQueued),
		queues: make(map[string]*destQueue),
		recent: newRecentSenders(4096),
		ids:    newIDSource(),
	}
}

// Run recovers the outbox left by a previous run, then commits and
// delivers messages until ctx is done. It returns after every worker it
// started has stopped.
func (c *Core) Run(ctx context.Context) error {
	c.ctx = ctx
	if c.cfg.LocatorReady != nil {
		select {
		case <-c.cfg.LocatorReady:
		case <-ctx.Done():
			return nil
		}
	}
	pending, err := c.outbox.PendingOutbox(ctx)
	if err != nil {
		return fmt.Errorf("recover outbox: %w", err)
	}
	for _, e := range pending {
		sm, err := c.cfg.Domains.MessageToSIP(e.Message)
		if err != nil { // cannot happen for an entry we accepted; fail it rather than loop
			c.fail(&job{entry: e}, asFailure(err, InternalServerError))
			continue
		}
		j := &job{entry: e, sip: sm, key: sm.RequestURI.AOR()}
		c.admit(j.key)
		c.enqueue(j)
	}
	if len(pending) > 0 {
		c.log.Info("outbox recovered", "messages", len(pending))
	}
	c.wg.Add(2)
	go c.commitLoop(ctx)
	go c.deleteLoop(ctx)
	close(c.ready)
	<-ctx.Done()
	c.wg.Wait()
	return nil
}

// ReceiveXMPP takes a message stanza read off the component stream. It
// never blocks: admission, translation errors and overload are answered
// with error stanzas through the XMPP link.
func (c *Core) ReceiveXMPP(m XMPPMessage) {
	if m.Type == "error" {
		c.lateBounce(m)
		return
	}
	select {
	case <-c.ready:
	default:
		c.reject(m, &Failure{Condition: RecipientUnavailable, Text: "gateway starting"})
		return
	}
	sm, err := c.cfg.Domains.MessageToSIP(m)
	if errors.Is(err, ErrNoContent) {
		// Chat states and receipts carry no text: SIP pager mode has
		// nothing to say for them, and bouncing them would be noise.
		return
	}
	if err != nil {
		c.reject(m, asFailure(err, BadRequest))
		return
	}
	key := sm.RequestURI.AOR()
	if !c.admit(key) {
		c.reject(m, &Failure{Condition: ResourceConstraint, Text: "too many messages waiting for this recipient"})
		return
	}
	j := &job{entry: OutboxEntry{Message: m, Accepted: time.Now()}, sip: sm, key: key}
	select {
	case c.commit <- j:
	default: // cannot happen: commit's capacity equals MaxQueued, which admit enforces
		c.finish(j.key)
		c.reject(m, &Failure{Condition: ResourceConstraint})
	}
}

// admit reserves a place for one message to key, enforcing both bounds.
func (c *Core) admit(key string) bool {
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
func (c *Core) finish(key string) {
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
func (c *Core) commitLoop(ctx context.Context) {
	defer c.wg.Done()
	const maxBatch = 512
	batch := make([]*job, 0, maxBatch)
	entries := make([]OutboxEntry, 0, maxBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-c.commit:
			batch = append(batch[:0], j)
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case j := <-c.commit:
				batch = append(batch, j)
			default:
				break drain
			}
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
			c.log.Error("outbox append failed", "messages", len(batch), "error", err)
			for _, j := range batch {
				c.fail(j, &Failure{Condition: InternalServerError, Text: "message could not be stored"})
			}
			continue
		}
		for i, j := range batch {
			j.entry.ID = ids[i]
			c.enqueue(j)
		}
	}
}

// deleteLoop removes finished messages from the outbox in batches.
func (c *Core) deleteLoop(ctx context.Context) {
	defer c.wg.Done()
	const maxBatch = 1024
	ids := make([]int64, 0, maxBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-c.delete:
			ids = append(ids[:0], id)
		}
	drain:
		for len(ids) < maxBatch {
			select {
			case id := <-c.delete:
				ids = append(ids, id)
			default:
				break drain
			}
		}
		if err := c.outbox.DeleteOutbox(ctx, ids); err != nil && ctx.Err() == nil {
			// The messages were delivered; a failed delete means they may be
			// delivered again after a restart, never lost.
			c.log.Error("outbox delete failed", "messages", len(ids), "error", err)
		}
	}
}

// enqueue appends a committed job to its destination FIFO and starts the
// destination's worker when it is idle.
func (c *Core) enqueue(j *job) {
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
func (c *Core) drain(key string, q *destQueue) {
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
func (c *Core) deliver(j *job) *Failure {
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
	results := make(chan *Failure, len(targets))
	for _, t := range targets {
		go func() { results <- c.send(ctx, j.sip, t) }()
	}
	var best *Failure
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
func (c *Core) targets(uri URI) ([]Target, *Failure) {
	if uri.Host != c.cfg.Domains.SIP {
		return []Target{{URI: uri}}, nil
	}
	var targets []Target
	for _, b := range c.loc.Bindings(uri.AOR()) {
		contact, err := ParseURI(b.Contact)
		if err != nil {
			continue
		}
		targets = append(targets, Target{URI: contact, Destination: b.Source})
	}
	if len(targets) > 0 {
		return targets, nil
	}
	if c.cfg.Trunk {
		return []Target{{URI: uri}}, nil
	}
	return nil, c.unreachable(uri.User)
}

func (c *Core) send(ctx context.Context, m SIPMessage, t Target) *Failure {
	res, err := c.sip.SendMessage(ctx, m, t)
	if err != nil {
		var f *Failure
		if errors.As(err, &f) {
			return f
		}
		// No final response: the SIP side timed out or the transport failed.
		return &Failure{Condition: RemoteServerTimeout, Status: 408, Text: err.Error()}
	}
	if res.Status >= 200 && res.Status < 300 {
		return nil
	}
	return FailureFromStatus(res.Status, res.Reason)
}

// unreachable is the failure for a user of S with no binding: the account
// exists but is offline, or there is no such account (RFC 7247 Table 3).
func (c *Core) unreachable(user string) *Failure {
	ok, err := c.loc.AccountExists(c.ctx, user)
	switch {
	case err != nil:
		return &Failure{Condition: InternalServerError, Status: 500, Text: "account lookup failed"}
	case ok:
		return &Failure{Condition: RecipientUnavailable, Status: 480, Text: "not registered"}
	default:
		return &Failure{Condition: ItemNotFound, Status: 404, Text: "no such user"}
	}
}

// fail answers the sender of j with an error stanza and retires j.
func (c *Core) fail(j *job, f *Failure) {
	c.cfg.Metrics.Message(XMPPToSIP, OutcomeFailed)
	c.log.Info("message to sip failed", "stanza_id", j.entry.Message.ID,
		"from", j.entry.Message.From.String(), "to", j.entry.Message.To.String(),
		"condition", string(f.Condition), "status", f.Status)
	c.bounce(j.entry.Message, f)
	c.done(j)
}

// done retires a finished job: its outbox entry and its queue place.
func (c *Core) done(j *job) {
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
func (c *Core) reject(m XMPPMessage, f *Failure) {
	c.cfg.Metrics.Message(XMPPToSIP, OutcomeRejected)
	c.bounce(m, f)
}

// bounce sends m back to its sender as an error stanza (RFC 6120 §8.2).
func (c *Core) bounce(m XMPPMessage, f *Failure) {
	if m.From.IsZero() {
		return
	}
	e := XMPPMessage{ID: m.ID, From: m.To, To: m.From, Type: "error", Lang: m.Lang, Body: m.Body, Error: f}
	if err := c.xmpp.Send(e, nil); err != nil {
		c.log.Warn("error stanza not sent", "stanza_id", m.ID, "to", m.From.String(), "error", err)
	}
}

func asFailure(err error, fallback Condition) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	return &Failure{Condition: fallback, Text: err.Error()}
}

// Ready is closed once Run has recovered the outbox and messages may flow.
func (c *Core) Ready() <-chan struct{} { return c.ready }
