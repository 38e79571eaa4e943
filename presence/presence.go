// Package presence implements the RFC 8048 presence state machines of the
// stox gateway: SIP watchers of XMPP users (stox is the notifier, §5.3,
// §6.2) and XMPP watchers of SIP users (stox is the subscriber, or the
// presence agent of users of its own registrar, §5.2, §6.3).
//
// The package consumes four small interfaces it declares (XMPPLink,
// SIPLink, Store, Locator), and is driven by the SIP stack
// (Subscribe, Notify, Publish, BindingsChanged) and the XMPP component
// (ReceivePresence, LinkChanged). See docs/presence-contract.md.
//
// Design (docs/architecture.md, "The path of a presence change"):
//   - ReceivePresence, BindingsChanged and the work of an accepted NOTIFY
//     only enqueue on one bounded event queue, drained by one goroutine;
//     SIP handlers answer from memory.
//   - Fan-out to SIP watchers: every subscription has one pending slot
//     (coalescing merges changes into it, so it never grows) and sits at
//     most once on the ready queue; Workers goroutines send NOTIFYs, one in
//     flight per subscription, so CSeqs stay ordered. The PIDF of a contact
//     is marshalled once per change, not once per watcher.
//   - All deadlines (expiry, refresh, retry, coalescing windows, PUBLISH
//     expiry) live in one heap driven by one goroutine.
//   - The Store is written behind, last write wins per key: subscriptions
//     on state or dialog changes (not per NOTIFY), presences once per
//     change (not once per watcher stanza). CSeq across restarts: Run
//     resumes each dialog at stored LocalCSeq + 1000, and a NOTIFY or
//     SUBSCRIBE whose CSeq would reach that headroom first waits for a
//     write of the current value (one synchronous write per 1000 requests
//     of a dialog).
//   - One subscription per (Kind, bare JID, AOR), as the Store keys them.
package presence

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"stox.dev/stox/clock"
	"stox.dev/stox/mapping"
)

// XMPPLink is the presence service's view of the XEP-0114 component.
type XMPPLink interface {
	// SendPresence queues a presence stanza (From must be set); non-blocking;
	// mapping.ErrLinkDown / mapping.ErrQueueFull when it cannot.
	SendPresence(p mapping.Presence) error
}

// SIPLink is the presence service's view of the SIP stack (see the
// contract for the header-by-header semantics).
type SIPLink interface {
	// Notify sends an in-dialog NOTIFY with stox as notifier. CSeq is
	// d.LocalCSeq (the caller increments it first).
	Notify(ctx context.Context, d mapping.Dialog, state, contentType string, body []byte) (mapping.Response, error)
	// Subscribe sends SUBSCRIBE with stox as subscriber; initial when
	// d.RemoteTag == "". On 2xx it returns d updated.
	Subscribe(ctx context.Context, d mapping.Dialog, expires time.Duration) (mapping.Response, mapping.Dialog, error)
}

// Locator answers where a SIP user of stox's own domain can be reached
// (the registrar).
type Locator interface {
	// Bindings returns the live bindings of aor from memory; it must not
	// touch the network or the database.
	Bindings(aor string) []mapping.Binding
	// AccountExists reports whether user is a SIP account stox serves.
	AccountExists(ctx context.Context, user string) (bool, error)
}

// Store persists subscriptions and the last known presence per XMPP
// resource so that both survive restarts (RFC 8048 §5; docs/architecture.md, "Durability contract").
type Store interface {
	PutSubscription(ctx context.Context, s mapping.Subscription) error // upsert by (Kind, JID bare, AOR)
	DeleteSubscription(ctx context.Context, kind string, jid mapping.JID, aor string) error
	Subscriptions(ctx context.Context) ([]mapping.Subscription, error)
	PutPresence(ctx context.Context, p mapping.Presence) error // last known per XMPP resource: key p.From (full JID)
	DeletePresence(ctx context.Context, from mapping.JID) error
	Presences(ctx context.Context) ([]mapping.Presence, error)
}

// Metrics receives the presence service's counters; nil in Config is a
// no-op.
type Metrics interface {
	// Notify counts one NOTIFY sent by outcome: "ok", "gone" (481),
	// "timeout", "failed".
	Notify(outcome string)
	// Subscriptions reports the number of subscriptions of a kind
	// (mapping.SIPWatcher, mapping.XMPPWatcher).
	Subscriptions(kind string, n int)
}

type nopMetrics struct{}

func (nopMetrics) Notify(string)             {}
func (nopMetrics) Subscriptions(string, int) {}

