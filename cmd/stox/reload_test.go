package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// accountChangeDelay is the README's promise: an account added, changed or
// removed with `stox account` takes effect in a running stox within it.
const accountChangeDelay = 5 * time.Second

// An account added to the accounts file of a running stox (in-memory store)
// can register within accountChangeDelay, and one removed cannot, through the
// CLI against the built binary, with digest REGISTERs on the wire.
func TestAccountsFileReloadedByRunningStox(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the stox binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "stox")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	accounts := filepath.Join(dir, "accounts")
	sipPort := freeUDPPort(t)
	conf := writeConfig(t, fmt.Sprintf(`[store]
accounts_file = %q
[sip]
domain = "sip.example"
listen = ["udp:127.0.0.1:%d"]
[xmpp]
server = %q
domain = "gw.example"
[http]
listen = ""
`, accounts, sipPort, closedTCPAddr(t)))
	cli := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("stox %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	cli("alicepw\n", "account", "add", "-config", conf, "alice")

	// stox serve, with no XMPP server: the link retries; the registrar works.
	ctx, cancel := context.WithCancel(t.Context())
	serve := exec.CommandContext(ctx, bin, "serve", "-config", conf)
	var logs syncBuffer
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = serve.Wait()
		if t.Failed() {
			t.Logf("stox log:\n%s", logs.String())
		}
	})

	dest := fmt.Sprintf("127.0.0.1:%d", sipPort)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("reload-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	c, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	// register sends REGISTER, answers the challenge with user's password
	// and returns the final status (0 when stox does not answer).
	register := func(user, pw string) int {
		t.Helper()
		aor := sip.Uri{Scheme: "sip", User: user, Host: "sip.example"}
		req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "sip.example"})
		from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
		from.Params.Add("tag", sip.GenerateTagN(8))
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: aor})
		req.AppendHeader(sip.NewHeader("Contact", "<sip:"+user+"@127.0.0.1:5999>"))
		req.AppendHeader(sip.NewHeader("Expires", "600"))
		req.SetDestination(dest)
		rctx, rcancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer rcancel()
		res, err := c.Do(rctx, req)
		if err != nil {
			return 0
		}
		if res.StatusCode == 401 {
			if res, err = c.DoDigestAuth(rctx, req, res, sipgo.DigestAuth{Username: user, Password: pw}); err != nil {
				return 0
			}
		}
		return res.StatusCode
	}
	// waitStatus registers until the final status is want or d has passed,
	// and returns how long it took.
	waitStatus := func(what, user, pw string, want int, d time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		got := 0
		for time.Since(start) < d {
			if got = register(user, pw); got == want {
				return time.Since(start)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: REGISTER %s still %d after %v, want %d", what, user, got, d, want)
		return 0
	}

	waitStatus("start-up", "alice", "alicepw", 200, 10*time.Second)
	if st := register("carol", "carolpw"); st != 401 {
		t.Fatalf("carol before account add: %d, want 401", st)
	}
	cli("carolpw\n", "account", "add", "-config", conf, "carol")
	took := waitStatus("after account add", "carol", "carolpw", 200, accountChangeDelay)
	t.Logf("carol registered %v after account add", took.Round(time.Millisecond))

	cli("", "account", "remove", "-config", conf, "carol")
	took = waitStatus("after account remove", "carol", "carolpw", 401, accountChangeDelay)
	t.Logf("carol refused %v after account remove", took.Round(time.Millisecond))
	if st := register("alice", "alicepw"); st != 200 {
		t.Errorf("alice after carol's removal: %d, want 200", st)
	}

	// SIGHUP reloads at once and does not stop stox.
	reloaded := strings.Count(logs.String(), "accounts file reloaded")
	if err := serve.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(accountChangeDelay)
	for strings.Count(logs.String(), "accounts file reloaded") == reloaded {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged %v after SIGHUP", accountChangeDelay)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := register("alice", "alicepw"); st != 200 {
		t.Errorf("alice after SIGHUP: %d, want 200", st)
	}
}

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// closedTCPAddr returns a loopback address where nothing listens.
func closedTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for the writes of a child's stdout and
// stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
