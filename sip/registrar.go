package sip

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unique"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// binding is the in-memory form of a mapping.Binding, kept small: the AOR is
// the map key, the Contact and the source share one string (one allocation:
// after a burst of REGISTERs every small object that outlives it pins a
// mostly empty span), the expiry is Unix seconds, the User-Agent is
// interned, and the Call-ID is a 64-bit hash: RFC 3261 §10.3 step 7 only
// compares Call-IDs, and a hash costs 8 bytes where the string cost about 60.
type binding struct {
	cs      string // Contact then source, split at clen
	ua      unique.Handle[string]
	expires int64
	callID  uint64
	cseq    uint32
	clen    uint32
}

// newBinding is a binding of contact from source; the other fields are the
// caller's.
func newBinding(contact, source string) binding {
	return binding{cs: contact + source, clen: uint32(len(contact))}
}

func (b *binding) contact() string { return b.cs[:b.clen] }
func (b *binding) source() string  { return b.cs[b.clen:] }

// fnv64 is the 64-bit FNV-1a hash of s (Call-IDs, AORs), without allocating.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// storedCallID is how a hashed Call-ID is written to the store, and
// loadCallID reads it back (or hashes a Call-ID stored in full).
func storedCallID(h uint64) string { return "fnv64:" + strconv.FormatUint(h, 16) }

func loadCallID(s string) uint64 {
	if v, ok := strings.CutPrefix(s, "fnv64:"); ok {
		if h, err := strconv.ParseUint(v, 16, 64); err == nil {
			return h
		}
	}
	return fnv64(s)
}

// toMapping copies the Contact and the source: they may lie in a block
// packed by compact, which a caller keeping the Binding must not pin.
func (b *binding) toMapping(aor string) mapping.Binding {
	return mapping.Binding{
		AOR:       aor,
		Contact:   strings.Clone(b.contact()),
		Source:    strings.Clone(b.source()),
		CallID:    storedCallID(b.callID),
		CSeq:      b.cseq,
		Expires:   time.Unix(b.expires, 0),
		UserAgent: b.ua.Value(),
	}
}

// writeOp is one binding change for the store; del means delete.
type writeOp struct {
	b   mapping.Binding
	del bool
}

// The write queue holds pointers: an idle registrar pays 8 bytes per slot
// (512 KiB), where 65,536 writeOps held by value were 7.5 MiB of an idle
// stox's heap.
const (
	writeQueueLen = 1 << 16
	batchMax      = 256
	batchWait     = 2 * time.Millisecond
	sweepEvery    = 5 * time.Second
)

// registrar is the RFC 3261 §10.3 registrar for Config.Domain, with an
// in-memory binding cache written through to the Store in batches.
type registrar struct {
	s     *Stack
	mu    sync.RWMutex
	m     map[string][]binding // AOR → bindings
	count int
	q     chan *writeOp

	// churn counts bindings given fresh strings or removed since the last
	// compact; churnSeen is its value at the previous sweep.
	churn, churnSeen int

	pendMu sync.Mutex // guards pend, used by writer and flush
	pend   []*writeOp

	obs bindWatch // live-count changes for the RegistrationObserver
}

func newRegistrar(s *Stack) *registrar {
	return &registrar{s: s, m: make(map[string][]binding), q: make(chan *writeOp, writeQueueLen), obs: newBindWatch()}
}

func (r *registrar) load(bs []mapping.Binding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now().Unix()
	for _, b := range bs {
		if b.Expires.Unix() <= now {
			continue
		}
		nb := newBinding(b.Contact, b.Source)
		nb.callID, nb.cseq = loadCallID(b.CallID), b.CSeq
		nb.expires, nb.ua = b.Expires.Unix(), unique.Make(b.UserAgent)
		r.m[b.AOR] = append(r.m[b.AOR], nb)
		r.count++
	}
	r.s.met.registrations.Set(float64(r.count))
	counts := make(map[string]int, len(r.m))
	for aor, bs := range r.m {
		counts[aor] = len(bs)
	}
	r.obs.seed(counts)
}

// liveCount is the number of bindings in bs not expired at now (Unix s).
func liveCount(bs []binding, now int64) int {
	n := 0
	for i := range bs {
		if bs[i].expires > now {
			n++
		}
	}
	return n
}

