// Package conformance runs stox as a black box between real XMPP and SIP
// software (Prosody, sipp, baresip, Kamailio, slixmpp). Each case names
// the specification section it checks and asserts what crosses the wire.
package conformance

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// stoxBin is the stox binary under test, built once by TestMain with the
// race detector so the black-box runs also catch data races.
var stoxBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stox-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stoxBin = filepath.Join(dir, "stox")
	if bin := os.Getenv(envStoxBin); bin != "" {
		stoxBin = bin // a re-run of one case in a private namespace (netns_test.go)
	} else {
		build := exec.Command("go", "build", "-race", "-o", stoxBin, "stox.dev/stox/cmd/stox")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build stox:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// StoxConfig is what a case varies in stox's configuration.
type StoxConfig struct {
	XMPPServer    string // component listener, host:port
	Domain        string // D
	Secret        string
	SIPDomain     string // S
	DSN           string // empty: in-memory store
	OutboundProxy string
	TrustedPeers  []string
	Accounts      map[string]string // SIP user → password, added with `stox account add`
	SIPPort       int               // UDP+TCP port on 127.0.0.1; 0: a free one (trunk tests reserve it first)
	ErrorGrace    time.Duration     // core.error_grace; 0 keeps stox's default
	Core          string            // extra keys for the [core] section, e.g. "per_destination = 5"
	Presence      string            // keys for the [presence] section, e.g. `coalesce = "200ms"`
	Media         string            // keys for the [media] section, e.g. "max_calls = 1"
	Calls         string            // keys for the [calls] section, e.g. `ring_timeout = "5s"`
}

// Stox is one stox process with its config, logs and ports.
type Stox struct {
	cfg      StoxConfig
	dir      string
	conf     string
	SIPPort  int
	HTTPPort int

	mu  sync.Mutex
	cmd *exec.Cmd
	out *syncBuffer
	end chan struct{}
}

// StartStox writes a config into a temp dir, adds the accounts with the
// account command, starts `stox serve` and waits until its SIP listener
// answers and its component link is up (/healthz).
func StartStox(t testing.TB, cfg StoxConfig) *Stox {
	t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = "secret"
	}
	s := &Stox{cfg: cfg, dir: t.TempDir(), SIPPort: cfg.SIPPort, HTTPPort: peers.FreePort(t, "tcp")}
	if s.SIPPort == 0 {
		s.SIPPort = peers.FreePort(t, "udp+tcp")
	}
	s.conf = filepath.Join(s.dir, "stox.toml")
	quote := func(xs []string) string {
		q := make([]string, len(xs))
		for i, x := range xs {
			q[i] = strconv.Quote(x)
		}
		return strings.Join(q, ", ")
	}
	conf := fmt.Sprintf(`[store]
dsn = %q
accounts_file = %q
[xmpp]
server = %q
domain = %q
secret = %q
[sip]
listen = ["udp:127.0.0.1:%d", "tcp:127.0.0.1:%d"]
domain = %q
outbound_proxy = %q
trusted_peers = [%s]
nonce_secret = "conformance-nonce-secret"
[http]
listen = "127.0.0.1:%d"
[log]
level = "debug"
`, cfg.DSN, filepath.Join(s.dir, "accounts"), cfg.XMPPServer, cfg.Domain, cfg.Secret,
		s.SIPPort, s.SIPPort, cfg.SIPDomain, cfg.OutboundProxy, quote(cfg.TrustedPeers), s.HTTPPort)
	if cfg.ErrorGrace > 0 || cfg.Core != "" {
		conf += "[core]\n" + cfg.Core + "\n"
		if cfg.ErrorGrace > 0 {
			conf += fmt.Sprintf("error_grace = %q\n", cfg.ErrorGrace.String())
		}
	}
	if cfg.Presence != "" {
		conf += "[presence]\n" + cfg.Presence + "\n"
	}
	// stox's relay takes its ports from a band of its own, below the ports
	// peers.PickPort hands to SIP servers and phones (20000–31999): a
	// call's media port must not be the port a peer is about to bind.
	// Several stox processes may share the band; the relay skips ports in
	// use.
	media := "port_min = 10000\nport_max = 14999\n"
	if strings.Contains(cfg.Media, "port_min") {
		media = ""
	}
	if cfg.Media != "" {
		media += cfg.Media + "\n"
	}
	conf += "[media]\n" + media
	if cfg.Calls != "" {
		conf += "[calls]\n" + cfg.Calls + "\n"
	}
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for user, pw := range cfg.Accounts {
		s.Command(t, pw+"\n", "account", "add", "-config", s.conf, user)
	}
	s.Start(t)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Command runs a stox subcommand to completion and returns its stdout.
func (s *Stox) Command(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(stoxBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("stox %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// SIPAddr is stox's SIP listener.
func (s *Stox) SIPAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.SIPPort) }

// Start (re)starts the process with the same config and waits until it is
// healthy.
func (s *Stox) Start(t testing.TB) {
	t.Helper()
	s.StartUnhealthy(t)
	s.WaitHealthy(t, 15*time.Second)
}

// StartUnhealthy starts the process and waits only for its SIP listener,
// for cases where the XMPP server is down on purpose.
func (s *Stox) StartUnhealthy(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		s.out = &syncBuffer{}
	}
	cmd := exec.Command(stoxBin, "serve", "-config", s.conf)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start stox: %v", err)
	}
	s.cmd, s.end = cmd, make(chan struct{})
	end := s.end
	go func() { _ = cmd.Wait(); close(end) }()
	deadline := time.Now().Add(15 * time.Second)
	for !s.ready() {
		select {
		case <-end:
			t.Fatalf("stox exited at start:\n%s", s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("stox did not open its ops endpoint:\n%s", s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Stox) ready() bool {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.HTTPPort))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// Healthy reports whether /healthz answers 200.
func (s *Stox) Healthy() bool {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.HTTPPort))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitHealthy waits until /healthz answers 200.
func (s *Stox) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !s.Healthy() {
		if time.Now().After(deadline) {
			t.Fatalf("stox not healthy after %v:\n%s", timeout, s.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits; it fails the test if stox logged a data
// race or did not stop within 10 s.
func (s *Stox) Stop(t testing.TB) { s.signal(t, syscall.SIGTERM) }

// Kill stops stox with SIGKILL: no shutdown path runs, as in a crash.
func (s *Stox) Kill(t testing.TB) { s.signal(t, syscall.SIGKILL) }

func (s *Stox) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	cmd, end := s.cmd, s.end
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-end:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-end
		t.Errorf("stox did not stop within 10 s of %v", sig)
	}
	if strings.Contains(s.out.String(), "WARNING: DATA RACE") {
		t.Errorf("stox reported a data race:\n%s", s.out.String())
	}
	if t.Failed() {
		t.Logf("stox log:\n%s", tail(s.out.String(), 150))
	}
}

// Logs returns everything stox wrote so far.
func (s *Stox) Logs() string { return s.out.String() }

// Metric returns the value of a Prometheus sample whose line starts with
// prefix (name and labels as exposed), or 0 when absent.
func (s *Stox) Metric(t testing.TB, prefix string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.HTTPPort))
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, prefix)), 64)
			return v
		}
	}
	return 0
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
