package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"stox.dev/stox/conformance/peers"
)

// procs is every process the harness started; stopAll ends them (SIGTERM,
// then SIGKILL), also on error and on SIGINT/SIGTERM of the harness.
var procs struct {
	mu   sync.Mutex
	list []*peers.Proc
}

// start runs cmd with stdout+stderr in logPath and registers it.
func start(name string, cmd *exec.Cmd, logPath string) (*peers.Proc, error) {
	p, err := peers.StartProc(name, cmd, logPath)
	if err != nil {
		return nil, err
	}
	procs.mu.Lock()
	procs.list = append(procs.list, p)
	procs.mu.Unlock()
	return p, nil
}

func stopAll() {
	procs.mu.Lock()
	list := procs.list
	procs.list = nil
	procs.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].Stop(5 * time.Second)
	}
}

// startProsody starts Prosody in dir (conformance/peers.NewProsody: the
// conformance suite's config, component sip.localhost with secret
// "secret") with the load settings: the stanza size limits raised (Prosody
// 0.12 applies c2s_stanza_size_limit, 256 KiB, and
// component_stanza_size_limit, defaulting to s2s_stanza_size_limit,
// 512 KiB; mod_limits — byte-rate throttling — is not loaded), idle c2s
// sessions kept for an hour, and warn logging (debug with LOAD_DEBUG). The
// users are created before it returns.
func startProsody(dir string, users map[string]string) (*peers.Prosody, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p, err := peers.NewProsody(dir, "sip.localhost", "secret", peers.ProsodyLogLevel(prosodyLevel()),
		peers.ProsodyGlobals("c2s_stanza_size_limit = 10485760", "component_stanza_size_limit = 10485760", "c2s_timeout = 3600"))
	if err != nil {
		return nil, err
	}
	for u, pw := range users {
		if err := p.AddUser(u, pw); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// ---- stox ----

type stox struct {
	bin, dir, conf string
	sip, http      int
	p              *peers.Proc
}

// writeStoxConfig writes the conformance-suite config shape with the load
// settings: trusted_peers 127.0.0.1/32 (sipp needs no digest), optional
// error_grace 0s, log level error (so the logger is not measured).
func writeStoxConfig(bin, dir, prosodyComp, dsn string, trusted bool, errorGrace string) (*stox, error) {
	s := &stox{bin: bin, dir: dir, conf: filepath.Join(dir, "stox.toml")}
	var err error
	if s.sip, err = peers.PickPort("udp+tcp"); err != nil {
		return nil, err
	}
	if s.http, err = peers.PickPort("tcp"); err != nil {
		return nil, err
	}
	peers := ""
	if trusted {
		peers = `"127.0.0.1/32"`
	}
	grace := ""
	if errorGrace != "" {
		grace = fmt.Sprintf("[core]\nerror_grace = %q\n", errorGrace)
	}
	conf := fmt.Sprintf(`[store]
dsn = %q
accounts_file = %q
[xmpp]
server = %q
domain = "sip.localhost"
secret = "secret"
[sip]
listen = ["udp:127.0.0.1:%d", "tcp:127.0.0.1:%d"]
domain = "sip.localhost"
outbound_proxy = ""
trusted_peers = [%s]
nonce_secret = "load-nonce-secret"
[http]
listen = "127.0.0.1:%d"
pprof = true
[log]
level = "error"
%s`, dsn, filepath.Join(dir, "accounts"), prosodyComp, s.sip, s.sip, peers, s.http, grace)
	return s, os.WriteFile(s.conf, []byte(conf), 0o600)
}

func (s *stox) start() error {
	cmd := exec.Command(s.bin, "serve", "-config", s.conf)
	p, err := start("stox", cmd, filepath.Join(s.dir, fmt.Sprintf("stox-%d.log", time.Now().UnixNano())))
	if err != nil {
		return err
	}
	s.p = p
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.http))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if p.Exited() {
			return fmt.Errorf("stox exited at start: %v\n%s", p.Err(), peers.LogTail(p.Log, 2000))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stox not healthy after 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *stox) stop() {
	if s != nil && s.p != nil {
		s.p.Stop(10 * time.Second)
	}
}

func (s *stox) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.sip) }

// rssKB is VmRSS of the stox process in KiB (0 if unknown).
func (s *stox) rssKB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.p.Pid()))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
	}
	return 0
}

// metric is a Prometheus sample of stox's /metrics (line prefix match), or -1.
func (s *stox) metric(prefix string) float64 {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.http))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, prefix)), 64)
			return v
		}
	}
	return -1
}

// ---- Postgres ----

const pgAdmin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// createDB creates a throwaway database and returns its DSN and a drop func.
func createDB(ctx context.Context) (string, func(), error) {
	name := fmt.Sprintf("stox_load_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	c, err := pgx.Connect(ctx, pgAdmin)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, pgAdmin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "drop database:", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintln(os.Stderr, "drop database:", err)
		}
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:5432/%s?sslmode=disable", name), drop, nil
}

// ---- sipp ----

// sippCmd is peers.SippCommand (sipp with the loopback flags) with
// -p FREE unless args has -p, and 4 MiB socket buffers (sipp's default
// -buff_size is 64 KiB, which drops responses at a few thousand per
// second).
func sippCmd(dir string, args ...string) (*exec.Cmd, error) {
	a := []string{"-buff_size", "4194304"}
	if !slices.Contains(args, "-p") {
		port, err := peers.PickPort("udp+tcp")
		if err != nil {
			return nil, err
		}
		a = append(a, "-p", strconv.Itoa(port))
	}
	return peers.SippCommand(dir, append(a, args...)...)
}

// sippStats reads the last row of a -trace_stat CSV file into a map.
func sippStats(path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return nil
	}
	hdr := strings.Split(lines[0], ";")
	row := strings.Split(lines[len(lines)-1], ";")
	m := map[string]string{}
	for i, h := range hdr {
		if i < len(row) {
			m[h] = row[i]
		}
	}
	return m
}

func statInt(m map[string]string, key string) int {
	v, _ := strconv.Atoi(strings.TrimSpace(m[key]))
	return v
}

// prosodyLevel is Prosody's log level: warn, or debug with LOAD_DEBUG set.
func prosodyLevel() string {
	if os.Getenv("LOAD_DEBUG") != "" {
		return "debug"
	}
	return "warn"
}

// udpRcvbufErrors is the host-wide UDP RcvbufErrors counter
// (/proc/net/snmp): datagrams the kernel dropped because a socket's receive
// buffer was full. Shared by every process on the machine.
func udpRcvbufErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return -1
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "Udp: ") {
			continue
		}
		f := strings.Fields(line)[1:]
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
	}
	return -1
}

// countOutbox is the number of rows in stox's outbox (messages accepted
// from XMPP and not yet answered by SIP), or -1.
func countOutbox(ctx context.Context, dsn string) int64 {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return -1
	}
	defer c.Close(ctx)
	var n int64
	if err := c.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&n); err != nil {
		return -1
	}
	return n
}