// Bindings returns the live bindings of aor from memory (mapping.Locator).
func (s *Stack) Bindings(aor string) []mapping.Binding {
	r := s.reg
	now := time.Now().Unix()
	r.mu.RLock()
	defer r.mu.RUnlock()
	bs := r.m[aor]
	if len(bs) == 0 {
		return nil
	}
	out := make([]mapping.Binding, 0, len(bs))
	for i := range bs {
		if bs[i].expires > now {
			out = append(out, bs[i].toMapping(aor))
		}
	}
	return out
}

// AccountExists reports whether user is an account of stox's registrar
// (mapping.Locator).
func (s *Stack) AccountExists(ctx context.Context, user string) (bool, error) {
	_, ok, err := s.store.Account(ctx, user)
	return ok, err
}

// writer batches binding changes: it collects for at most batchWait or
// batchMax ops, then makes one DeleteBindings and one PutBindings call.
func (r *registrar) writer(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			r.drainQueue()
			return
		case op := <-r.q:
			r.pendMu.Lock()
			r.pend = append(r.pend, op)
			r.pendMu.Unlock()
			timer.Reset(batchWait)
		collect:
			for {
				r.pendMu.Lock()
				n := len(r.pend)
				r.pendMu.Unlock()
				if n >= batchMax {
					break
				}
				select {
				case op := <-r.q:
					r.pendMu.Lock()
					r.pend = append(r.pend, op)
					r.pendMu.Unlock()
				case <-timer.C:
					break collect
				case <-ctx.Done():
					break collect
				}
			}
			timer.Stop()
			if ctx.Err() != nil {
				r.drainQueue()
				return
			}
			r.flush(ctx)
		}
	}
}

func (r *registrar) drainQueue() {
	for {
		select {
		case op := <-r.q:
			r.pendMu.Lock()
			r.pend = append(r.pend, op)
			r.pendMu.Unlock()
		default:
			return
		}
	}
}

// flush writes the pending ops; for each AOR+Contact the last op wins.
func (r *registrar) flush(ctx context.Context) {
	r.drainQueue()
	r.pendMu.Lock()
	ops := r.pend
	r.pend = nil
	r.pendMu.Unlock()
	for len(ops) > 0 {
		n := min(len(ops), batchMax)
		r.write(ctx, ops[:n])
		ops = ops[n:]
	}
}

func (r *registrar) write(ctx context.Context, ops []*writeOp) {
	type key struct{ aor, contact string }
	last := make(map[key]int, len(ops))
	for i, op := range ops {
		last[key{op.b.AOR, op.b.Contact}] = i
	}
	var puts, dels []mapping.Binding
	for i, op := range ops {
		if last[key{op.b.AOR, op.b.Contact}] != i {
			continue
		}
		if op.del {
			dels = append(dels, op.b)
		} else {
			puts = append(puts, op.b)
		}
	}
	if len(dels) > 0 {
		if err := r.s.store.DeleteBindings(ctx, dels); err != nil {
			r.s.log.Error("sip: deleting bindings", zap.Int("n", len(dels)), zap.Error(err))
		}
	}
	if len(puts) > 0 {
		if err := r.s.store.PutBindings(ctx, puts); err != nil {
			r.s.log.Error("sip: storing bindings", zap.Int("n", len(puts)), zap.Error(err))
		}
	}
}

// sweeper removes expired bindings from memory (and the store) periodically.
func (r *registrar) sweeper(ctx context.Context) { every(ctx, sweepEvery, r.sweep) }

func (r *registrar) sweep(now time.Time) {
	ts := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, bs := range r.m {
		if !anyExpired(bs, ts) {
			continue
		}
		// The key may lie in compact's packed block: what leaves the
		// registrar (the watcher's marks, the presence service's maps) gets
		// its own copy, or one long-lived reference would keep a whole old
		// block alive after the next compact.
		aor := strings.Clone(key)
		// A fresh slice, never bs[:0]: a REGISTER handler may still be
		// reading bs after unlocking, to build its 200 (found by -race).
		keep := make([]binding, 0, len(bs))
		for _, b := range bs {
			if b.expires > ts {
				keep = append(keep, b)
				continue
			}
			r.obs.mark(aor)
			r.count--
			r.churn++
			select {
			case r.q <- &writeOp{b: b.toMapping(aor), del: true}:
			default: // the store filters expired bindings anyway
			}
		}
		if len(keep) == 0 {
			delete(r.m, key)
		} else {
			r.m[key] = keep
		}
	}
	r.s.met.registrations.Set(float64(r.count))
	// Compact once at least 64 bindings changed and the last interval saw
	// at most an eighth of those changes: a burst is over (even a small
	// tail of loose bindings left by a burst pins many spans), or, under a
	// steady trickle of changes, every eighth sweep (40 s) at the most.
	grown := r.churn - r.churnSeen
	r.churnSeen = r.churn
	if r.churn >= 64 && grown <= r.churn/8 {
		r.compact()
	}
}

