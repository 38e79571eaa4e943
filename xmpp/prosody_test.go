package xmpp

import (
	"bufio"
	"context"
	"encoding/xml"
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
	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"stox.dev/stox/internal/testenv"
	"stox.dev/stox/mapping"
)

// prosody is a throwaway Prosody (docs/peers.md, on free loopback ports).
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
	testenv.RequireBins(t, names...)
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
		testenv.Missing(t, "python3-slixmpp not installed: %v", err)
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

	c := runComponent(t, p, comp, secret, nil)

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

// runComponent connects a Component to p and waits until it is up; the
// test's cleanup stops it.
func runComponent(t *testing.T, p *prosody, comp, secret string, register func(*Component)) *Component {
	t.Helper()
	c := New(Config{
		Server: fmt.Sprintf("127.0.0.1:%d", p.comp), Domain: comp, Secret: secret,
		Logger:  zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)),
		Domains: mapping.Domains{XMPP: comp, SIP: "sip.test"},
	})
	if register != nil {
		register(c)
	}
	c.minBackoff, c.maxBackoff = 50*time.Millisecond, 500*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Error(err)
		}
	})
	waitUp(t, c, true)
	return c
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

// goClient is a minimal XMPP client (mellium, SASL PLAIN without TLS on
// loopback) that records the presence stanzas it receives; it replaces the
// slixmpp script where python3-slixmpp is not installed.
type goClient struct {
	xs        *xmpp.Session
	presences chan wirePresence
}

// clientLogin opens a client session to p as addr.
func clientLogin(t *testing.T, p *prosody, addr, pw string) (*xmpp.Session, net.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.c2s), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	origin := jid.MustParse(addr)
	// Secure is claimed up front: mellium offers PLAIN only on a secured
	// stream, and this Prosody runs without TLS on loopback.
	xs, err := xmpp.NewSession(ctx, origin.Domain(), origin, conn, xmpp.Secure, xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: []xmpp.StreamFeature{xmpp.SASL("", pw, sasl.Plain), xmpp.BindResource()}}
	}))
	if err != nil {
		conn.Close()
		t.Fatalf("client login: %v", err)
	}
	return xs, conn
}

// sendRaw writes the stanzas in raw on a client session.
func sendRaw(xs *xmpp.Session, raw string) error {
	w := xs.TokenWriter()
	defer w.Close()
	if _, err := xmlstream.Copy(w, xml.NewDecoder(strings.NewReader(raw))); err != nil {
		return err
	}
	return w.Flush()
}

func startGoClient(t *testing.T, p *prosody, addr, pw string) *goClient {
	t.Helper()
	xs, conn := clientLogin(t, p, addr, pw)
	gc := &goClient{xs: xs, presences: make(chan wirePresence, 100)}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = xs.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			if start.Name.Local != "presence" {
				return nil
			}
			var w wirePresence
			if err := xml.NewTokenDecoder(xmlstream.MultiReader(tokens(start.Copy()), r)).Decode(&w); err == nil {
				select {
				case gc.presences <- w:
				default:
				}
			}
			return nil
		}))
	}()
	t.Cleanup(func() { _ = xs.Close(); conn.Close(); <-served })
	return gc
}

func (gc *goClient) send(t *testing.T, raw string) {
	t.Helper()
	if err := sendRaw(gc.xs, raw); err != nil {
		t.Fatal(err)
	}
}

// waitPresence returns the first presence from `from` with type typ.
func (gc *goClient) waitPresence(t *testing.T, from, typ string) wirePresence {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case w := <-gc.presences:
			if w.From != nil && *w.From == from && w.Type == typ {
				return w
			}
			t.Logf("client skips presence from=%v type=%q", deref(w.From), w.Type)
		case <-deadline:
			t.Fatalf("client saw no presence type=%q from %s", typ, from)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// presenceRecorder is a PresenceHandler.
type presenceRecorder struct{ ch chan mapping.Presence }

func (r *presenceRecorder) ReceivePresence(p mapping.Presence) {
	select {
	case r.ch <- p:
	default:
	}
}

// RFC 8048 §5.2/§5.3 through a real server: an XMPP user subscribes to a
// JID under the component; the component sees the subscribe, approves it
// and sends presence, and the user's client sees both.
func TestProsodyPresence(t *testing.T) {
	const comp, secret = "sip.localhost", "secret"
	p := newProsody(t, comp, secret)
	p.register(t, "alice", "alicepw")
	rec := &presenceRecorder{ch: make(chan mapping.Presence, 100)}
	c := runComponent(t, p, comp, secret, func(c *Component) { c.HandlePresence(rec) })

	gc := startGoClient(t, p, "alice@localhost/test", "alicepw")
	gc.send(t, `<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	gc.send(t, `<presence/>`)
	gc.send(t, `<presence type='subscribe' id='sub1' to='bob@sip.localhost'/>`)

	bob := mapping.JID{Local: "bob", Domain: comp}
	alice := mapping.JID{Local: "alice", Domain: "localhost"}
	deadline := time.After(10 * time.Second)
	for got := false; !got; {
		select {
		case in := <-rec.ch:
			t.Logf("component got presence %+v", in)
			if in.Type == "subscribe" {
				if in.From != alice || in.To != bob {
					t.Fatalf("subscribe from %v to %v", in.From, in.To)
				}
				got = true
			}
		case <-deadline:
			t.Fatal("component never got the subscribe")
		}
	}

	if err := c.SendPresence(mapping.Presence{From: bob, To: alice, Type: "subscribed"}); err != nil {
		t.Fatal(err)
	}
	gc.waitPresence(t, "bob@sip.localhost", "subscribed")
	if err := c.SendPresence(mapping.Presence{From: mapping.JID{Local: "bob", Domain: comp, Resource: "phone"}, To: alice,
		Show: "dnd", Priority: 1, Status: []mapping.Text{{Value: "On the phone & busy"}}}); err != nil {
		t.Fatal(err)
	}
	w := gc.waitPresence(t, "bob@sip.localhost/phone", "")
	if len(w.Show) != 1 || w.Show[0] != "dnd" || len(w.Status) != 1 || w.Status[0].Text != "On the phone & busy" {
		t.Fatalf("client saw %+v", w)
	}
}
