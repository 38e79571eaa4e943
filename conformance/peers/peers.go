// Package peers starts real SIP and XMPP peers (Prosody, a slixmpp client,
// sipp, baresip, Kamailio) for the conformance tests, in the style of
// mellium's integration harness: every peer gets its own t.TempDir(), a
// config generated from Go, free ports on 127.0.0.1, and a t.Cleanup that
// stops it. Nothing listens outside 127.0.0.0/8 and no peer is allowed to
// send a DNS query off loopback (see /work/shared/docs/peers.md §2).
//
// Binaries come from Debian packages (.ci/install-peers.sh installs them).
// When one is missing, Require skips the test, or fails it when CI=true.
//
// Every peer's output goes to a log file in its temp dir; when the test has
// failed, the cleanup prints the tail of each log with t.Log.
//
// Peers and their files:
//
//   - StartProsody: prosody -F with a generated prosody.cfg.lua (VirtualHost
//     "localhost" + one XEP-0114 component slot for stox).
//   - StartXMPPClient: /usr/bin/python3 conformance/testdata/xmppclient.py
//     (slixmpp), JSON lines on stdin/stdout.
//   - RunSipp / StartSippUAS / StartSippUASRegistered: sipp with the
//     scenarios in conformance/testdata/sipp:
//     register.xml (keys domain, expires; -s USER, -au/-ap for digest),
//     message_uac.xml (keys to_domain, from_user, from_domain, body,
//     content_type, expect; -s TOUSER),
//     message_uas.xml (200 OK to every MESSAGE, logs "GOT MESSAGE ..."),
//     message_uas_status.xml (key status: 404, 486, 603, ...).
//   - StartBaresip: baresip -f DIR with ctrl_tcp.
//   - StartKamailio: kamailio -DD with a generated no-DB config: registrar
//     for the SIP domain, forwards the XMPP domains to stox.
//
// A typical SIP→XMPP test:
//
//	p := peers.StartProsody(t, "sip.localhost", "secret")
//	p.Register(t, "juliet", "pw")
//	juliet := peers.StartXMPPClient(t, p, "juliet", "pw")
//	stoxSIP := peers.FreePort(t, "udp+tcp")
//	kam := peers.StartKamailio(t, "kam.localhost", []string{"localhost"}, fmt.Sprintf("127.0.0.1:%d", stoxSIP))
//	// ... start stox: component p.ComponentAddr() "sip.localhost"/"secret",
//	// SIP on 127.0.0.1:stoxSIP, outbound_proxy kam.Addr() ...
//	peers.RunSipp(t, "message_uac.xml", kam.Addr(), "-s", "juliet", "-key", "to_domain", "localhost",
//	    "-key", "from_user", "romeo", "-key", "from_domain", "kam.localhost", "-key", "body", "hi").Check(t)
//	m := juliet.NextMessage(t, 5*time.Second) // m.Body == "hi"
package peers

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Require checks that every named binary is on PATH (or is an absolute path
// that exists). A missing one makes the test skip with "NAME not installed:
// ..." or, when the environment variable CI is "true", fail: CI must have
// run .ci/install-peers.sh.
func Require(t testing.TB, bins ...string) {
	t.Helper()
	for _, b := range bins {
		var err error
		if filepath.IsAbs(b) {
			_, err = os.Stat(b)
		} else {
			_, err = exec.LookPath(b)
		}
		if err == nil {
			continue
		}
		msg := fmt.Sprintf("%s not installed: %v (run .ci/install-peers.sh)", b, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// requirePython checks /usr/bin/python3 and the slixmpp module.
func requirePython(t testing.TB) {
	t.Helper()
	Require(t, python3)
	if err := exec.Command(python3, "-c", "import slixmpp").Run(); err != nil {
		msg := fmt.Sprintf("python3-slixmpp not installed: %v (run .ci/install-peers.sh)", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

const python3 = "/usr/bin/python3"

// Test ports come from portLow..portHigh-1: below Linux's ephemeral range
// (32768–60999), so no process's client socket is handed one of them by the
// kernel between FreePort and the peer's bind, which is how a port that was
// free when checked used to be taken by the time sipp bound it. Test
// binaries running at once (go test ./... runs packages in parallel) keep
// out of each other's way with a lock file per port, held until the binary
// exits.
const portLow, portHigh = 20000, 32000

var (
	portMu    sync.Mutex
	portUsed  = map[int]bool{}
	portLocks []*os.File // kept open: closing one would release its port
)

// FreePort returns a port on 127.0.0.1 that is free for network "tcp",
// "udp" or "udp+tcp" (free for both, as a SIP server that listens on both
// needs), reserved against other users of FreePort in this and every other
// test process on the machine.
func FreePort(t testing.TB, network string) int {
	t.Helper()
	switch network {
	case "tcp", "udp", "udp+tcp", "tcp+udp":
	default:
		t.Fatalf("FreePort: unknown network %q", network)
	}
	portMu.Lock()
	defer portMu.Unlock()
	for range 2000 {
		p := portLow + rand.IntN(portHigh-portLow)
		if portUsed[p] {
			continue
		}
		portUsed[p] = true // whatever follows, this process will not try p again
		if reservePort(p) && bindable(network, p) {
			return p
		}
	}
	t.Fatalf("FreePort(%q): no free port in %d..%d", network, portLow, portHigh-1)
	return 0
}

// reservePort takes the machine-wide lock of port p for this process.
func reservePort(p int) bool {
	dir := filepath.Join(os.TempDir(), "stox-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return false
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	portLocks = append(portLocks, f)
	return true
}

// bindable reports whether 127.0.0.1:p can be bound now for network.
func bindable(network string, p int) bool {
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	if strings.Contains(network, "udp") {
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return false
		}
		c.Close()
	}
	if strings.Contains(network, "tcp") {
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// TestdataDir is the absolute path of conformance/testdata (found from this
// source file, so it works from any package's tests).
func TestdataDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// waitTCP waits until addr accepts a TCP connection.
func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting after %v: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// udpBound reports whether 127.0.0.1:port is bound for UDP (we cannot bind it).
func udpBound(port int) bool {
	c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// proc is a background process whose stdout and stderr go to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// startProc starts cmd with stdout+stderr appended to logPath.
func startProc(t testing.TB, name string, cmd *exec.Cmd, logPath string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	if cmd.Stderr == nil {
		cmd.Stderr = f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group and waits; SIGKILL after timeout.
func (p *proc) stop(timeout time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// logTail returns the last n bytes of a file.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) > n {
		b = append([]byte("...\n"), b[len(b)-n:]...)
	}
	return string(b)
}

// dumpOnFailure registers a cleanup that logs the tail of the given log
// files when the test failed. Register it before the stop cleanup so that it
// runs after it (cleanups run last-in first-out).
func dumpOnFailure(t testing.TB, name string, paths ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range paths {
			t.Logf("--- %s log %s ---\n%s", name, p, logTail(p, 6000))
		}
	})
}

// writeFile writes a file or fails the test.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// loopbackResolver writes hosts.txt and resolv.loopback.conf into dir so
// that resolvers configured with them never leave loopback.
func loopbackResolver(t testing.TB, dir string) (hosts, resolv string) {
	t.Helper()
	hosts = filepath.Join(dir, "hosts.txt")
	resolv = filepath.Join(dir, "resolv.loopback.conf")
	writeFile(t, hosts, "127.0.0.1 localhost\n")
	writeFile(t, resolv, "nameserver 127.0.0.1\n")
	return hosts, resolv
}

// shortTempDir makes a temp dir with a short path (unix socket paths are
// limited to 108 bytes) that is removed at cleanup.
func shortTempDir(t testing.TB, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// waitFileContains waits until the file at path contains substr (Fatal
// after timeout, showing the file's tail).
func waitFileContains(t testing.TB, name, path, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(readFileString(path), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("%s log has no %q after %v:\n%s", name, substr, timeout, logTail(path, 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readFileString returns a file's content or "".
func readFileString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
