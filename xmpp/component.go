// Package xmpp is stox's XMPP stack: a XEP-0114 component session to an XMPP
// server (Prosody, ejabberd) built on mellium.im/xmpp, with disco (XEP-0030),
// the jabber:iq:gateway prompt (XEP-0100 §6.3), XMPP ping (XEP-0199), the
// stanza ⇄ model codecs and a reconnect supervisor.
//
// Outbound messages go through a bounded queue and an ordering barrier: after
// a batch of messages the writer sends an IQ ping addressed to the component
// itself. The server processes a component's stanzas in order, so when that
// ping comes back every message written before it has been routed, and each
// message that did not get an error bounce is acknowledged.
package xmpp

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"mellium.im/xmpp/jid"
	"stox.dev/stox/mapping"
)

// Config configures a Component.
type Config struct {
	Server    string // host:port of the server's XEP-0114 listener, e.g. "127.0.0.1:5347"
	Domain    string // component JID D
	Secret    string // shared secret of the component
	QueueSize int    // bounded send queue (default 8192)
	Logger    *zap.Logger
	Metrics   prometheus.Registerer // may be nil
	Domains   mapping.Domains       // for the jabber:iq:gateway prompt
	// ContactResource is the resource of SIP contacts' full JIDs once
	// calls are served (default "phone"): their presence comes from there
	// and their Jingle sessions live there (calls.go).
	ContactResource string
}

// Errors returned by Send; they are mapping's sentinels.
var (
	ErrLinkDown  = mapping.ErrLinkDown
	ErrQueueFull = mapping.ErrQueueFull
)

const (
	defaultQueueSize = 8192
	barrierEvery     = 256
)

// Component is the XEP-0114 component link: the XMPP face of every capability.
type Component struct {
	cfg    Config
	domain string // canonical D
	log    *zap.Logger
	met    *metrics

	// The capabilities served, registered before Run (capabilities.go).
	messages  MessageHandler
	presence  PresenceHandler
	observers []LinkObserver
	calls     CallHandler

	disco   contactDisco // a SIP contact's disco#info with calls (calls.go)
	jmiSent sentJMI      // JMI messages sent, for their bounces

	mu  sync.Mutex // guards cur; held by Send
	cur *session

	up      atomic.Bool
	running atomic.Bool

	idPrefix string
	idSeq    atomic.Uint64

	// Knobs (unexported; tests shorten them).
	minBackoff   time.Duration
	maxBackoff   time.Duration
	resetAfter   time.Duration
	dialTimeout  time.Duration
	keepIdle     time.Duration
	pongTimeout  time.Duration // silence, with a barrier outstanding, that drops the session
	pongMaxWait  time.Duration // bound on an unanswered barrier while other stanzas arrive
	writeTimeout time.Duration
	iqTimeout    time.Duration                                          // bound on the answer to a Jingle IQ
	dialControl  func(network, address string, c syscall.RawConn) error // socket options (tests)
}

// New returns a Component. Register the capabilities it serves, then call
// Run to connect.
func New(cfg Config) *Component {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = defaultQueueSize
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	domain := cfg.Domain
	if j, err := jid.Parse(cfg.Domain); err == nil {
		domain = j.Domainpart()
	}
	if cfg.ContactResource == "" {
		cfg.ContactResource = "phone"
	}
	if cfg.Domains.XMPP == "" {
		cfg.Domains.XMPP = domain
	}
	var rb [6]byte
	_, _ = crand.Read(rb[:])
	c := &Component{
		cfg:          cfg,
		domain:       domain,
		log:          cfg.Logger,
		met:          newMetrics(cfg.Metrics),
		idPrefix:     "stox-" + hex.EncodeToString(rb[:]) + "-",
		minBackoff:   500 * time.Millisecond,
		maxBackoff:   60 * time.Second,
		resetAfter:   30 * time.Second,
		dialTimeout:  10 * time.Second,
		keepIdle:     60 * time.Second,
		pongTimeout:  20 * time.Second,
		pongMaxWait:  10 * time.Minute,
		writeTimeout: 30 * time.Second,
		iqTimeout:    defaultIQTimeout,
		disco:        newContactDisco(),
	}
	return c
}

// Up reports whether the component session is established.
func (c *Component) Up() bool { return c.up.Load() }

func (c *Component) setUp(up bool) {
	if c.up.Swap(up) == up {
		return
	}
	if up {
		c.met.up.Set(1)
	} else {
		c.met.up.Set(0)
	}
	for _, o := range c.observers {
		o.LinkChanged(up)
	}
}

// Send queues m for the XMPP server without blocking. It returns ErrLinkDown
// when no session is established and ErrQueueFull when the queue is full.
// Otherwise ack (which may be nil) is called exactly once from the link's
// goroutine: nil once the server has processed every stanza up to m, a
// *mapping.Failure when an error bounce for m arrived before that, or an error
// wrapping ErrLinkDown when the session was lost first.
func (c *Component) Send(m mapping.XMPPMessage, ack func(error)) error {
	return c.enqueue(&outItem{m: m, ack: ack})
}

// enqueue puts it on the current session's bounded queue without blocking.
func (c *Component) enqueue(it *outItem) error {
	return c.enqueueWith(it, nil)
}

// enqueueWith is enqueue that first calls reg (when not nil) with the
// session it is about to queue on, before the writer can see it.
func (c *Component) enqueueWith(it *outItem, reg func(*session)) error {
	c.mu.Lock()
	s := c.cur
	if s == nil {
		c.mu.Unlock()
		return ErrLinkDown
	}
	if reg != nil {
		reg(s)
	}
	select {
	case s.q <- it:
		c.mu.Unlock()
		c.met.depth.Inc()
		return nil
	default:
		c.mu.Unlock()
		return ErrQueueFull
	}
}

func (c *Component) newID() string {
	return c.idPrefix + fmt.Sprint(c.idSeq.Add(1))
}

// Run connects and keeps the component session up until ctx is done: dial,
// handshake, serve; when the session is lost it reconnects with exponential
// backoff (0.5 s doubling to 60 s, ±20 % jitter; reset after a session that
// lasted more than 30 s). It returns nil once ctx is done.
func (c *Component) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("xmpp: Run called twice")
	}
	defer c.running.Store(false)
	if _, err := jid.Parse(c.cfg.Domain); err != nil || c.cfg.Domain == "" {
		return fmt.Errorf("xmpp: invalid component domain %q: %v", c.cfg.Domain, err)
	}
	backoff := c.minBackoff
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			c.met.reconnects.Inc()
		}
		upFor, err := c.runSessionSafe(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if upFor >= c.resetAfter {
			backoff = c.minBackoff
		}
		wait := jitter(backoff)
		c.log.Warn("xmpp session ended; reconnecting",
			zap.String("server", c.cfg.Server), zap.Duration("up_for", upFor),
			zap.Duration("retry_in", wait), zap.Error(err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, c.maxBackoff)
	}
}

// jitter spreads d by ±20 %.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// runSessionSafe runs one session and turns a panic into an error.
func (c *Component) runSessionSafe(ctx context.Context) (upFor time.Duration, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic in xmpp session", zap.Any("panic", r), zap.Stack("stack"))
			err = fmt.Errorf("xmpp: panic: %v", r)
		}
	}()
	return c.runSession(ctx)
}
