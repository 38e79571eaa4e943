// Package sip is stox's SIP side: a registrar for the SIP domain S, the
// pager-mode MESSAGE UAS that hands messages to the routing core, and the
// MESSAGE UAC (mapping.SIPLink) the core sends through; for presence
// (RFC 8048) the SUBSCRIBE, NOTIFY and PUBLISH UAS that hand requests to a
// PresenceHandler and the NOTIFY/SUBSCRIBE UAC (Stack.Notify,
// Stack.Subscribe) the presence service sends through; for calls the
// INVITE dialogs, in and out, reported to a CallHandler (Stack.Dial,
// Respond, Hangup, Reinvite). It is built on github.com/emiago/sipgo.
package sip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"

	"stox.dev/stox/mapping"
)

// Config configures a Stack.
type Config struct {
	Listen        []string       // "udp:127.0.0.1:5060", "tcp:…", "tls:…", "ws:…", "wss:…"
	Domain        string         // S, the SIP domain stox's registrar serves; also the digest realm
	OutboundProxy string         // "host:port" or "transport:host:port" next hop for other domains; empty = RFC 3263
	TrustedPeers  []netip.Prefix // sources accepted without digest (trunks)
	NonceSecret   []byte         // HMAC key for stateless nonces
	NonceLifetime time.Duration  // default 5 min
	// PreferSHA256 lists the SHA-256 challenge before the MD5 one. Off by
	// default: UACs that only read the first challenge mostly know only MD5.
	PreferSHA256 bool

	MaxExpires, MinExpires, DefaultExpires time.Duration // defaults 3600 s, 60 s, 3600 s

	MaxInFlight int // inbound MESSAGE, SUBSCRIBE, NOTIFY, PUBLISH and unanswered INVITE handled at once; default DefaultMaxInFlight

	// CallT1 is T1 of the INVITE dialogs' own timers (RFC 3261 §13.3.1.4):
	// the 2xx is retransmitted from T1 on, and a 2xx without ACK after
	// 64·T1 ends the dialog. Default 500 ms. The transactions themselves
	// keep sipgo's timers.
	CallT1 time.Duration
	// CallRingTimeout bounds an unanswered outgoing INVITE (Timer C-ish,
	// RFC 3261 §16.6 step 11): then it is CANCELled and reported
	// CallFailed 408. Default 3 min.
	CallRingTimeout time.Duration

	TLS     *tls.Config
	Logger  *zap.Logger
	Metrics prometheus.Registerer // may be nil

	// SIPGoLogLevel is the least level of sipgo's own log lines. The zero
	// value (info) means warn, so sipgo is quiet; debug or error are honoured.
	SIPGoLogLevel zapcore.Level
}

// Store is what the SIP stack needs from persistence. DeleteBindings takes
// whole bindings and uses only their AOR and Contact, so that no key type has
// to be shared with package store.
type Store interface {
	Account(ctx context.Context, user string) (mapping.Account, bool, error)
	PutBindings(ctx context.Context, bs []mapping.Binding) error
	DeleteBindings(ctx context.Context, bs []mapping.Binding) error
	LiveBindings(ctx context.Context, now time.Time) ([]mapping.Binding, error)
}

// Stack is the SIP side of stox: the SIP face of every capability, the UAC
// they send through, and the registrar's locator.
type Stack struct {
	cfg   Config
	store Store
	// The capabilities served, registered before Run (capabilities.go).
	messages    MessageHandler
	presence    PresenceHandler
	regObserver RegistrationObserver
	calls       CallHandler

	// INVITE dialogs (calls.go).
	callMu  sync.Mutex // guards callTab and every call's fields
	callTab callTable
	callWG  sync.WaitGroup // goroutines of calls; Run waits for them

	log      *zap.Logger
	flowBase *zap.Logger // log for flowLog
	slog     *slog.Logger
	nonces   nonces
	replay   *ncGuard
	met      *metrics

	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client

	reg *registrar

	dialogURIs uriMemo // parsed From, To and targets of dialogs (uac.go)
	finals     *finals // final responses of completed UDP transactions

	inflight atomic.Int64

	ready    chan struct{}
	mu       sync.Mutex // guards listeners, addrs, runCtx
	lns      []listener
	addrs    []string
	runCtx   context.Context
	running  bool
	clientIP string
}

type listener struct {
	network string // "udp", "tcp", "tls", "ws", "wss"
	pc      net.PacketConn
	ln      net.Listener
	host    string
	port    int
}

