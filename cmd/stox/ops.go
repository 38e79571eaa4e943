package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"stox.dev/stox/im"
	"stox.dev/stox/store"
)

// linkState and pinger are what /healthz checks.
type linkState interface{ Up() bool }
type pinger interface {
	Ping(ctx context.Context) error
}

// serveOps serves /metrics (Prometheus) and /healthz, which answers 503
// while the XMPP link or the store is down.
func serveOps(ctx context.Context, cfg HTTPConfig, reg *prometheus.Registry, link linkState, st pinger, log *zap.Logger) error {
	addr := cfg.Listen
	mux := http.NewServeMux()
	if cfg.Pprof {
		// Profiles are for the operator's loopback: off unless asked for.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var problems []string
		if !link.Up() {
			problems = append(problems, "xmpp link down")
		}
		if err := st.Ping(pctx); err != nil {
			problems = append(problems, "store: "+err.Error())
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, p := range problems {
				fmt.Fprintln(w, p)
			}
			return
		}
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	log.Info("ops endpoint listening", zap.String("addr", ln.Addr().String()))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// imMetrics backs im.Metrics with Prometheus.
type imMetrics struct {
	messages *prometheus.CounterVec
	depth    prometheus.Gauge
}

func newIMMetrics(reg prometheus.Registerer) *imMetrics {
	m := &imMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stox_messages_total",
			Help: "Instant messages by direction (xmpp_to_sip, sip_to_xmpp) and outcome (delivered, failed, rejected).",
		}, []string{"direction", "outcome"}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stox_queue_depth",
			Help: "XMPP to SIP messages accepted and not yet delivered or failed.",
		}),
	}
	reg.MustRegister(m.messages, m.depth)
	return m
}

func (m *imMetrics) Message(direction, outcome string) {
	m.messages.WithLabelValues(direction, outcome).Inc()
}

func (m *imMetrics) QueueDepth(n int) { m.depth.Set(float64(n)) }

var _ im.Metrics = (*imMetrics)(nil)

func versionCmd(w interface{ Write([]byte) (int, error) }) error {
	fmt.Fprintf(w, "stox %s (schema %d)\n", version, store.LatestVersion())
	return nil
}

// presenceMetrics backs presence.Metrics with Prometheus.
type presenceMetrics struct {
	notifies *prometheus.CounterVec
	subs     *prometheus.GaugeVec
}

func newPresenceMetrics(reg prometheus.Registerer) *presenceMetrics {
	m := &presenceMetrics{
		notifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stox_presence_notifies_total",
			Help: "Presence NOTIFYs sent, by outcome (ok, gone, timeout, failed, dropped).",
		}, []string{"outcome"}),
		subs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stox_presence_subscriptions",
			Help: "Presence subscriptions by kind (sip-watcher, xmpp-watcher).",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.notifies, m.subs)
	return m
}

func (m *presenceMetrics) Notify(outcome string) { m.notifies.WithLabelValues(outcome).Inc() }

func (m *presenceMetrics) Subscriptions(kind string, n int) {
	m.subs.WithLabelValues(kind).Set(float64(n))
}
