package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	"stox.dev/stox/mapping"
)

const barrierPrefix = "b-"

var (
	errPingTimeout = errors.New("xmpp: no answer to ping/barrier in time")
	errPingIgnored = errors.New("xmpp: ping/barrier never answered although the server sends other stanzas")
	barrierSeq     atomic.Uint64 // process-wide so that ids never repeat across sessions
)

// outItem is one message handed to Send, or one presence handed to
// SendPresence (p set; m.ID carries its id and ack is nil).
type outItem struct {
	m       mapping.XMPPMessage
	p       *mapping.Presence
	caps    string       // XEP-0115 ver to put in p ("" for none)
	iq      bool         // a Jingle IQ set of action, payload the <jingle/> (calls.go)
	action  string       // its action, for the metric
	jmi     *mapping.JMI // a JMI message, payload its element (calls.go)
	payload []byte       // marshalled and checked (marshalPayload)
	ack     func(error)
	id      string           // wire id
	done    bool             // removed from inflight (guarded by session.mu)
	fail    *mapping.Failure // bounce received (guarded by session.mu)
	acked   bool             // ack called (writer goroutine / teardown only)
}

// session is one established XEP-0114 stream.
type session struct {
	c   *Component
	xs  *xmpp.Session
	log *zap.Logger
	q   chan *outItem

	notify chan struct{} // cap 1: wakes the writer after handler events

	mu          sync.Mutex // guards the fields below; never held across ack or I/O
	inflight    map[string][]*outItem
	iqs         map[string]*pendingIQ // Jingle IQs waiting for an answer, by id
	bounced     []*outItem
	barrierID   string // outstanding barrier ("" when none)
	barrierDone bool   // its result (or error) arrived

	// lastIn is the unix nanos of the last inbound stanza: any stanza from
	// the server proves it alive, not only the answer to a ping.
	lastIn atomic.Int64

	// Owned by the reader (the stream handler's goroutine).
	presFrom jidCache // the last presence from address parsed

	// Owned by the writer goroutine, read by teardown after it exits.
	written []*outItem // written since the outstanding barrier was sent
	covered []*outItem // written before the outstanding barrier
}

func (c *Component) runSession(ctx context.Context) (upFor time.Duration, err error) {
	d := net.Dialer{Timeout: c.dialTimeout, Control: c.dialControl}
	conn, err := d.DialContext(ctx, "tcp", c.cfg.Server)
	if err != nil {
		return 0, fmt.Errorf("xmpp: dial %s: %w", c.cfg.Server, err)
	}
	pc := &progressConn{Conn: conn, timeout: c.writeTimeout}
	hctx, hcancel := context.WithTimeout(ctx, c.dialTimeout)
	xs, err := component.NewSession(hctx, jid.MustParse(c.domain), []byte(c.cfg.Secret), pc)
	hcancel()
	if err != nil {
		conn.Close()
		return 0, fmt.Errorf("xmpp: component handshake with %s as %s: %w", c.cfg.Server, c.domain, err)
	}

	s := &session{
		c:        c,
		xs:       xs,
		log:      c.log,
		q:        make(chan *outItem, c.cfg.QueueSize),
		notify:   make(chan struct{}, 1),
		inflight: make(map[string][]*outItem),
		iqs:      make(map[string]*pendingIQ),
	}
	s.lastIn.Store(time.Now().UnixNano())
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	started := time.Now()
	c.mu.Lock()
	c.cur = s
	c.mu.Unlock()
	c.setUp(true)
	c.log.Info("xmpp link up", zap.String("server", c.cfg.Server), zap.String("domain", c.domain))

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer func() {
			if r := recover(); r != nil {
				c.log.Error("panic in xmpp stream handler", zap.Any("panic", r), zap.Stack("stack"))
				cancel(fmt.Errorf("xmpp: panic in handler: %v", r))
			}
		}()
		err := xs.Serve(s.handler())
		if err == nil {
			err = io.EOF
		}
		cancel(fmt.Errorf("xmpp: stream closed: %w", err))
	}()
	go func() {
		defer wg.Done()
		defer func() {
			if r := recover(); r != nil {
				c.log.Error("panic in xmpp writer", zap.Any("panic", r), zap.Stack("stack"))
				cancel(fmt.Errorf("xmpp: panic in writer: %v", r))
			}
		}()
		cancel(s.writer(sctx))
	}()

	<-sctx.Done()
	cause := context.Cause(sctx)
	upFor = time.Since(started)

	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
	c.setUp(false)
	c.log.Info("xmpp link down", zap.String("server", c.cfg.Server), zap.Duration("up_for", upFor), zap.NamedError("cause", cause))

	// Unblock a writer stuck on a full socket, say goodbye, close.
	pc.shut(time.Second)
	_ = xs.Close()
	_ = conn.Close()
	wg.Wait()

	s.failAll(cause)
	if ctx.Err() != nil {
		return upFor, ctx.Err()
	}
	return upFor, cause
}

