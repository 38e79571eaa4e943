package presence

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"go.uber.org/zap"

	"stox.dev/stox/clock"
	"stox.dev/stox/mapping"
)

// subKey is the Store's key of a subscription: (Kind, bare JID, AOR).
type subKey struct {
	kind string
	jid  string // bare JID
	aor  string
}

// pairKey is an (XMPP presentity, SIP watcher) pair.
type pairKey struct {
	jid string
	aor string
}

type dialogKey struct {
	callID   string
	localTag string
}

// Notification bodies of a pending NOTIFY (the per-subscription slot).
const (
	bodyNone    = iota // no body (pending, active after subscribed, rejected)
	bodyCurrent        // the current PIDF when known, else no body (RFC 8048 §5.3.2)
	bodyClosed         // a PIDF with every tuple closed (RFC 8048 §5.3.3)
)

// sub is one subscription with its in-memory machinery. Fields are guarded
// by Service.mu.
type sub struct {
	s    mapping.Subscription
	key  subKey
	gone bool // removed; late callbacks ignore it
	// bob is s.AOR parsed, without gr: the SIP user an XMPPWatcher watches.
	// It is parsed once, where the subscription is made or loaded, so the
	// paths that address him cannot meet a malformed AOR.
	bob mapping.URI

	// durableCSeq is the highest LocalCSeq the Store is known to hold.
	durableCSeq uint32

	// SIPWatcher: the bounded pending slot. Coalescing merges every
	// change into it, so it never grows (RFC 3856 §6.10).
	due      bool
	dueNow   bool   // a subscription-state change: not rate-limited
	dueBody  int    // body* constant
	term     string // terminated reason once the subscription is ending
	queued   bool   // in Service.work
	inflight bool
	lastPres time.Time // when the last presence NOTIFY was sent
	window   bool      // a coalescing timer is armed
	timeouts int       // consecutive NOTIFY timeouts / 408
	expGen   uint64
	// Repeats of the authorization request while pending (reask.go).
	askedOn   uint64 // Service.linkGen when it was last sent
	asks      int    // repeats so far (backoff)
	askTm     uint64 // repeat timer generation
	askQueued bool   // in Service.askQ

	// XMPPWatcher (remote SIP presentity): stox is the subscriber.
	txn     bool   // a SUBSCRIBE transaction is in flight
	again   bool   // another SUBSCRIBE is wanted once txn ends
	unsub   bool   // the XMPP watcher unsubscribed: close and forget
	online  bool   // the watcher's server answered recently (RFC 8048 §8.1)
	probing bool   // a probe before refresh is outstanding
	refGen  uint64 // refresh/retry timer generation
	asked   time.Duration
	sent    map[string]bool // resources last sent available to the watcher
}

// cached is the last known presence of one XMPP resource.
type cached struct {
	p    mapping.Presence
	when time.Time
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// timers is a min-heap of deadlines behind one clock timer armed for the
// earliest: every refresh, expiry, retry and coalescing deadline lives
// here, not in a goroutine or runtime timer per subscription. Due
// callbacks run one at a time, in deadline order, on the clock's timer
// goroutine (on Advance's with a fake clock) and must not block; they check
// a generation to ignore re-armed entries.
type timers struct {
	clk  clock.Clock
	fire sync.Mutex // held while callbacks run: one firing at a time

	mu      sync.Mutex
	h       timerHeap
	seq     uint64
	next    clock.Timer // armed for armedAt, the earliest deadline
	armedAt time.Time
	stopped bool // Run is over: nothing fires any more
}

type timerEntry struct {
	at  time.Time
	seq uint64
	fn  func()
}

type timerHeap []timerEntry

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = timerEntry{}
	*h = old[:len(old)-1]
	return e
}

func newTimers(clk clock.Clock) *timers { return &timers{clk: clk} }

// at runs fn once the clock reads when or later.
func (t *timers) at(when time.Time, fn func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	heap.Push(&t.h, timerEntry{at: when, seq: t.seq, fn: fn})
	t.arm()
}

