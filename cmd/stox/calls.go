package main

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"stox.dev/stox/calls"
	"stox.dev/stox/mapping"
	"stox.dev/stox/media"
	"stox.dev/stox/sip"
	"stox.dev/stox/xmpp"
)

var (
	_ calls.XMPPLink   = (*xmpp.Component)(nil)
	_ calls.SIPLink    = (*sip.Stack)(nil)
	_ calls.Locator    = (*sip.Stack)(nil)
	_ calls.Media      = mediaEngine{}
	_ calls.RTPChecker = mediaEngine{}
	_ calls.Store      = gatewayStore(nil)
	_ calls.Metrics    = (*callMetrics)(nil)
)

// mediaEngine adapts the relay to the calls capability: the relay's
// capacity errors become calls.ErrNoCapacity (503 + Retry-After,
// resource-constraint).
type mediaEngine struct{ e *media.Engine }

func (m mediaEngine) Open(id string) (calls.MediaCall, error) {
	c, err := m.e.Open(id)
	if errors.Is(err, media.ErrTooManyCalls) || errors.Is(err, media.ErrNoPorts) {
		return nil, errors.Join(calls.ErrNoCapacity, err)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// CheckRTP lets calls refuse an offer the relay cannot take with 488 at once.
func (m mediaEngine) CheckRTP(remote mapping.Media) error { return media.CheckRTP(remote) }

// newCalls builds the relay and the calls capability and registers it with
// both stacks; nil when [calls] disabled is set.
func newCalls(cfg Config, domains mapping.Domains, comp *xmpp.Component, sipStack *sip.Stack, st gatewayStore,
	reg prometheus.Registerer, log *zap.Logger) (*calls.Service, *media.Engine, error) {
	if cfg.Calls.Disabled {
		return nil, nil, nil
	}
	eng, err := media.New(media.Config{
		Listen:      cfg.Media.Listen,
		Advertise:   cfg.Media.Advertise,
		PortMin:     cfg.Media.PortMin,
		PortMax:     cfg.Media.PortMax,
		MaxCalls:    cfg.Media.MaxCalls,
		Inactivity:  cfg.Media.Inactivity.Duration,
		OfferSDES:   cfg.Media.OfferSDES,
		OfferWebRTC: cfg.Media.OfferWebRTC,
		Logger:      log.Named("media"),
		Metrics:     newMediaMetrics(reg),
	})
	if err != nil {
		return nil, nil, err
	}
	svc := calls.New(calls.Config{
		Domains:         domains,
		Trunk:           cfg.SIP.OutboundProxy != "",
		ContactResource: cfg.Calls.ContactResource,
		RingTimeout:     cfg.Calls.RingTimeout.Duration,
		SIPReady:        sipStack.Ready(),
		Logger:          log.Named("calls"),
		Metrics:         newCallMetrics(reg),
	}, comp, sipStack, sipStack, mediaEngine{eng}, st)
	comp.HandleCalls(svc)
	sipStack.HandleCalls(svc)
	return svc, eng, nil
}

// callMetrics backs calls.Metrics with Prometheus.
type callMetrics struct {
	active prometheus.Gauge
	ended  *prometheus.CounterVec
}

func newCallMetrics(reg prometheus.Registerer) *callMetrics {
	m := &callMetrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stox_calls_active",
			Help: "Calls in progress (proposed, ringing or answered).",
		}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stox_calls_total",
			Help: "Calls ended, by direction (xmpp-sip, sip-xmpp) and outcome (answered, busy, declined, cancelled, no-answer, rejected, unreachable, failed, gateway-restart).",
		}, []string{"direction", "outcome"}),
	}
	reg.MustRegister(m.active, m.ended)
	return m
}

func (m *callMetrics) Active(n int) { m.active.Set(float64(n)) }
func (m *callMetrics) Ended(direction, outcome string) {
	m.ended.WithLabelValues(direction, outcome).Inc()
}

// mediaMetrics backs media.Metrics with Prometheus. Relayed is on the
// per-packet path: its children are looked up once.
type mediaMetrics struct {
	packets [2]prometheus.Counter
	bytes   [2]prometheus.Counter
	lost    [2]prometheus.Counter
	dropped *prometheus.CounterVec
	ended   *prometheus.CounterVec
}

func newMediaMetrics(reg prometheus.Registerer) *mediaMetrics {
	packets := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stox_media_packets_total",
		Help: "RTP packets relayed, by direction (to_webrtc: SIP leg to XMPP leg; to_sip).",
	}, []string{"direction"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stox_media_bytes_total",
		Help: "RTP bytes relayed, by direction.",
	}, []string{"direction"})
	lost := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stox_media_lost_packets_total",
		Help: "Packets missing from the sequence numbers received, by direction (loss before stox).",
	}, []string{"direction"})
	m := &mediaMetrics{
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stox_media_dropped_packets_total",
			Help: "Packets dropped by the relay, by direction and reason (source, malformed, payload_type, not_ready, send, srtp).",
		}, []string{"direction", "reason"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stox_media_relays_ended_total",
			Help: "Relays ended, by cause (closed, inactive, ice_failed, dtls_failed, other).",
		}, []string{"cause"}),
	}
	for _, d := range []media.Dir{media.ToWebRTC, media.ToSIP} {
		m.packets[d] = packets.WithLabelValues(d.String())
		m.bytes[d] = bytes.WithLabelValues(d.String())
		m.lost[d] = lost.WithLabelValues(d.String())
	}
	reg.MustRegister(packets, bytes, lost, m.dropped, m.ended)
	return m
}

func (m *mediaMetrics) Relayed(d media.Dir, n int) {
	m.packets[d].Inc()
	m.bytes[d].Add(float64(n))
}

func (m *mediaMetrics) Dropped(d media.Dir, why media.Drop) {
	m.dropped.WithLabelValues(d.String(), why.String()).Inc()
}

func (m *mediaMetrics) Lost(d media.Dir, n int) { m.lost[d].Add(float64(n)) }

func (m *mediaMetrics) CallEnded(err error) {
	cause := "other"
	switch {
	case errors.Is(err, media.ErrClosed):
		cause = "closed"
	case errors.Is(err, media.ErrInactive):
		cause = "inactive"
	case errors.Is(err, media.ErrICEFailed):
		cause = "ice_failed"
	case errors.Is(err, media.ErrDTLSFailed):
		cause = "dtls_failed"
	}
	m.ended.WithLabelValues(cause).Inc()
}