// failAll acknowledges everything the session did not finish.
func (s *session) failAll(cause error) {
	err := fmt.Errorf("%w: %v", mapping.ErrLinkDown, cause)
	s.failIQs(err)
	s.mu.Lock()
	bounced := s.bounced
	s.bounced = nil
	s.mu.Unlock()
	for _, it := range bounced {
		s.ack(it, it.fail)
	}
	for _, list := range [][]*outItem{s.covered, s.written} {
		for _, it := range list {
			s.ack(it, err)
		}
	}
	s.covered, s.written = nil, nil
	for {
		select {
		case it := <-s.q:
			s.c.met.depth.Dec()
			s.ack(it, err)
		default:
			return
		}
	}
}

// ack calls it.ack at most once, shielding the link from a panicking callback.
func (s *session) ack(it *outItem, err error) {
	if it.acked {
		return
	}
	it.acked = true
	if it.ack == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in send ack callback", zap.Any("panic", r), zap.String("stanza_id", it.id), zap.Stack("stack"))
		}
	}()
	if f, ok := err.(*mapping.Failure); ok && f == nil {
		err = nil
	}
	it.ack(err)
}

func (s *session) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// quiet is how long the server has sent nothing.
func (s *session) quiet() time.Duration {
	return time.Since(time.Unix(0, s.lastIn.Load()))
}

