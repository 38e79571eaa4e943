// Package im is stox's instant-messaging capability: it moves pager-mode
// messages between the XMPP and SIP stacks (RFC 7572).
//
// XMPP→SIP: a message read off the component stream is admitted against
// bounded queues, made durable in the outbox (group commit), then sent on
// its destination's FIFO, one pending MESSAGE per destination (RFC 3428
// §8). Every accepted message ends delivered or as an error stanza to its
// sender (RFC 7247 §7 Table 3).
//
// SIP→XMPP: a MESSAGE is translated, written to the component stream and
// answered only once the XMPP server has acknowledged or bounced it, so a
// 2xx means the XMPP server has it (docs/architecture.md, "Message flows").
//
// The translations themselves are mapping's; this package owns the queues,
// the outbox drain, admission and error feedback. It sees the stacks and
// the store only through the interfaces of ports.go.
package im

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"stox.dev/stox/clock"
	"stox.dev/stox/mapping"
)

// Config configures the routing core.
type Config struct {
	Domains mapping.Domains
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
	// RFC 3261 Timer F). It is a context deadline on the wall clock, not on
	// Clock: it bounds the SIP stack's transaction, whose timers are real.
	SendTimeout time.Duration
	// Clock stamps accepted messages and keeps AckTimeout and ErrorGrace;
	// nil is the wall clock.
	Clock   clock.Clock
	Logger  *zap.Logger
	Metrics Metrics
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

// Service routes instant messages between the XMPP and SIP stacks (see the
// package documentation for both directions).
type Service struct {
	cfg    Config
	log    *zap.Logger
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
	entry mapping.OutboxEntry
	sip   mapping.SIPMessage
	key   string // destination queue key (Request-URI AOR)
}

type destQueue struct {
	admitted int    // admitted and not yet finished (includes those in commit)
	items    []*job // committed, waiting their turn
	running  bool
}

// New returns a core wired to the two stacks, the registrar's locator
// and the outbox. Run must be called before messages flow.
func New(cfg Config, x XMPPLink, s SIPLink, loc Locator, outbox Outbox) *Service {
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
		cfg.Logger = zap.NewNop()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	return &Service{
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
func (c *Service) Run(ctx context.Context) error {
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
			c.fail(&job{entry: e}, asFailure(err, mapping.InternalServerError))
			continue
		}
		j := &job{entry: e, sip: sm, key: sm.RequestURI.AOR()}
		c.admit(j.key)
		c.enqueue(j)
	}
	if len(pending) > 0 {
		c.log.Info("outbox recovered", zap.Int("messages", len(pending)))
	}
	c.wg.Add(2)
	go c.commitLoop(ctx)
	go c.deleteLoop(ctx)
	close(c.ready)
	<-ctx.Done()
	c.wg.Wait()
	return nil
}

// Ready is closed once Run has recovered the outbox and messages may flow.
func (c *Service) Ready() <-chan struct{} { return c.ready }
