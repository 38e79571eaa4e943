// Package calls is stox's call capability: it bridges a Jingle session on
// the XMPP side (XEP-0166, XEP-0167, XEP-0353 for ringing every device) and
// an INVITE dialog on the SIP side (RFC 3261, RFC 3264), with the media of
// both legs anchored by stox's relay (docs/calls.md).
//
// Each call is owned by one goroutine, started when the call starts and
// ended with it; the stacks' handlers only look the call up and queue the
// event on its inbox, so they never block. The translations are mapping's;
// the relay is the Media port's.
package calls

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"stox.dev/stox/clock"
	"stox.dev/stox/mapping"
)

// ErrNoCapacity is wrapped by Media.Open when no more calls may be relayed
// (too many calls, no free port): the call is refused with 503 and
// Retry-After, or resource-constraint.
var ErrNoCapacity = errors.New("no capacity for another call")

// Config configures the capability.
type Config struct {
	Domains mapping.Domains
	// Trunk is true when an outbound proxy serves users of S that have no
	// binding at stox (as in package im).
	Trunk bool
	// ContactResource is the resource of SIP contacts' JIDs, the full JID
	// a client sends session-initiate to (default "phone").
	ContactResource string
	// RingTimeout ends a call nobody answered (default 60 s): 408 toward
	// SIP, reason timeout toward XMPP.
	RingTimeout time.Duration
	// ProposeTimeout is how long a proceeded JMI proposal waits for the
	// session-initiate (default 30 s).
	ProposeTimeout time.Duration
	// RetryAfter is sent with 503 when the relay is full (default 5 s).
	RetryAfter time.Duration
	// SIPReady, when set, is closed once the SIP stack can send: the BYEs
	// for calls a previous run left behind wait for it.
	SIPReady <-chan struct{}
	Clock    clock.Clock
	Logger   *zap.Logger
	Metrics  Metrics
}

// Metrics receives the capability's counters; cmd/stox backs it with
// Prometheus.
type Metrics interface {
	// Active reports the calls in progress.
	Active(n int)
	// Ended counts one call by direction (mapping.XMPPToSIP,
	// mapping.SIPToXMPP) and outcome (answered, busy, declined, …).
	Ended(direction, outcome string)
}

type nopMetrics struct{}

func (nopMetrics) Active(int)           {}
func (nopMetrics) Ended(string, string) {}

// Service is the call capability.
type Service struct {
	cfg   Config
	log   *zap.Logger
	x     XMPPLink
	s     SIPLink
	loc   Locator
	media Media
	store Store

	mu     sync.Mutex
	ctx    context.Context // Run's; nil before Run
	wg     sync.WaitGroup
	bySID  map[sidKey]*call // a Jingle sid is unique per initiator only (XEP-0166 §7.1)
	byKey  map[mapping.CallKey]*call
	active int
}

// New returns the capability; Run starts it.
func New(cfg Config, x XMPPLink, s SIPLink, loc Locator, media Media, store Store) *Service {
	if cfg.ContactResource == "" {
		cfg.ContactResource = "phone"
	}
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = 60 * time.Second
	}
	if cfg.ProposeTimeout <= 0 {
		cfg.ProposeTimeout = 30 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	return &Service{cfg: cfg, log: cfg.Logger, x: x, s: s, loc: loc, media: media, store: store,
		bySID: map[sidKey]*call{}, byKey: map[mapping.CallKey]*call{}}
}

// Run ends the calls a previous run left behind, serves calls until ctx
// is done, then ends every call in progress on both legs and returns once
// their goroutines have.
func (s *Service) Run(ctx context.Context) error {
	// The records left behind are read before the first call of this run
	// can be recorded, so none of this run's calls is taken for one.
	left := s.leftBehind(ctx)
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.recoverCalls(ctx, left)
	}()
	<-ctx.Done()
	s.wg.Wait()
	return ctx.Err()
}

// start registers c and runs its goroutine; false when the service is not
// running.
func (s *Service) start(c *call) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || s.ctx.Err() != nil {
		return false
	}
	if c.sid != "" {
		s.bySID[sidKey{c.peerBare, c.sid}] = c
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.run(s.ctx)
	}()
	s.active++
	s.cfg.Metrics.Active(s.active)
	return true
}

// sidKey names a Jingle session: the XMPP user's bare JID and the sid.
type sidKey struct {
	peer mapping.JID
	sid  string
}

func (s *Service) bindSID(c *call, sid string) {
	s.mu.Lock()
	s.bySID[sidKey{c.peerBare, sid}] = c
	s.mu.Unlock()
}

func (s *Service) bindKey(c *call, key mapping.CallKey) {
	s.mu.Lock()
	s.byKey[key] = c
	s.mu.Unlock()
}

// forget removes c from the indexes once it has ended.
func (s *Service) forget(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.bySID {
		if v == c {
			delete(s.bySID, k)
		}
	}
	for k, v := range s.byKey {
		if v == c {
			delete(s.byKey, k)
		}
	}
	s.active--
	s.cfg.Metrics.Active(s.active)
}

// callBySID is the call of peer's session sid.
func (s *Service) callBySID(peer mapping.JID, sid string) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bySID[sidKey{peer.Bare(), sid}]
}

func (s *Service) callByKey(key mapping.CallKey) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byKey[key]
}

// Active returns the number of calls in progress.
func (s *Service) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// newID returns a random id for calls and Jingle sessions.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
