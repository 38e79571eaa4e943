package sip

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are no-ops when Config.Metrics is nil.
type metrics struct {
	requests      *prometheus.CounterVec
	registrations prometheus.Gauge
	inflight      prometheus.Gauge
	admission     *prometheus.CounterVec
	callsActive   prometheus.Gauge
	invites       *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stox_sip_requests_total",
			Help: "SIP requests received, by method and final status sent.",
		}, []string{"method", "status"}),
		registrations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stox_sip_registrations",
			Help: "Live registrar bindings.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stox_sip_inflight",
			Help: "Inbound MESSAGE transactions in flight.",
		}),
		admission: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stox_sip_admission_total",
			Help: "Inbound MESSAGE admission decisions (accepted, rejected with 503).",
		}, []string{"result"}),
		callsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stox_sip_calls_active",
			Help: "INVITE dialogs the stack holds (early or confirmed).",
		}),
		invites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stox_sip_invites_total",
			Help: "Initial INVITEs by direction (in, out) and outcome (answered, rejected, cancelled, timeout, no-ack, overload, error).",
		}, []string{"direction", "outcome"}),
	}
	if r == nil {
		return m
	}
	m.requests = register(r, m.requests)
	m.registrations = register(r, m.registrations)
	m.inflight = register(r, m.inflight)
	m.admission = register(r, m.admission)
	m.callsActive = register(r, m.callsActive)
	m.invites = register(r, m.invites)
	return m
}

// register registers c, or returns the collector already registered under
// the same name (a second Stack in one process shares the series).
func register[T prometheus.Collector](r prometheus.Registerer, c T) T {
	if err := r.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			if old, ok := are.ExistingCollector.(T); ok {
				return old
			}
		}
	}
	return c
}

func (m *metrics) request(method string, status int) {
	m.requests.WithLabelValues(method, strconv.Itoa(status)).Inc()
}

func (m *metrics) invite(direction, outcome string) {
	m.invites.WithLabelValues(direction, outcome).Inc()
}