// Config configures the presence service. Zero values take the defaults.
type Config struct {
	Domains mapping.Domains
	// Coalesce is the minimum interval between two presence NOTIFYs of one
	// subscription, and between two presence broadcasts of a local SIP user
	// (RFC 3856 §6.10: at most one notification per 5 s); default 5 s.
	// Subscription-state changes (pending→active, terminated) are not
	// rate-limited: they are not presence state.
	Coalesce time.Duration
	// AutoAuthorizeLocal: an XMPP user subscribing to a user of stox's own
	// registrar is authorized at once. nil means true: a SIP phone has no
	// UI to approve a subscription, and stox is that user's presence agent
	// (RFC 8048 §5.2, architecture 1). false answers unsubscribed.
	AutoAuthorizeLocal *bool
	// Workers is the number of goroutines sending NOTIFYs, i.e. of NOTIFY
	// transactions in flight (default 32). Each waits for its answer, so
	// they bound both the overlap of round trips in a fan-out and how many
	// unanswering watchers (up to NotifyTimeout each) can hold up the rest.
	Workers int
	// Transactions bounds concurrent outgoing SUBSCRIBE transactions
	// (default 64); the rest wait for a slot.
	Transactions int
	// RetryBase and RetryMax bound the backoff of a transiently failed
	// SUBSCRIBE (default 1 s doubling to 5 min).
	RetryBase time.Duration
	RetryMax  time.Duration
	// ProbeWait is how long stox waits for the XMPP watcher's server to
	// answer the probe sent before each refresh (RFC 8048 §8.1) before it
	// considers the watcher offline and lets the dialog expire (default 10 s).
	ProbeWait time.Duration
	// NotifyTimeout bounds one NOTIFY or SUBSCRIBE transaction (default 32 s,
	// RFC 3261 Timer F).
	NotifyTimeout time.Duration
	// AskAgain is how long a SIP watcher's authorization request may stay
	// unanswered before stox sends it again (RFC 6121 §3.1.2), doubling
	// after each repeat up to an hour (default 2 min). Pending requests sent
	// before the component link last came up are sent again at once.
	AskAgain time.Duration
	// AskRate bounds those repeats, in stanzas per second (default 50).
	AskRate int
	// EventQueue bounds the XMPP presence stanzas and registrar events
	// waiting to be processed (default 65536); beyond it they are dropped
	// with a log line and a metric. The queue holds pointers, so an idle
	// service pays 8 bytes per slot, not the size of a stanza (a queue of
	// 65,536 events held by value was 15 MB of an idle stox's heap).
	EventQueue int
	Logger     *zap.Logger
	Metrics    Metrics
	// Clock reads the time and keeps every deadline above (coalescing
	// windows, refresh, retry, probe wait, expiry, PUBLISH expiry); nil is
	// the wall clock. The NotifyTimeout of a transaction stays on the wall
	// clock: it bounds the SIP stack's own transaction.
	Clock clock.Clock
}

// Service runs the RFC 8048 state machines. All state is in memory under
// one mutex; the Store is written behind (see writer) and read once by Run.
type Service struct {
	cfg  Config
	clk  clock.Clock
	d    mapping.Domains
	log  *zap.Logger
	met  Metrics
	xmpp XMPPLink
	sip  SIPLink
	st   Store
	loc  Locator

	ctx    context.Context // Run's; set before ready is closed
	ready  chan struct{}
	events chan *event
	wg     sync.WaitGroup
	txSem  chan struct{}

	tm *timers
	wr *writer

	mu       sync.Mutex
	subs     map[subKey]*sub
	byDialog map[dialogKey]*sub // XMPPWatcher subs by (Call-ID, local tag)
	closing  map[dialogKey]time.Time
	pres     map[string]map[string]*cached // presentity bare JID → resource → last known
	authz    map[pairKey]bool              // SIPWatcher pairs the XMPP side authorized
	pubs     map[string]map[string]*pubEntry
	locals   map[string]*localAgent       // AOR → broadcast coalescing state
	byAOR    map[string]map[*sub]struct{} // XMPPWatcher subs by AOR
	pdoc     map[string][]byte            // PIDF of a contact's current state, by bare JID
	work     []*sub                       // NOTIFY ready queue: each sub at most once
	workKick chan struct{}
	counts   map[string]int

	// Repeated authorization requests (reask.go).
	linkGen uint64 // times the component link came up
	askQ    []*sub // SIP watchers to ask again: each at most once
	askKick chan struct{}
	linkUp  chan struct{}
}