// writer drains the queue, writes messages and barriers, and acknowledges.
//
// Liveness: any inbound stanza proves the server alive. A keep-alive ping
// goes out only after keepIdle without inbound traffic, and the session is
// dropped only when a barrier is outstanding and the server has sent nothing
// at all for pongTimeout. A busy server answers the barrier late, since it
// processes the component's stanzas in order, but keeps routing stanzas to
// it meanwhile: that is a slow server, not a dead one. The one bound on a
// talking server is pongMaxWait for a barrier that is never answered.
func (s *session) writer(ctx context.Context) error {
	c := s.c
	idle := time.NewTimer(c.keepIdle)
	defer idle.Stop()
	var pong *time.Timer
	var barrierSent time.Time
	defer func() {
		if pong != nil {
			pong.Stop()
		}
	}()

	sendBarrier := func(w xmlstream.TokenWriter) error {
		id := barrierPrefix + strconv.FormatUint(barrierSeq.Add(1), 10)
		s.mu.Lock()
		s.barrierID, s.barrierDone = id, false
		s.mu.Unlock()
		s.covered, s.written = s.written, nil
		barrierSent = time.Now()
		if pong == nil {
			pong = time.NewTimer(c.pongTimeout)
		} else {
			pong.Reset(c.pongTimeout)
		}
		c.met.stanzas.WithLabelValues("out", "barrier").Inc()
		return encodeBarrier(w, id, c.domain)
	}
	barrierOutstanding := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.barrierID != ""
	}

	for {
		// Bound what is written but unacknowledged: stop draining the queue
		// while that many are waiting for a barrier.
		q := s.q
		if len(s.written)+len(s.covered) >= c.cfg.QueueSize {
			q = nil
		}
		var pongC <-chan time.Time
		if pong != nil && barrierOutstanding() {
			pongC = pong.C
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)

		case it := <-q:
			// A barrier covers at most every messages (fewer with a queue
			// smaller than barrierEvery, so that the in-flight window below
			// always ends in a barrier).
			every := min(barrierEvery, c.cfg.QueueSize)
			batch := []*outItem{it}
		drain:
			for len(batch) < every && len(s.written)+len(s.covered)+len(batch) < c.cfg.QueueSize {
				select {
				case it := <-s.q:
					batch = append(batch, it)
				default:
					break drain
				}
			}
			c.met.depth.Sub(float64(len(batch)))
			s.mu.Lock()
			for _, it := range batch {
				it.id = it.m.ID
				if it.id == "" {
					it.id = c.newID()
				}
				s.inflight[it.id] = append(s.inflight[it.id], it)
			}
			needBarrier := s.barrierID == "" && (len(s.q) == 0 || len(s.written)+len(batch) >= every)
			s.mu.Unlock()
			s.written = append(s.written, batch...)
			err := s.write(func(w xmlstream.TokenWriter) error {
				for _, it := range batch {
					switch {
					case it.p != nil:
						if err := encodePresenceCaps(w, it.p, it.id, c.domain, it.caps); err != nil {
							return err
						}
						c.met.stanzas.WithLabelValues("out", "presence").Inc()
						continue
					case it.iq:
						if err := encodeJingleIQ(w, it, c.domain); err != nil {
							return err
						}
						c.met.stanzas.WithLabelValues("out", "iq").Inc()
						c.met.jingle.WithLabelValues("out", actionLabel(it.action)).Inc()
						continue
					case it.jmi != nil:
						if err := encodeJMI(w, it, c.domain); err != nil {
							return err
						}
						c.met.stanzas.WithLabelValues("out", "message").Inc()
						c.met.jmi.WithLabelValues("out", it.jmi.Kind).Inc()
						continue
					}
					if err := encodeMessage(w, &it.m, it.id, c.domain); err != nil {
						return err
					}
					c.met.stanzas.WithLabelValues("out", "message").Inc()
					if ce := s.log.Check(zap.DebugLevel, "xmpp message out"); ce != nil {
						ce.Write(zap.String("stanza_id", it.id), zap.String("from", it.m.From.String()), zap.String("to", it.m.To.String()), zap.String("type", it.m.Type))
					}
				}
				if needBarrier {
					return sendBarrier(w)
				}
				return nil
			})
			if err != nil {
				return err
			}

		case <-s.notify:
			s.settle()
			if len(s.written) > 0 && !barrierOutstanding() {
				if err := s.write(sendBarrier); err != nil {
					return err
				}
			}

		case <-idle.C:
			if quiet := s.quiet(); quiet < c.keepIdle {
				idle.Reset(c.keepIdle - quiet)
				continue
			}
			if !barrierOutstanding() {
				// Keep-alive: an empty barrier is an XMPP ping (XEP-0199
				// §4.2) that makes the round trip through the server.
				if err := s.write(sendBarrier); err != nil {
					return err
				}
			}
			idle.Reset(c.keepIdle)

		case <-pongC:
			waited := time.Since(barrierSent)
			if waited >= c.pongMaxWait {
				return fmt.Errorf("%w (%s)", errPingIgnored, waited.Round(time.Millisecond))
			}
			quiet := s.quiet()
			if quiet >= c.pongTimeout {
				return fmt.Errorf("%w (nothing received for %s)", errPingTimeout, quiet.Round(time.Millisecond))
			}
			// The answer is late but the server talks: wait until it has
			// been silent for pongTimeout.
			pong.Reset(min(c.pongTimeout-quiet, c.pongMaxWait-waited))
		}
	}
}

