package xmpp

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	up         prometheus.Gauge
	stanzas    *prometheus.CounterVec
	depth      prometheus.Gauge
	reconnects prometheus.Counter
	jingle     *prometheus.CounterVec
	jmi        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stox_xmpp_link_up",
			Help: "1 while the XEP-0114 component session is established.",
		}),
		stanzas: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stox_xmpp_stanzas_total",
			Help: "Stanzas exchanged with the XMPP server, by direction (in/out) and kind.",
		}, []string{"direction", "kind"}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stox_xmpp_send_queue_depth",
			Help: "Messages queued for the XMPP server and not yet written.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stox_xmpp_reconnects_total",
			Help: "Reconnection attempts of the component session.",
		}),
		jingle: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stox_xmpp_jingle_iqs_total",
			Help: "Jingle IQ sets exchanged with the XMPP server, by direction (in/out) and action.",
		}, []string{"direction", "action"}),
		jmi: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stox_xmpp_jmi_messages_total",
			Help: "Jingle Message Initiation messages (XEP-0353), by direction (in/out) and kind (error for bounces).",
		}, []string{"direction", "kind"}),
	}
	if reg == nil {
		return m
	}
	m.up = register(reg, m.up)
	m.stanzas = register(reg, m.stanzas)
	m.depth = register(reg, m.depth)
	m.reconnects = register(reg, m.reconnects)
	m.jingle = register(reg, m.jingle)
	m.jmi = register(reg, m.jmi)
	return m
}

// register registers c, or reuses the collector already registered under the
// same name (several Components sharing one registry, as in tests).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