// New returns a service; Run must be called before events flow. Requests
// that arrive before Run has loaded the stored state are answered 503.
func New(cfg Config, x XMPPLink, s SIPLink, st Store, loc Locator) *Service {
	if cfg.Coalesce <= 0 {
		cfg.Coalesce = 5 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.Transactions <= 0 {
		cfg.Transactions = 64
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Minute
	}
	if cfg.ProbeWait <= 0 {
		cfg.ProbeWait = 10 * time.Second
	}
	if cfg.NotifyTimeout <= 0 {
		cfg.NotifyTimeout = 32 * time.Second
	}
	if cfg.AskAgain <= 0 {
		cfg.AskAgain = 2 * time.Minute
	}
	if cfg.AskRate <= 0 {
		cfg.AskRate = 50
	}
	if cfg.EventQueue <= 0 {
		cfg.EventQueue = 65536
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
	svc := &Service{
		cfg: cfg, clk: cfg.Clock, d: cfg.Domains, log: cfg.Logger, met: cfg.Metrics,
		xmpp: x, sip: s, st: st, loc: loc,
		ready:    make(chan struct{}),
		events:   make(chan *event, cfg.EventQueue),
		txSem:    make(chan struct{}, cfg.Transactions),
		tm:       newTimers(cfg.Clock),
		subs:     make(map[subKey]*sub),
		byDialog: make(map[dialogKey]*sub),
		closing:  make(map[dialogKey]time.Time),
		pres:     make(map[string]map[string]*cached),
		authz:    make(map[pairKey]bool),
		pubs:     make(map[string]map[string]*pubEntry),
		locals:   make(map[string]*localAgent),
		byAOR:    make(map[string]map[*sub]struct{}),
		pdoc:     make(map[string][]byte),
		workKick: make(chan struct{}, 1),
		counts:   make(map[string]int),
		askKick:  make(chan struct{}, 1),
		linkUp:   make(chan struct{}, 1),
	}
	svc.wr = newWriter(st, svc.log)
	return svc
}

func (s *Service) autoAuthorize() bool {
	return s.cfg.AutoAuthorizeLocal == nil || *s.cfg.AutoAuthorizeLocal
}

// Run loads the stored subscriptions and presences, re-arms their timers,
// probes the presentities of SIP watchers so that NOTIFYs resume with fresh
// state (RFC 8048 §5; docs/architecture.md, "Durability contract"), then processes events until ctx is
// done. It returns after every goroutine it started has stopped.
func (s *Service) Run(ctx context.Context) error {
	s.ctx = ctx
	subs, err := s.st.Subscriptions(ctx)
	if err != nil {
		return fmt.Errorf("presence: load subscriptions: %w", err)
	}
	press, err := s.st.Presences(ctx)
	if err != nil {
		return fmt.Errorf("presence: load presences: %w", err)
	}
	s.restore(subs, press)

	s.wg.Add(4 + s.cfg.Workers)
	go func() { defer s.wg.Done(); s.wr.run(ctx) }()
	go func() { defer s.wg.Done(); s.tm.run(ctx) }()
	go func() { defer s.wg.Done(); s.eventLoop(ctx) }()
	go func() { defer s.wg.Done(); s.asker(ctx) }()
	for range s.cfg.Workers {
		go func() { defer s.wg.Done(); s.worker(ctx) }()
	}
	close(s.ready)
	s.resume()
	<-ctx.Done()
	s.wg.Wait()
	return nil
}

func (s *Service) isReady() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// go runs f on a goroutine owned by Run: every goroutine has an owner and a
// stop (docs/architecture.md).
func (s *Service) goOwned(f func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("panic", zap.Any("panic", r), zap.Stack("stack"))
			}
		}()
		f(s.ctx)
	}()
}

// event is one unit of work for the event loop: an XMPP presence stanza or
// a registrar binding change.
type event struct {
	p    mapping.Presence
	aor  string // BindingsChanged when set
	live int
	n    *mapping.NotifyRequest
}

// ReceivePresence takes a presence stanza read off the component stream.
// It never blocks: the stanza is queued for the event loop (docs/libraries.md:
// handlers decode, enqueue and return); a full queue drops it with a log
// line.
func (s *Service) ReceivePresence(p mapping.Presence) {
	select {
	case s.events <- &event{p: p}:
	default:
		s.met.Notify("dropped")
		s.log.Warn("event queue full, stanza dropped", zap.Stringer("from", p.From), zap.Stringer("to", p.To), zap.String("type", p.Type))
	}
}

// BindingsChanged is called by the registrar when the live bindings of a
// user of stox's own domain change; without PUBLISH state the user's
// presence is derived from registration (0 → unavailable, >0 → available).
// Unlike a stanza, a change is never dropped when the event queue is full:
// the registrar's own goroutine waits (REGISTERs are not held up, their
// changes coalesce), since a lost change would leave watchers with a wrong
// open/closed until the next one.
func (s *Service) BindingsChanged(ctx context.Context, aor string, live int) {
	select {
	case s.events <- &event{aor: aor, live: live}:
	case <-ctx.Done():
	}
}

func (s *Service) eventLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-s.events:
			func() {
				defer func() {
					if r := recover(); r != nil {
						s.log.Error("panic in event", zap.Any("panic", r), zap.Stack("stack"))
					}
				}()
				if ev.n != nil {
					s.notifyEvent(*ev.n)
				} else if ev.aor != "" {
					s.localChanged(ev.aor)
				} else {
					s.handlePresence(ev.p)
				}
			}()
		}
	}
}
