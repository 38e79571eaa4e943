package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"stox.dev/stox/sip"
)

// Config is the TOML file stox serve reads. Each section feeds one package's
// own Config in serve.go; the names here are the operator-facing contract
// (keep them stable: operators' files must keep working).
type Config struct {
	Store    StoreConfig    `toml:"store"`
	XMPP     XMPPConfig     `toml:"xmpp"`
	SIP      SIPConfig      `toml:"sip"`
	HTTP     HTTPConfig     `toml:"http"`
	Log      LogConfig      `toml:"log"`
	Core     CoreConfig     `toml:"core"`
	Presence PresenceConfig `toml:"presence"`
	Media    MediaConfig    `toml:"media"`
	Calls    CallsConfig    `toml:"calls"`
}

// PresenceConfig tunes RFC 8048 presence.
type PresenceConfig struct {
	// Coalesce is the minimum interval between two NOTIFYs of one
	// subscription (RFC 3856 §6.10 recommends 5 s, the default).
	Coalesce duration `toml:"coalesce"`
	// AutoAuthorizeLocal lets XMPP users see users of stox's own registrar
	// without asking them (a phone cannot approve); default true.
	AutoAuthorizeLocal *bool `toml:"auto_authorize_local"`
}

// StoreConfig selects the store: Postgres when DSN is set, memory otherwise.
type StoreConfig struct {
	DSN string `toml:"dsn"`
	// AccountsFile holds SIP accounts (user:realm:ha1-md5:ha1-sha256 lines)
	// when no DSN is set, so the in-memory store can still authenticate.
	AccountsFile string `toml:"accounts_file"`
}

// XMPPConfig is the XEP-0114 component link.
type XMPPConfig struct {
	Server string `toml:"server"` // host:port of the XMPP server's component listener
	Domain string `toml:"domain"` // component JID, D
	Secret string `toml:"secret"`
}

// SIPConfig is the SIP stack: listeners, the served domain and trunking.
type SIPConfig struct {
	Listen        []string `toml:"listen"`
	Domain        string   `toml:"domain"` // S
	OutboundProxy string   `toml:"outbound_proxy"`
	TrustedPeers  []string `toml:"trusted_peers"`
	NonceSecret   string   `toml:"nonce_secret"` // shared by all nodes; random per process when empty
	TLSCert       string   `toml:"tls_cert"`
	TLSKey        string   `toml:"tls_key"`
	// MaxInFlight bounds the inbound MESSAGE, SUBSCRIBE, NOTIFY and PUBLISH
	// requests handled at once; beyond it stox answers 503 + Retry-After at
	// once (sip.Config.MaxInFlight).
	MaxInFlight int `toml:"max_inflight"`
}

// HTTPConfig is the operations endpoint (/metrics, /healthz).
type HTTPConfig struct {
	Listen string `toml:"listen"` // empty disables it
	Pprof  bool   `toml:"pprof"`  // serve /debug/pprof/ (CPU and heap profiles)
}

// LogConfig sets the log level (debug, info, warn, error).
type LogConfig struct {
	Level string `toml:"level"`
}

// CoreConfig bounds the routing core's queues.
type CoreConfig struct {
	PerDestination int      `toml:"per_destination"`
	MaxQueued      int      `toml:"max_queued"`
	AckTimeout     duration `toml:"ack_timeout"`
	ErrorGrace     duration `toml:"error_grace"`
}

// MediaConfig is [media]: the relay that anchors every call's audio
// (docs/calls.md, "Media").
type MediaConfig struct {
	// Listen is the IP the relay binds its UDP ports on.
	Listen string `toml:"listen"`
	// Advertise is the IP written in candidates and c= lines, for a host
	// behind 1:1 NAT; empty = Listen.
	Advertise string `toml:"advertise"`
	// PortMin and PortMax bound the UDP ports of both legs.
	PortMin int `toml:"port_min"`
	PortMax int `toml:"port_max"`
	// MaxCalls bounds the calls relayed at once; more get 503 +
	// Retry-After or resource-constraint.
	MaxCalls int `toml:"max_calls"`
	// Inactivity ends a call when no RTP arrived on either leg for this long.
	Inactivity duration `toml:"inactivity"`
	// OfferSDES makes stox's offers to SIP phones (XMPP → SIP calls)
	// RTP/SAVP with an SDES key (RFC 4568) instead of plain RTP/AVP; phones
	// without SRTP then refuse the call. SDES offers from phones are
	// answered either way (docs/media.md).
	OfferSDES bool `toml:"offer_sdes"`
	// OfferWebRTC makes stox's offers to SIP phones ICE + DTLS-SRTP with
	// rtcp-mux (UDP/TLS/RTP/SAVPF), for deployments whose phones are all
	// WebRTC-capable; it wins over offer_sdes. Such offers from phones are
	// answered either way (docs/media.md).
	OfferWebRTC bool `toml:"offer_webrtc"`
}

// CallsConfig is [calls]. Calls are on unless Disabled.
type CallsConfig struct {
	Disabled bool `toml:"disabled"`
	// RingTimeout ends a call nobody answered.
	RingTimeout duration `toml:"ring_timeout"`
	// ContactResource is the resource of SIP contacts' JIDs.
	ContactResource string `toml:"contact_resource"`
	// RecordRetention is how long ended call records are kept; 0 keeps
	// them forever.
	RecordRetention duration `toml:"record_retention"`
}

