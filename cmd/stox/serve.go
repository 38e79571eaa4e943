package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"stox.dev/stox/calls"
	"stox.dev/stox/im"
	"stox.dev/stox/mapping"
	"stox.dev/stox/presence"
	"stox.dev/stox/sip"
	"stox.dev/stox/store"
	"stox.dev/stox/xmpp"
)

// gatewayStore is everything serve needs from a store implementation.
type gatewayStore interface {
	Account(ctx context.Context, user string) (mapping.Account, bool, error)
	PutBindings(ctx context.Context, bs []mapping.Binding) error
	DeleteBindings(ctx context.Context, keys []store.BindingKey) error
	LiveBindings(ctx context.Context, now time.Time) ([]mapping.Binding, error)
	im.Outbox
	presence.Store
	calls.Store
	store.CallPurger
	accounts
	Ping(ctx context.Context) error
	SchemaVersion(ctx context.Context) (int, error)
}

var (
	_ gatewayStore = (*store.Memory)(nil)
	_ gatewayStore = (*store.Postgres)(nil)

	// The stacks are what the capabilities see of the two worlds.
	_ im.XMPPLink       = (*xmpp.Component)(nil)
	_ im.SIPLink        = (*sip.Stack)(nil)
	_ im.Locator        = (*sip.Stack)(nil)
	_ presence.XMPPLink = (*xmpp.Component)(nil)
	_ presence.SIPLink  = (*sip.Stack)(nil)
	_ presence.Locator  = (*sip.Stack)(nil)
)

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	_, path, dev, err := configFlags("serve", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log.Level, *dev)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("stox stopped", zap.Error(err))
		return err
	}
	log.Info("stox stopped")
	return nil
}