// New checks cfg and builds a Stack; nothing is bound until Run. Register
// the capabilities it serves before Run.
func New(cfg Config, store Store) (*Stack, error) {
	if cfg.Domain == "" {
		return nil, errors.New("sip: Domain is required")
	}
	if len(cfg.Listen) == 0 {
		return nil, errors.New("sip: no Listen address")
	}
	if len(cfg.NonceSecret) < 16 {
		return nil, errors.New("sip: NonceSecret must be at least 16 bytes")
	}
	if store == nil {
		return nil, errors.New("sip: Store is required")
	}
	if cfg.MaxExpires <= 0 {
		cfg.MaxExpires = 3600 * time.Second
	}
	if cfg.MinExpires <= 0 {
		cfg.MinExpires = 60 * time.Second
	}
	if cfg.DefaultExpires <= 0 {
		cfg.DefaultExpires = 3600 * time.Second
	}
	if cfg.DefaultExpires > cfg.MaxExpires {
		cfg.DefaultExpires = cfg.MaxExpires
	}
	if cfg.NonceLifetime <= 0 {
		cfg.NonceLifetime = 5 * time.Minute
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.CallT1 <= 0 {
		cfg.CallT1 = defaultCallT1
	}
	if cfg.CallRingTimeout <= 0 {
		cfg.CallRingTimeout = defaultRingTimeout
	}
	if cfg.SIPGoLogLevel == zapcore.InfoLevel { // the zero value
		cfg.SIPGoLogLevel = zapcore.WarnLevel
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	var lns []listener
	var clientIP string
	for _, l := range cfg.Listen {
		network, addr, err := splitTransport(l)
		if err != nil {
			return nil, err
		}
		if (network == "tls" || network == "wss") && cfg.TLS == nil {
			return nil, fmt.Errorf("sip: listener %q needs a TLS config", l)
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("sip: listener %q: %w", l, err)
		}
		if clientIP == "" {
			clientIP = host
		}
		lns = append(lns, listener{network: network, host: host})
	}
	if clientIP == "" || clientIP == "0.0.0.0" || clientIP == "::" {
		// A wildcard cannot appear in Via; fall back to the domain name.
		clientIP = cfg.Domain
	}

	s := &Stack{
		cfg:      cfg,
		store:    store,
		log:      cfg.Logger.Named("sip"),
		flowBase: cfg.Logger.Named("sip").WithOptions(zap.AddCallerSkip(2)),
		nonces:   nonces{secret: cfg.NonceSecret, lifetime: cfg.NonceLifetime},
		replay:   newNCGuard(ncGuardMax),
		ready:    make(chan struct{}),
		lns:      lns,
		clientIP: clientIP,
	}
	core := zapcore.Core(cfg.Logger.Core())
	if lvl := cfg.SIPGoLogLevel; lvl > zapcore.DebugLevel {
		if inc, err := zapcore.NewIncreaseLevelCore(core, lvl); err == nil {
			core = inc
		}
	}
	// No stack traces for sipgo's own errors: a junk datagram from the
	// network is logged by sipgo at Error, and a trace of sipgo's parser
	// per datagram says nothing an operator can act on.
	s.slog = slog.New(zapslog.NewHandler(core, zapslog.WithName("sipgo"), zapslog.AddStacktraceAt(slog.LevelError+1000)))
	s.met = newMetrics(cfg.Metrics)
	s.reg = newRegistrar(s)
	s.finals = newFinals(sip.Timer_J, s.log)

	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("stox"),
		sipgo.WithUserAgentHostname(cfg.Domain),
		sipgo.WithUserAgenTLSConfig(cfg.TLS),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(s.slog)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(s.slog)),
	)
	if err != nil {
		return nil, err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(s.slog))
	if err != nil {
		return nil, err
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname(clientIP), sipgo.WithClientLogger(s.slog))
	if err != nil {
		return nil, err
	}
	s.ua, s.srv, s.client = ua, srv, cli
	s.registerHandlers() // before serving: the handler map is unsynchronised
	return s, nil
}

// Ready is closed when every listener is bound.
func (s *Stack) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound addresses as "transport:ip:port", in Listen order.
// It is empty before Ready.
func (s *Stack) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.addrs...)
}

// splitTransport splits "udp:1.2.3.4:5060" into ("udp", "1.2.3.4:5060"); a
// bare "host:port" means udp.
func splitTransport(s string) (network, addr string, err error) {
	if i := strings.IndexByte(s, ':'); i > 0 {
		switch t := strings.ToLower(s[:i]); t {
		case "udp", "tcp", "tls", "ws", "wss":
			if _, p, err := net.SplitHostPort(s[i+1:]); err != nil || !validPort(p) {
				return "", "", fmt.Errorf("sip: bad address %q", s)
			}
			return t, s[i+1:], nil
		}
	}
	if _, err := netip.ParseAddrPort(s); err != nil {
		if _, p, err := net.SplitHostPort(s); err != nil || !validPort(p) {
			return "", "", fmt.Errorf("sip: bad address %q", s)
		}
	}
	return "udp", s, nil
}

// Run loads the live bindings, serves every listener until ctx is done, then
// shuts down. It returns the first listener error, or nil after ctx is done.
// udpReadBuffer is the socket buffer stox asks for on UDP listeners.
const udpReadBuffer = 8 << 20