// duration reads TOML strings such as "8s".
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// defaults work on loopback against the Prosody snippet of the README.
func defaults() Config {
	return Config{
		XMPP: XMPPConfig{Server: "127.0.0.1:5347", Domain: "sip.localhost", Secret: "secret"},
		SIP: SIPConfig{
			Listen:      []string{"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"},
			Domain:      "sip.localhost",
			MaxInFlight: sip.DefaultMaxInFlight,
		},
		HTTP: HTTPConfig{Listen: "127.0.0.1:9060"},
		Log:  LogConfig{Level: "info"},
		Core: CoreConfig{ErrorGrace: duration{20 * time.Millisecond}},
		Media: MediaConfig{Listen: "127.0.0.1", PortMin: 20000, PortMax: 29999, MaxCalls: 1000,
			Inactivity: duration{30 * time.Second}},
		Calls: CallsConfig{RingTimeout: duration{60 * time.Second}, ContactResource: "phone",
			RecordRetention: duration{30 * 24 * time.Hour}},
	}
}

// loadConfig reads path over the defaults. Unknown keys are an error, and
// every error names the key and the reason.
func loadConfig(path string) (Config, error) {
	cfg := defaults()
	if path == "" {
		return cfg, cfg.validate()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	md, err := toml.Decode(string(b), &cfg)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return cfg, fmt.Errorf("config %s: unknown key %s", path, strings.Join(keys, ", "))
	}
	if err := cfg.validate(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func (c Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.XMPP.Server); err != nil {
		bad("xmpp.server", "want host:port: %v", err)
	}
	if !isDomain(c.XMPP.Domain) {
		bad("xmpp.domain", "%q is not a domain name", c.XMPP.Domain)
	}
	if c.XMPP.Secret == "" {
		bad("xmpp.secret", "must be set (the component secret of the XMPP server)")
	}
	if !isDomain(c.SIP.Domain) {
		bad("sip.domain", "%q is not a domain name", c.SIP.Domain)
	}
	if len(c.SIP.Listen) == 0 {
		bad("sip.listen", "needs at least one listener such as \"udp:127.0.0.1:5060\"")
	}
	for i, l := range c.SIP.Listen {
		if _, _, err := parseListen(l); err != nil {
			bad(fmt.Sprintf("sip.listen[%d]", i), "%v", err)
		}
		if strings.HasPrefix(l, "tls:") && (c.SIP.TLSCert == "" || c.SIP.TLSKey == "") {
			bad(fmt.Sprintf("sip.listen[%d]", i), "tls listener needs sip.tls_cert and sip.tls_key")
		}
	}
	if c.SIP.OutboundProxy != "" {
		if _, _, err := parseHop(c.SIP.OutboundProxy); err != nil {
			bad("sip.outbound_proxy", "%v", err)
		}
	}
	for i, p := range c.SIP.TrustedPeers {
		if _, err := parsePrefix(p); err != nil {
			bad(fmt.Sprintf("sip.trusted_peers[%d]", i), "%v", err)
		}
	}
	if c.SIP.MaxInFlight < 1 {
		bad("sip.max_inflight", "must be at least 1")
	}
	if c.SIP.NonceSecret != "" && len(c.SIP.NonceSecret) < 16 {
		bad("sip.nonce_secret", "must be at least 16 bytes")
	}
	if c.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			bad("http.listen", "want host:port: %v", err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if net.ParseIP(c.Media.Listen) == nil {
		bad("media.listen", "%q is not an IP address", c.Media.Listen)
	}
	if c.Media.Advertise != "" && net.ParseIP(c.Media.Advertise) == nil {
		bad("media.advertise", "%q is not an IP address", c.Media.Advertise)
	}
	if c.Media.PortMin < 1024 || c.Media.PortMax > 65535 || c.Media.PortMax-c.Media.PortMin < 3 {
		bad("media.port_min", "want 1024 <= port_min < port_max <= 65535 with room for two ports per leg, got %d-%d", c.Media.PortMin, c.Media.PortMax)
	}
	if c.Media.MaxCalls < 1 {
		bad("media.max_calls", "must be at least 1")
	}
	if c.Media.Inactivity.Duration < time.Second {
		bad("media.inactivity", "must be at least 1s")
	}
	if c.Calls.RingTimeout.Duration < time.Second {
		bad("calls.ring_timeout", "must be at least 1s")
	}
	if c.Calls.RecordRetention.Duration < 0 {
		bad("calls.record_retention", "must not be negative")
	}
	if c.Calls.ContactResource == "" || strings.ContainsAny(c.Calls.ContactResource, "/@ ") {
		bad("calls.contact_resource", "%q is not a plain resource", c.Calls.ContactResource)
	}
	if c.Presence.Coalesce.Duration < 0 {
		bad("presence.coalesce", "must not be negative")
	}
	if c.Core.PerDestination < 0 || c.Core.MaxQueued < 0 || c.Core.AckTimeout.Duration < 0 || c.Core.ErrorGrace.Duration < 0 {
		bad("core", "limits must not be negative")
	}
	return errors.Join(errs...)
}

// parseListen splits "udp:127.0.0.1:5060" into transport and address.
func parseListen(s string) (network, addr string, err error) {
	network, addr, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", fmt.Errorf("%q: want transport:host:port", s)
	}
	switch network {
	case "udp", "tcp", "tls", "ws":
	default:
		return "", "", fmt.Errorf("%q: unknown transport %q (want udp, tcp, tls or ws)", s, network)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", fmt.Errorf("%q: %v", s, err)
	}
	return network, addr, nil
}

// parseHop accepts "host:port" (UDP) or "transport:host:port".
func parseHop(s string) (network, addr string, err error) {
	if strings.Count(s, ":") == 1 || strings.HasPrefix(s, "[") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return "", "", fmt.Errorf("%q: %v", s, err)
		}
		return "udp", s, nil
	}
	return parseListen(s)
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func isDomain(s string) bool {
	if s == "" || len(s) > 253 || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}