// arm sets the clock timer for the earliest deadline unless it is already
// set for it or earlier. t.mu is held.
func (t *timers) arm() {
	if t.stopped || t.h.Len() == 0 {
		return
	}
	first := t.h[0].at
	if t.next != nil && !first.Before(t.armedAt) {
		return
	}
	if t.next != nil {
		t.next.Stop()
	}
	t.armedAt = first
	t.next = t.clk.AfterFunc(first.Sub(t.clk.Now()), t.due)
}

// due runs the callbacks whose deadline has come, then arms the clock
// timer for the next deadline (a callback that armed one already due runs
// on that timer's firing, not in this loop).
func (t *timers) due() {
	t.fire.Lock()
	defer t.fire.Unlock()
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	now := t.clk.Now()
	var fns []func()
	for t.h.Len() > 0 && !t.h[0].at.After(now) {
		fns = append(fns, heap.Pop(&t.h).(timerEntry).fn)
	}
	t.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.armedAt.After(now) {
		t.next = nil // spent: this firing was its own
	}
	t.arm()
}

// run keeps the deadlines armed until ctx is done; it returns once no
// callback is running, and none runs after.
func (t *timers) run(ctx context.Context) {
	<-ctx.Done()
	t.fire.Lock() // waits for a firing in progress; later ones see stopped
	defer t.fire.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	if t.next != nil {
		t.next.Stop()
	}
}

// writer writes subscriptions and presences behind the state machines
// (docs/architecture.md, "Rules that keep a gateway alive": presence is cached in memory and written through in
// batches, never a database round trip on the receive path). Pending
// operations are kept per key, last one wins, so a burst of changes of one
// subscription costs one write. A caller that needs durability before it
// acts (the CSeq headroom, see notifier.go) waits for its operation.
type writer struct {
	st    Store
	log   *zap.Logger
	mu    sync.Mutex
	ops   map[string]*writeOp
	order []string
	busy  bool
	kick  chan struct{}
	idle  chan struct{} // closed and replaced whenever the queue drains (tests)
}

type writeOp struct {
	sub     *mapping.Subscription
	delSub  *mapping.Subscription // Kind, JID, AOR
	pres    *mapping.Presence
	delPres *mapping.JID
	done    []func(error)
}

func newWriter(st Store, log *zap.Logger) *writer {
	return &writer{st: st, log: log, ops: make(map[string]*writeOp), kick: make(chan struct{}, 1), idle: make(chan struct{})}
}

func (w *writer) put(key string, op *writeOp) {
	w.mu.Lock()
	if old, ok := w.ops[key]; ok {
		op.done = append(old.done, op.done...)
	} else {
		w.order = append(w.order, key)
	}
	w.ops[key] = op
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func subWriteKey(k subKey) string { return "s\x00" + k.kind + "\x00" + k.jid + "\x00" + k.aor }

func (w *writer) run(ctx context.Context) {
	for {
		w.mu.Lock()
		if len(w.order) == 0 {
			close(w.idle)
			w.idle = make(chan struct{})
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-w.kick:
			}
			continue
		}
		w.busy = true
		key := w.order[0]
		w.order = w.order[1:]
		op := w.ops[key]
		delete(w.ops, key)
		w.mu.Unlock()
		var err error
		switch {
		case op.sub != nil:
			err = w.st.PutSubscription(ctx, *op.sub)
		case op.delSub != nil:
			err = w.st.DeleteSubscription(ctx, op.delSub.Kind, op.delSub.JID, op.delSub.AOR)
		case op.pres != nil:
			err = w.st.PutPresence(ctx, *op.pres)
		case op.delPres != nil:
			err = w.st.DeletePresence(ctx, *op.delPres)
		}
		if err != nil && ctx.Err() == nil {
			w.log.Error("store write failed", zap.Any("key", key), zap.Error(err))
		}
		for _, f := range op.done {
			f(err)
		}
		w.mu.Lock()
		w.busy = false
		w.mu.Unlock()
	}
}

// wait returns a channel closed once every operation queued so far is
// written (tests and shutdown).
func (w *writer) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.order) == 0 && !w.busy {
		c := make(chan struct{})
		close(c)
		return c
	}
	return w.idle
}