// compact copies every AOR, Contact and source into one string and every
// binding into one array, and rebuilds the map at its current size. After a
// burst of REGISTERs the small objects of the bindings are scattered among
// the burst's garbage (sipgo's transactions), each pinning a mostly empty
// span (with 100,000 AORs this was as much heap again as the bindings
// themselves), and the map keeps the size of its peak: packed, they cost
// their bytes only. Old slices are not modified (handle copies before it
// writes), so readers that loaded them before the lock are unaffected.
// r.mu must be held.
func (r *registrar) compact() {
	type entry struct {
		aor string
		bs  []binding
	}
	ents := make([]entry, 0, len(r.m))
	size, n := 0, 0
	for aor, bs := range r.m {
		ents = append(ents, entry{aor, bs})
		size += len(aor)
		for i := range bs {
			size += len(bs[i].cs)
		}
		n += len(bs)
	}
	var sb strings.Builder
	sb.Grow(size)
	for _, e := range ents {
		sb.WriteString(e.aor)
		for i := range e.bs {
			sb.WriteString(e.bs[i].cs)
		}
	}
	str, all := sb.String(), make([]binding, n)
	m := make(map[string][]binding, len(ents))
	for _, e := range ents {
		aor := str[:len(e.aor)]
		str = str[len(e.aor):]
		bs := all[:len(e.bs):len(e.bs)]
		all = all[len(e.bs):]
		copy(bs, e.bs)
		for i := range bs {
			bs[i].cs, str = str[:len(bs[i].cs)], str[len(bs[i].cs):]
		}
		m[aor] = bs
	}
	r.m = m
	r.churn, r.churnSeen = 0, 0
}

