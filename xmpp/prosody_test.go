package xmpp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"stox.dev/stox/mapping"
)

// prosody is a throwaway Prosody (peers.md §3.1, on free loopback ports).
type prosody struct {
	dir, cfg, log string
	c2s, comp     int
	cmd           *exec.Cmd
	done          chan struct{}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func requireTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required when CI=true: %v", n, err)
			}
			t.Skipf("skipping: %s not installed (%v)", n, err)
		}
	}
}

func newProsody(t *testing.T, component, secret string) *prosody {
	t.Helper()
	requireTool(t, "prosody", "prosodyctl")
	dir := t.TempDir()
	p := &prosody{dir: dir, cfg: filepath.Join(dir, "prosody.cfg.lua"), log: filepath.Join(dir, "prosody.log"),
		c2s: freePort(t), comp: freePort(t)}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "data"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "hosts.txt"), []byte("127.0.0.1 localhost\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "resolv.loopback.conf"), []byte("nameserver 127.0.0.1\n"), 0o644))
	cfg := fmt.Sprintf(`run_as_root = true
unbound = { hoststxt = %q; resolvconf = %q }
data_path = %q
pidfile = %q
admin_socket = %q
interfaces = { "127.0.0.1" }
c2s_ports = { %d }
s2s_ports = { }
component_ports = { %d }
component_interfaces = { "127.0.0.1" }
http_ports = {}; https_ports = {}
modules_enabled = { "roster"; "saslauth"; "disco"; "presence"; "ping"; "posix"; "admin_shell" }
modules_disabled = { "offline"; "s2s"; "tls" }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
log = { { levels = { min = "info" }, to = "console" } }
VirtualHost "localhost"
Component %q
    component_secret = %q
`, filepath.Join(dir, "hosts.txt"), filepath.Join(dir, "resolv.loopback.conf"), filepath.Join(dir, "data"),
		filepath.Join(dir, "prosody.pid"), filepath.Join(dir, "data", "prosody.sock"), p.c2s, p.comp, component, secret)
	must(os.WriteFile(p.cfg, []byte(cfg), 0o644))
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("prosody log:\n%s", b)
		}
	})
	p.start(t)
	return p
}

func (p *prosody) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command("prosody", "--config", p.cfg, "-F")
	p.cmd.Dir, p.cmd.Stdout, p.cmd.Stderr = p.dir, f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.done) }()
	for _, port := range []int{p.c2s, p.comp} {
		if err := waitTCP(fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second); err != nil {
			t.Fatalf("prosody not listening: %v", err)
		}
	}
}

func (p *prosody) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

func (p *prosody) register(t *testing.T, user, pw string) {
	t.Helper()
	cmd := exec.Command("prosodyctl", "--config", p.cfg, "register", user, "localhost", pw)
	cmd.Dir = p.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("prosodyctl register: %v\n%s", err, out)
	}
}

func waitTCP(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client runs testdata/alice.py and returns a channel of received lines.
func startClient(t *testing.T, p *prosody, jid, pw string) <-chan string {
	t.Helper()
	requireTool(t, "/usr/bin/python3")
	if err := exec.Command("/usr/bin/python3", "-c", "import slixmpp").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3-slixmpp required when CI=true")
		}
		t.Skip("skipping: python3-slixmpp not installed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "testdata/alice.py", "127.0.0.1", fmt.Sprint(p.c2s), jid, pw)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	select {
	case l := <-lines:
		if l != "READY" {
			t.Fatalf("client: %q", l)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("client did not log in")
	}
	return lines
}

func TestProsodyIntegration(t *testing.T) {
	const comp, secret = "sip.localhost", "secret"
	p := newProsody(t, comp, secret)
	p.register(t, "alice", "alicepw")

	c := New(Config{
		Server: fmt.Sprintf("127.0.0.1:%d", p.comp), Domain: comp, Secret: secret,
		Logger:  zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)),
		Domains: mapping.Domains{XMPP: comp, SIP: "sip.test"},
	}, nil)
	c.minBackoff, c.maxBackoff = 50*time.Millisecond, 500*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Error(err)
		}
	}()
	waitUp(t, c, true)

	lines := startClient(t, p, "alice@localhost/test", "alicepw")

	send := func(to, body string) error {
		ack := newAck()
		m := mapping.XMPPMessage{Type: "chat", From: mapping.JID{Local: "1001", Domain: comp},
			To: mapping.JID{Local: to, Domain: "localhost"}, Body: body}
		if err := c.Send(m, ack.fn); err != nil {
			t.Fatal(err)
		}
		return ack.wait(t)
	}

	if err := send("alice", "hello <alice> & co"); err != nil {
		t.Fatalf("ack to alice = %v", err)
	}
	select {
	case l := <-lines:
		if want := "MSG 1001@sip.localhost chat hello <alice> & co"; l != want {
			t.Fatalf("alice got %q, want %q", l, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("alice got nothing")
	}

	err := send("nobody", "is anyone there")
	var f *mapping.Failure
	if !errors.As(err, &f) {
		t.Fatalf("ack to nobody = %v, want *Failure", err)
	}
	t.Logf("bounce for nobody@localhost: %v (SIP %d)", f, f.Status)
	if f.Condition != mapping.ServiceUnavailable {
		t.Errorf("condition = %s, want service-unavailable", f.Condition)
	}

	// Prosody restarts: the link goes down and comes back.
	p.stop()
	waitUp(t, c, false)
	if err := c.Send(mapping.XMPPMessage{To: mapping.JID{Local: "alice", Domain: "localhost"}}, nil); !errors.Is(err, mapping.ErrLinkDown) {
		t.Fatalf("Send while down = %v", err)
	}
	p.start(t)
	waitUpWithin(t, c, 15*time.Second)
	if !strings.HasPrefix(c.cfg.Server, "127.0.0.1:") {
		t.Fatal("unexpected server")
	}
}

func waitUpWithin(t *testing.T, c *Component, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !c.Up() {
		if time.Now().After(deadline) {
			t.Fatal("component did not come back up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
