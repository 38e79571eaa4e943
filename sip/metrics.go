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
	}
	if r == nil {
		return m
	}
	for _, c := range []prometheus.Collector{m.requests, m.registrations, m.inflight, m.admission} {
		if err := r.Register(c); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				_ = are // another Stack in this process registered it: keep ours unexported
			}
		}
	}
	return m
}

func (m *metrics) request(method string, status int) {
	m.requests.WithLabelValues(method, strconv.Itoa(status)).Inc()
}