// handle is the REGISTER handler (RFC 3261 §10.3).
func (r *registrar) handle(req *sip.Request, tx *rtx) {
	s := r.s
	cfg := &s.cfg
	to := req.To()
	if to == nil || req.CallID() == nil || req.CSeq() == nil {
		s.respond(req, tx, 400, "Bad Request", nil)
		return
	}
	log := s.flow(zap.String("call_id", callID(req)), zap.Stringer("to", &to.Address))
	// Step 1: only our own domain (we are not a proxy for others). Many UAs
	// put the registrar's IP address in the Request-URI; the request reached
	// us, so an IP literal names this registrar. The AOR (To) decides.
	ruriOurs := strings.EqualFold(req.Recipient.Host, cfg.Domain) || net.ParseIP(strings.Trim(req.Recipient.Host, "[]")) != nil
	if !ruriOurs || !strings.EqualFold(to.Address.Host, cfg.Domain) {
		log.Debug("register: not our domain")
		s.respond(req, tx, 403, "Forbidden (domain not served)", nil)
		return
	}
	// Steps 2-3: Require is not supported; authenticate (step 3) and
	// authorise: the digest username must be the To user (step 4).
	// Trusted peers (a front proxy that authenticated the user) skip digest.
	user := pctDecode(to.Address.User)
	if !s.trusted(req.Source()) && !s.authenticate(req, tx, user, false) {
		return
	}
	aor := aorOf(to.Address.User, cfg.Domain)

	// Step 6: Contacts and expiry.
	now := time.Now()
	var hdrExpires = -1
	if h := req.GetHeader("Expires"); h != nil {
		v, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
		if err != nil {
			s.respond(req, tx, 400, "Bad Expires", nil)
			return
		}
		hdrExpires = int(min(v, 1<<31-1))
	}
	cseq := req.CSeq().SeqNo
	cid := fnv64(callID(req))
	ua := ""
	if h := req.GetHeader("User-Agent"); h != nil {
		ua = h.Value()
	}
	src := strings.ToLower(req.Transport()) + ":" + req.Source()

	type change struct {
		contact string
		expires int // seconds; 0 = remove
	}
	var changes []change
	wildcard := false
	hs := req.GetHeaders("Contact")
	for _, h := range hs {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			s.respond(req, tx, 400, "Bad Contact", nil)
			return
		}
		if c.Address.Wildcard {
			wildcard = true
			continue
		}
		exp := hdrExpires
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				s.respond(req, tx, 400, "Bad Contact expires", nil)
				return
			}
			exp = int(min(n, 1<<31-1))
		}
		if exp < 0 {
			exp = int(cfg.DefaultExpires / time.Second)
		}
		if exp > 0 && time.Duration(exp)*time.Second < cfg.MinExpires {
			// RFC 3261 §10.3 step 7 / §20.23: 423 with Min-Expires.
			s.respond(req, tx, 423, "Interval Too Brief", []sip.Header{
				sip.NewHeader("Min-Expires", strconv.Itoa(int(cfg.MinExpires/time.Second))),
			})
			return
		}
		if time.Duration(exp)*time.Second > cfg.MaxExpires {
			exp = int(cfg.MaxExpires / time.Second)
		}
		changes = append(changes, change{contact: contactKey(&c.Address), expires: exp})
	}
	if wildcard && (len(hs) != 1 || hdrExpires != 0) {
		// §10.3 step 6: "*" only alone and with Expires: 0.
		s.respond(req, tx, 400, "Invalid Contact *", nil)
		return
	}

	// Step 7, atomically against concurrent REGISTERs for the AOR.
	r.mu.Lock()
	bs := append([]binding(nil), r.m[aor]...)
	before := len(bs)
	liveBefore := liveCount(bs, now.Unix())
	var ops []*writeOp
	if wildcard {
		for _, b := range bs {
			if b.callID == cid && cseq <= b.cseq {
				r.mu.Unlock()
				s.respond(req, tx, 500, "Out of Order Request", nil)
				return
			}
		}
		for _, b := range bs {
			ops = append(ops, &writeOp{b: b.toMapping(aor), del: true})
		}
		r.churn += len(bs)
		bs = bs[:0]
	} else {
		for _, ch := range changes {
			i := -1
			for j := range bs {
				if bs[j].contact() == ch.contact {
					i = j
					break
				}
			}
			if i >= 0 && bs[i].callID == cid && cseq <= bs[i].cseq {
				r.mu.Unlock()
				s.respond(req, tx, 500, "Out of Order Request", nil)
				return
			}
			var nb binding
			if i >= 0 && bs[i].contact() == ch.contact && bs[i].source() == src {
				nb = bs[i] // a refresh: keep the strings, allocate nothing
			} else {
				nb = newBinding(ch.contact, src)
				r.churn++
			}
			nb.callID, nb.cseq, nb.expires, nb.ua = cid, cseq, now.Unix()+int64(ch.expires), unique.Make(ua)
			switch {
			case ch.expires == 0 && i >= 0:
				ops = append(ops, &writeOp{b: bs[i].toMapping(aor), del: true})
				bs = append(bs[:i], bs[i+1:]...)
				r.churn++
			case ch.expires == 0:
			case i >= 0:
				bs[i] = nb
				ops = append(ops, &writeOp{b: nb.toMapping(aor)})
			default:
				bs = append(bs, nb)
				ops = append(ops, &writeOp{b: nb.toMapping(aor)})
			}
		}
	}
	// Write-through queue is bounded: refuse rather than lose the change.
	if len(r.q)+len(ops) > cap(r.q) {
		r.mu.Unlock()
		s.respond(req, tx, 503, "Service Unavailable", []sip.Header{retryAfter(time.Second)})
		return
	}
	for _, op := range ops {
		r.q <- op
	}
	if len(bs) == 0 {
		delete(r.m, aor)
	} else {
		r.m[aor] = bs
	}
	r.count += len(bs) - before
	s.met.registrations.Set(float64(r.count))
	if liveCount(bs, now.Unix()) != liveBefore {
		r.obs.mark(aor) // under r.mu, so marks follow the order of changes
	}
	r.mu.Unlock()

	// Step 8: 200 with every current binding and its remaining expiry.
	hdrs := make([]sip.Header, 0, len(bs)+1)
	for _, b := range bs {
		left := b.expires - now.Unix()
		if left <= 0 {
			continue
		}
		hdrs = append(hdrs, sip.NewHeader("Contact", "<"+b.contact()+">;expires="+strconv.FormatInt(left, 10)))
	}
	hdrs = append(hdrs, sip.NewHeader("Date", now.UTC().Format(time.RFC1123[:len(time.RFC1123)-3]+"GMT")))
	log.Debug("register ok", zap.Int("bindings", len(bs)))
	s.respond(req, tx, 200, "OK", hdrs)
}

// contactKey is the Contact URI as stored and compared: the URI without the
// header parameters (q, expires), as sent.
func contactKey(u *sip.Uri) string { return u.String() }

func anyExpired(bs []binding, ts int64) bool {
	for _, b := range bs {
		if b.expires <= ts {
			return true
		}
	}
	return false
}