func (s *Stack) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("sip: Run called twice")
	}
	s.running = true
	s.runCtx = ctx
	s.mu.Unlock()

	bs, err := s.store.LiveBindings(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("sip: loading bindings: %w", err)
	}
	s.reg.load(bs)

	// Bind everything first, so Ready means every listener is bound.
	lns := s.lns
	closeAll := func() {
		for _, l := range lns {
			if l.pc != nil {
				l.pc.Close()
			}
			if l.ln != nil {
				l.ln.Close()
			}
		}
	}
	var lc net.ListenConfig
	addrs := make([]string, 0, len(lns))
	for i := range lns {
		l := &lns[i]
		_, addr, _ := splitTransport(s.cfg.Listen[i])
		switch l.network {
		case "udp":
			l.pc, err = lc.ListenPacket(ctx, "udp", addr)
			if uc, ok := l.pc.(*net.UDPConn); ok && err == nil {
				// The kernel default (about 208 KiB) overflows within
				// milliseconds at a few thousand MESSAGE/s, and every drop
				// costs the sender retransmissions (RFC 3261 Timer E). The
				// kernel caps the request at net.core.rmem_max.
				_ = uc.SetReadBuffer(udpReadBuffer)
				_ = uc.SetWriteBuffer(udpReadBuffer)
			}
		case "tcp", "ws":
			l.ln, err = lc.Listen(ctx, "tcp", addr)
		case "tls", "wss":
			var tl net.Listener
			tl, err = lc.Listen(ctx, "tcp", addr)
			if err == nil {
				l.ln = tls.NewListener(tl, s.cfg.TLS)
			}
		}
		if err != nil {
			closeAll()
			return fmt.Errorf("sip: listen %s: %w", s.cfg.Listen[i], err)
		}
		var a string
		if l.pc != nil {
			a = l.pc.LocalAddr().String()
		} else {
			a = l.ln.Addr().String()
		}
		h, p, _ := net.SplitHostPort(a)
		l.host = h
		fmt.Sscan(p, &l.port)
		addrs = append(addrs, l.network+":"+a)
	}
	s.mu.Lock()
	s.addrs = addrs
	s.mu.Unlock()

	var wg sync.WaitGroup
	errc := make(chan error, len(lns))
	bg, stopBG := context.WithCancel(ctx)
	wg.Add(4)
	go func() { defer wg.Done(); s.finals.run(bg) }()
	go func() { defer wg.Done(); s.reg.writer(bg) }()
	go func() { defer wg.Done(); s.reg.sweeper(bg) }()
	go func() { defer wg.Done(); s.reg.obs.run(bg, s) }()
	for i := range lns {
		l := lns[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			switch l.network {
			case "udp":
				err = s.srv.ServeUDP(l.pc)
			case "tcp":
				err = s.srv.ServeTCP(l.ln)
			case "tls":
				err = s.srv.ServeTLS(l.ln)
			case "ws":
				err = s.srv.ServeWS(l.ln)
			case "wss":
				err = s.srv.ServeWSS(l.ln)
			}
			if err != nil && !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
				errc <- fmt.Errorf("sip: serve %s:%s:%d: %w", l.network, l.host, l.port, err)
			}
		}()
	}
	// sipgo adds a listener to its connection pool inside Serve; wait for
	// that, so SendMessage right after Ready can send from the listener.
	for _, l := range lns {
		if l.network != "udp" {
			continue
		}
		a := l.pc.LocalAddr().String()
		for i := 0; i < 1000; i++ {
			if c, _ := s.ua.TransportLayer().GetConnection("udp", a); c != nil {
				c.Ref(-1) // GetConnection took a reference
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	s.log.Info("sip stack ready", zap.Strings("addrs", addrs), zap.String("domain", s.cfg.Domain))
	close(s.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	closeAll()
	stopBG()
	s.ua.Close()
	wg.Wait()
	s.callWG.Wait() // they end with ctx
	// Flush what the writer still holds; ctx is done, so give it its own
	// short deadline (values of ctx are kept).
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	s.reg.flush(fctx)
	cancel()
	return runErr
}

// context returns Run's context, for work started by handlers.
func (s *Stack) context() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runCtx
}

// every calls f with the time every interval d until ctx ends.
func every(ctx context.Context, d time.Duration, f func(now time.Time)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}

// listenerFor returns the bound listener for network ("udp", "tcp", …), or
// the first one when none matches.
func (s *Stack) listenerFor(network string) (listener, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.addrs) == 0 {
		return listener{}, false
	}
	for _, l := range s.lns {
		if l.network == network {
			return l, true
		}
	}
	return listener{}, false
}

// trusted reports whether source ("ip:port") is in TrustedPeers.
func (s *Stack) trusted(source string) bool {
	if len(s.cfg.TrustedPeers) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(source)
	if err != nil {
		host = source
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.cfg.TrustedPeers {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}