// settle acknowledges bounces and, when the outstanding barrier came back,
// every message it covers that was not bounced.
func (s *session) settle() {
	s.mu.Lock()
	bounced := s.bounced
	s.bounced = nil
	var ok []*outItem
	if s.barrierID != "" && s.barrierDone {
		for _, it := range s.covered {
			if it.done {
				continue // bounced: acknowledged through bounced
			}
			it.done = true
			s.removeInflight(it)
			ok = append(ok, it)
		}
		s.covered = nil
		s.barrierID, s.barrierDone = "", false
	}
	s.mu.Unlock()
	for _, it := range bounced {
		s.ack(it, it.fail)
	}
	for _, it := range ok {
		s.ack(it, nil)
	}
}

// removeInflight drops it from the inflight index; s.mu must be held.
func (s *session) removeInflight(it *outItem) {
	list := s.inflight[it.id]
	for i, x := range list {
		if x == it {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.inflight, it.id)
	} else {
		s.inflight[it.id] = list
	}
}

// write runs f with the session's token writer held; the connection
// bounds each write by the time without progress (progressConn).
func (s *session) write(f func(w xmlstream.TokenWriter) error) error {
	w := s.xs.TokenWriter()
	err := f(w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("xmpp: write: %w", err)
	}
	return nil
}

// encodeBarrier writes <iq type='get' id=id from=D to=D><ping/></iq>.
func encodeBarrier(w xmlstream.TokenWriter, id, domain string) error {
	start := xml.StartElement{Name: xml.Name{Local: "iq"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "type"}, Value: "get"},
		{Name: xml.Name{Local: "id"}, Value: id},
		{Name: xml.Name{Local: "from"}, Value: domain},
		{Name: xml.Name{Local: "to"}, Value: domain},
	}}
	ping := xml.StartElement{Name: xml.Name{Space: nsPing, Local: "ping"}}
	for _, t := range []xml.Token{start, ping, ping.End(), start.End()} {
		if err := w.EncodeToken(t); err != nil {
			return err
		}
	}
	return nil
}

// onBarrierReply is called from the stream handler for a result or error to
// one of our barriers.
func (s *session) onBarrierReply(id string) {
	s.mu.Lock()
	match := s.barrierID == id
	if match {
		s.barrierDone = true
	}
	s.mu.Unlock()
	if match {
		s.wake()
	}
}

// onBounce matches an inbound error message against in-flight messages. It
// reports whether the bounce was consumed (and must not reach the router).
func (s *session) onBounce(id string, f *mapping.Failure) bool {
	if id == "" {
		return false
	}
	s.mu.Lock()
	list := s.inflight[id]
	var it *outItem
	for _, x := range list {
		if !x.done {
			it = x
			break
		}
	}
	if it != nil {
		it.done = true
		it.fail = f
		s.removeInflight(it)
		s.bounced = append(s.bounced, it)
	}
	s.mu.Unlock()
	if it != nil {
		s.wake()
	}
	return it != nil
}

// progressConn bounds a write by the time the server takes no byte of it,
// not by the time the whole write takes: a server that reads the stream
// slowly is busy, not dead. Each underlying write gets timeout; one that
// times out after some bytes went through goes on with the rest.
type progressConn struct {
	net.Conn
	timeout time.Duration

	mu      sync.Mutex
	closing bool
}

func (c *progressConn) Write(p []byte) (int, error) {
	total := 0
	for {
		c.mu.Lock()
		closing := c.closing
		if !closing {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
		}
		c.mu.Unlock()
		n, err := c.Conn.Write(p[total:])
		total += n
		var ne net.Error
		if err == nil || n == 0 || closing || !errors.As(err, &ne) || !ne.Timeout() {
			return total, err
		}
	}
}

// shut makes a blocked write give up within d, progress or not.
func (c *progressConn) shut(d time.Duration) {
	c.mu.Lock()
	c.closing = true
	_ = c.Conn.SetWriteDeadline(time.Now().Add(d))
	c.mu.Unlock()
}
