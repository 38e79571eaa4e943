package sip

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"
)

// finals stands in for the Completed state of non-INVITE server
// transactions over UDP (RFC 3261 §17.2.2). There, a server transaction
// lives for Timer J (64·T1 = 32 s) after its final response only to send
// that response again to retransmissions of the request. sipgo keeps the
// whole transaction for it — the parsed request and response, timers,
// channels: about 5 KB each, 515 MiB of heap right after 100,000
// REGISTERs at 5,000/s, whose GC metadata and spans outlived the burst in
// RSS (docs/perf.md, "Registrations: heap and RSS"). Instead, stox
// terminates the transaction once its final response is out and keeps only
// the response as sent, under the transaction's key (§17.2.3), in one
// string: about 560 B with the map slot (docs/perf.md, "Idle footprint,
// registrations, presence fan-out"). A retransmission that arrives within
// Timer J gets that response again and is not processed a second time.
// Reliable transports need no entry: Timer J is zero for them (§17.2.2).
type finals struct {
	ttl time.Duration
	log *zap.Logger

	mu sync.Mutex
	// m maps a transaction key to the final response; both strings lie
	// in one allocation (key then response), so an entry costs one object.
	m    map[string]string
	fifo []finalEntry // in the order stored, so by expiry
	head int          // fifo[:head] are gone
	peak int          // the most entries m held since it was last rebuilt
}

type finalEntry struct {
	key string
	exp int64 // Unix ns
}

func newFinals(ttl time.Duration, log *zap.Logger) *finals {
	return &finals{ttl: ttl, log: log, m: make(map[string]string)}
}

// completes reports whether req's server transaction would wait in the
// Completed state after its final response: a non-INVITE request over an
// unreliable transport. (An INVITE's final response is retransmitted by
// Timer G until the ACK, which stays with sipgo.)
func completes(req *sip.Request) bool {
	return req.Method != sip.INVITE && req.Method != sip.ACK && !sip.IsReliable(req.Transport())
}

// replay answers req from the table when it retransmits a request whose
// final response was already sent, and reports whether it did. tx is the
// transaction sipgo opened for the retransmission; it is terminated here.
func (f *finals) replay(req *sip.Request, tx *rtx) bool {
	if !completes(req) {
		return false
	}
	key, err := sip.ServerTxKeyMake(req)
	if err != nil {
		return false
	}
	f.mu.Lock()
	raw, ok := f.m[key]
	f.mu.Unlock()
	if !ok {
		return false
	}
	msg, err := sip.ParseMessage([]byte(raw))
	res, isRes := msg.(*sip.Response)
	if err != nil || !isRes {
		f.log.Error("sip: stored final response does not parse", zap.String("tx", key), zap.Error(err))
		return false
	}
	// Sent where a response to req goes (Via received/rport, RFC 3261
	// §18.2.2), as the first one was.
	to := sip.NewResponseFromRequest(req, res.StatusCode, res.Reason, nil)
	res.SetTransport(to.Transport())
	res.SetDestination(to.Destination())
	if err := tx.Respond(res); err != nil {
		f.log.Debug("sip: resending a final response failed", zap.String("tx", key), zap.Error(err))
	}
	tx.Terminate()
	return true
}

// keep stores the final response tx sent to req and terminates the
// transaction, when req's transaction would otherwise wait for Timer J.
func (f *finals) keep(req *sip.Request, tx *rtx) {
	res := tx.final.Load()
	if res == nil || !completes(req) {
		return
	}
	key, err := sip.ServerTxKeyMake(req)
	if err != nil {
		return
	}
	f.put(key, res.String(), time.Now())
	tx.Terminate()
}

func (f *finals) put(key, res string, now time.Time) {
	both := key + res
	key, res = both[:len(key)], both[len(key):]
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire(now)
	if _, ok := f.m[key]; ok {
		return // a replayed retransmission: the first entry stands
	}
	f.m[key] = res
	f.fifo = append(f.fifo, finalEntry{key: key, exp: now.Add(f.ttl).UnixNano()})
	f.peak = max(f.peak, len(f.m))
}

// expire drops the entries whose Timer J has fired; f.mu must be held.
func (f *finals) expire(now time.Time) {
	ns := now.UnixNano()
	for f.head < len(f.fifo) && f.fifo[f.head].exp <= ns {
		delete(f.m, f.fifo[f.head].key)
		f.fifo[f.head] = finalEntry{}
		f.head++
	}
}

// sweep expires entries and gives back the memory of a burst: a Go map
// never shrinks, so one that fell below a quarter of its peak is rebuilt
// at its size, and the queue is copied once its front half is gone.
func (f *finals) sweep(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire(now)
	if f.peak >= 1024 && len(f.m) < f.peak/4 {
		m := make(map[string]string, len(f.m))
		for k, v := range f.m {
			m[k] = v
		}
		f.m, f.peak = m, len(m)
	}
	if f.head == len(f.fifo) {
		f.fifo, f.head = nil, 0
	} else if f.head >= 1024 && f.head > len(f.fifo)/2 {
		f.fifo, f.head = slices.Clone(f.fifo[f.head:]), 0
	}
}

// run sweeps every second until ctx ends.
func (f *finals) run(ctx context.Context) { every(ctx, time.Second, f.sweep) }

// len is the number of stored responses (tests).
func (f *finals) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}