// serve is the composition root: store → stacks → capabilities → run, with an
// ordered shutdown when ctx ends.
func serve(ctx context.Context, cfg Config, log *zap.Logger) error {
	st, closeStore, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	domains := mapping.Domains{XMPP: cfg.XMPP.Domain, SIP: cfg.SIP.Domain}

	sipCfg, err := sipConfig(cfg, log, reg)
	if err != nil {
		return err
	}
	// The stacks first, then each capability over them; each capability
	// registers what it serves with the stacks (docs/architecture.md,
	// "Registering a capability").
	sipStack, err := sip.New(sipCfg, newSIPStore(st))
	if err != nil {
		return fmt.Errorf("sip: %w", err)
	}
	comp := xmpp.New(xmpp.Config{
		Server: cfg.XMPP.Server, Domain: cfg.XMPP.Domain, Secret: cfg.XMPP.Secret,
		Logger: log.Named("xmpp"), Metrics: reg, Domains: domains,
		ContactResource: cfg.Calls.ContactResource,
	})

	msgs := im.New(im.Config{
		Domains:        domains,
		Trunk:          cfg.SIP.OutboundProxy != "",
		PerDestination: cfg.Core.PerDestination,
		MaxQueued:      cfg.Core.MaxQueued,
		AckTimeout:     cfg.Core.AckTimeout.Duration,
		ErrorGrace:     cfg.Core.ErrorGrace.Duration,
		Logger:         log.Named("im"),
		Metrics:        newIMMetrics(reg),
		LocatorReady:   sipStack.Ready(),
	}, comp, sipStack, sipStack, st)
	comp.HandleMessages(msgs)
	sipStack.HandleMessages(msgs)

	pres := presence.New(presence.Config{
		Domains:            domains,
		Coalesce:           cfg.Presence.Coalesce.Duration,
		AutoAuthorizeLocal: cfg.Presence.AutoAuthorizeLocal,
		Logger:             log.Named("presence"),
		Metrics:            newPresenceMetrics(reg),
	}, comp, sipStack, st, sipStack)
	comp.HandlePresence(pres)
	comp.ObserveLink(pres) // pending authorization requests are asked again after a reconnect
	sipStack.HandlePresence(pres)
	sipStack.ObserveRegistrations(pres)

	callSvc, relay, err := newCalls(cfg, domains, comp, sipStack, st, reg, log)
	if err != nil {
		return fmt.Errorf("calls: %w", err)
	}
	if relay != nil {
		defer func() { _ = relay.Close() }()
	}

	log.Info("stox starting", zap.String("version", version),
		zap.String("xmpp_domain", domains.XMPP), zap.String("sip_domain", domains.SIP),
		zap.Strings("sip_listen", cfg.SIP.Listen), zap.String("xmpp_server", cfg.XMPP.Server))

	g, gctx := errgroup.WithContext(ctx)
	// Start-up order: the SIP stack loads its bindings; im then
	// recovers the outbox (SIP MESSAGEs meanwhile get 480 + Retry-After);
	// only then does the XMPP link open, so recovered messages keep their
	// place ahead of new ones.
	g.Go(func() error { return releaseAfterBursts(gctx, releaseEvery, log.Named("memory")) })
	g.Go(func() error { return upkeep(gctx, cfg, st, reg, log) })
	g.Go(func() error { return sipStack.Run(gctx) })
	g.Go(func() error { return pres.Run(gctx) })
	g.Go(func() error { return msgs.Run(gctx) })
	if callSvc != nil {
		g.Go(func() error { return callSvc.Run(gctx) })
	}
	select {
	case <-msgs.Ready():
	case <-gctx.Done():
		return g.Wait()
	}
	g.Go(func() error { return comp.Run(gctx) })
	if cfg.HTTP.Listen != "" {
		g.Go(func() error { return serveOps(gctx, cfg.HTTP, reg, comp, st, log.Named("http")) })
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// sipStore adapts a store to sip.Store, whose deletes name bindings, and
// caches accounts: every REGISTER and MESSAGE authenticates, and neither
// should cost a database round trip or fail while the database is briefly
// away (docs/architecture.md: hot state is cached in memory).
type sipStore struct {
	gatewayStore
	accounts *accountCache
	// volatile is set for the memory store: the registrar's own cache is
	// then the only copy of a binding (a second one would double the memory
	// per registration and persist nothing).
	volatile bool
}

func newSIPStore(st gatewayStore) sipStore {
	mem, volatile := st.(*store.Memory)
	c := &accountCache{ttl: time.Minute, m: map[string]cachedAccount{}}
	if volatile {
		c.version = mem.AccountsVersion
	}
	return sipStore{gatewayStore: st, volatile: volatile, accounts: c}
}

func (s sipStore) PutBindings(ctx context.Context, bs []mapping.Binding) error {
	if s.volatile {
		return nil
	}
	return s.gatewayStore.PutBindings(ctx, bs)
}

func (s sipStore) LiveBindings(ctx context.Context, now time.Time) ([]mapping.Binding, error) {
	if s.volatile {
		return nil, nil
	}
	return s.gatewayStore.LiveBindings(ctx, now)
}

type accountCache struct {
	ttl time.Duration
	// version, when set, changes whenever the store's accounts change (the
	// memory store after an accounts file reload): an entry read at another
	// version is out of date, whatever its age.
	version func() uint64
	mu      sync.Mutex
	m       map[string]cachedAccount
}

type cachedAccount struct {
	a       mapping.Account
	ok      bool
	fetch   time.Time
	version uint64
}

// Account answers from the cache for ttl, or until the store's accounts
// change; after that it asks the store, and when the store fails it keeps
// answering with what it last knew.
func (s sipStore) Account(ctx context.Context, user string) (mapping.Account, bool, error) {
	c := s.accounts
	var v uint64
	if c.version != nil {
		v = c.version() // before the read below, so a change during it shows
	}
	c.mu.Lock()
	e, hit := c.m[user]
	c.mu.Unlock()
	if hit && e.version == v && time.Since(e.fetch) < c.ttl {
		return e.a, e.ok, nil
	}
	a, ok, err := s.gatewayStore.Account(ctx, user)
	if err != nil {
		if hit {
			return e.a, e.ok, nil
		}
		return a, ok, err
	}
	c.mu.Lock()
	if len(c.m) > 100000 { // bound the cache; a full sweep is rare and cheap
		clear(c.m)
	}
	c.m[user] = cachedAccount{a: a, ok: ok, fetch: time.Now(), version: v}
	c.mu.Unlock()
	return a, ok, nil
}

func (s sipStore) DeleteBindings(ctx context.Context, bs []mapping.Binding) error {
	if s.volatile {
		return nil
	}
	keys := make([]store.BindingKey, len(bs))
	for i, b := range bs {
		keys[i] = store.Key(b)
	}
	return s.gatewayStore.DeleteBindings(ctx, keys)
}

var _ sip.Store = sipStore{}

// openStore returns Postgres when a DSN is configured, else the memory
// store seeded from the accounts file.
func openStore(ctx context.Context, cfg Config, log *zap.Logger) (gatewayStore, func(), error) {
	if cfg.Store.DSN != "" {
		pg, err := store.OpenPostgres(ctx, cfg.Store.DSN, log.Named("store"))
		if err != nil {
			return nil, nil, fmt.Errorf("store: %w", err)
		}
		v, _ := pg.SchemaVersion(ctx)
		log.Info("store: postgres", zap.Int("schema_version", v))
		return pg, pg.Close, nil
	}
	mem := store.NewMemory()
	if cfg.Store.AccountsFile != "" {
		err := loadAccountsFile(ctx, cfg.Store.AccountsFile, mem)
		switch {
		case errors.Is(err, os.ErrNotExist):
			log.Warn("store: accounts file does not exist yet; no SIP user can register", zap.String("path", cfg.Store.AccountsFile))
		case err != nil:
			return nil, nil, err
		}
	}
	log.Warn("store: in-memory, NOT persistent: registrations and queued messages are lost on restart; set store.dsn for Postgres")
	return mem, func() {}, nil
}

func sipConfig(cfg Config, log *zap.Logger, reg prometheus.Registerer) (sip.Config, error) {
	sc := sip.Config{
		Listen:        cfg.SIP.Listen,
		Domain:        cfg.SIP.Domain,
		OutboundProxy: cfg.SIP.OutboundProxy,
		MaxInFlight:   cfg.SIP.MaxInFlight,
		// The calls capability ends unanswered calls at ring_timeout; the
		// stack's own bound is a backstop behind it.
		CallRingTimeout: cfg.Calls.RingTimeout.Duration + 10*time.Second,
		Logger:          log.Named("sip"),
		Metrics:         reg,
	}
	for _, p := range cfg.SIP.TrustedPeers {
		pfx, err := parsePrefix(p)
		if err != nil {
			return sc, err
		}
		sc.TrustedPeers = append(sc.TrustedPeers, pfx)
	}
	if cfg.SIP.NonceSecret != "" {
		sc.NonceSecret = []byte(cfg.SIP.NonceSecret)
	} else {
		// A per-process key: nonces from before a restart turn stale and
		// clients simply re-authenticate. Clusters must share sip.nonce_secret.
		sc.NonceSecret = make([]byte, 32)
		_, _ = rand.Read(sc.NonceSecret)
	}
	if cfg.SIP.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.SIP.TLSCert, cfg.SIP.TLSKey)
		if err != nil {
			return sc, fmt.Errorf("sip.tls_cert: %w", err)
		}
		sc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return sc, nil
}

// newLogger builds zap: JSON in production, console when dev.
func newLogger(level string, dev bool) (*zap.Logger, error) {
	var zc zap.Config
	if dev {
		zc = zap.NewDevelopmentConfig()
	} else {
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "ts"
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	}
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	if !dev {
		zc.Level = lvl
	}
	return zc.Build()
}
