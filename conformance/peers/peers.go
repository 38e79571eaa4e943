// Package peers starts real SIP and XMPP peers (Prosody, ejabberd, a
// slixmpp client, go-sendxmpp, sipp, baresip, Kamailio) on 127.0.0.1 for the
// conformance tests and the load harness: every peer gets a directory of
// its own, a config generated from Go, free ports on 127.0.0.1, and a
// method that stops it. Nothing listens outside 127.0.0.0/8 and no peer is
// allowed to send a DNS query off loopback (docs/peers.md describes how
// each peer is run and the quirks this package works around).
//
// The package has two layers:
//
//   - the plain one, usable from any program: NewProsody, NewKamailio,
//     NewSippUAS, RunSippIn, NewXMPPClient, ... take a directory the
//     caller owns and return the running peer and an error; the peer's
//     Stop or Close ends it. Waiting helpers (AwaitLog, AwaitMessages, ...)
//     return errors too.
//   - the test layer (testing.go): StartProsody(t, ...), RunSipp(t, ...),
//     p.Register(t, ...), c.NextMessage(t, ...), ... call the plain ones
//     with a temp dir of the test, register the stop with t.Cleanup, print
//     the tail of the peer's logs when the test failed, and end the test
//     on error. A missing binary skips the test, or fails it when CI=true
//     (internal/testenv).
//
// Neither layer imports the testing package (TB is the subset of
// testing.TB the test layer uses), so the load harness links none of it.
//
// Binaries come from Debian packages (.ci/install-peers.sh installs them).
//
// Peers and their files:
//
//   - Prosody: prosody -F with a generated prosody.cfg.lua (VirtualHost
//     "localhost" + one XEP-0114 component slot for stox).
//   - XMPPClient: /usr/bin/python3 conformance/testdata/xmppclient.py
//     (slixmpp), JSON lines on stdin/stdout.
//   - sipp (RunSipp / StartSippUAS / StartSippUASRegistered) with the
//     scenarios in conformance/testdata/sipp:
//     register.xml (keys domain, expires; -s USER, -au/-ap for digest),
//     message_uac.xml (keys to_domain, from_user, from_domain, body,
//     content_type, expect; -s TOUSER),
//     message_uas.xml (200 OK to every MESSAGE, logs "GOT MESSAGE ..."),
//     message_uas_status.xml (key status: 404, 486, 603, ...).
//   - Baresip: baresip -f DIR with ctrl_tcp.
//   - Kamailio: kamailio -DD with a generated no-DB config: registrar
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
	"errors"
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
	"time"

	"stox.dev/stox/internal/testenv"
)

// LookBins returns an error naming the first of bins that is neither on
// PATH nor an existing absolute path ("NAME not installed: ... (run
// .ci/install-peers.sh)"), or nil.
func LookBins(bins ...string) error { return testenv.LookBins(bins...) }

// lookPython checks /usr/bin/python3 and its slixmpp module.
func lookPython() error {
	if err := LookBins(python3); err != nil {
		return err
	}
	if err := exec.Command(python3, "-c", "import slixmpp").Run(); err != nil {
		return fmt.Errorf("python3-slixmpp not installed: %w (run .ci/install-peers.sh)", err)
	}
	return nil
}

const python3 = "/usr/bin/python3"

// Test ports come from portLow..portHigh-1: below Linux's ephemeral range
// (32768–60999), so no process's client socket is handed one of them by the
// kernel between PickPort and the peer's bind, which is how a port that was
// free when checked used to be taken by the time sipp bound it. Processes
// running at once (go test ./... runs packages in parallel, the load
// harness next to a test) keep out of each other's way with a lock file
// per port, held until the process exits.
const portLow, portHigh = 20000, 32000

var (
	portMu    sync.Mutex
	portUsed  = map[int]bool{}
	portLocks []*os.File // kept open: closing one would release its port
)

// PickPort returns a port on 127.0.0.1 that is free for network "tcp",
// "udp" or "udp+tcp" (free for both, as a SIP server that listens on both
// needs), reserved against other users of PickPort in this and every other
// process on the machine.
func PickPort(network string) (int, error) {
	switch network {
	case "tcp", "udp", "udp+tcp", "tcp+udp":
	default:
		return 0, fmt.Errorf("PickPort: unknown network %q", network)
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
			return p, nil
		}
	}
	return 0, fmt.Errorf("PickPort(%q): no free port in %d..%d", network, portLow, portHigh-1)
}

// pickPorts picks one port per network, or returns the first error.
func pickPorts(networks ...string) ([]int, error) {
	out := make([]int, len(networks))
	for i, n := range networks {
		p, err := PickPort(n)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
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

// WaitTCP waits until addr accepts a TCP connection.
func WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting after %v: %w", addr, timeout, err)
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

// Proc is a background process in a process group of its own, whose
// stdout and stderr (unless the caller set them) go to a log file. It is
// sent SIGKILL if the thread that started it dies.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // path of the log file

	done chan struct{}
	err  error
}

// StartProc starts cmd with stdout and stderr appended to logPath.
func StartProc(name string, cmd *exec.Cmd, logPath string) (*Proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
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
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (nil for exit status 0); valid once
// Done is closed.
func (p *Proc) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return errors.New("still running")
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Pid is the process id (also its process group id).
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Stop sends SIGTERM to the process group and waits; SIGKILL after
// timeout. It is a no-op on a nil or ended process.
func (p *Proc) Stop(timeout time.Duration) { p.StopWith(syscall.SIGTERM, timeout) }

// StopWith is Stop with another first signal (e.g. SIGINT for tcpdump).
func (p *Proc) StopWith(sig syscall.Signal, timeout time.Duration) {
	if p == nil || p.Exited() {
		return
	}
	_ = syscall.Kill(-p.Pid(), sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
		<-p.done
	}
}

// exitedErr describes a process that ended while it should be running.
func (p *Proc) exitedErr() error {
	return fmt.Errorf("%s exited (%v):\n%s", p.Name, p.err, LogTail(p.Log, 3000))
}

// LogTail returns the last n bytes of a file.
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) > n {
		b = append([]byte("...\n"), b[len(b)-n:]...)
	}
	return string(b)
}

// writeFiles writes each name (relative to dir) with its content.
func writeFiles(dir string, files map[string]string) error {
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// loopbackResolver writes hosts.txt and resolv.loopback.conf into dir so
// that resolvers configured with them never leave loopback.
func loopbackResolver(dir string) (hosts, resolv string, err error) {
	hosts = filepath.Join(dir, "hosts.txt")
	resolv = filepath.Join(dir, "resolv.loopback.conf")
	err = writeFiles(dir, map[string]string{"hosts.txt": "127.0.0.1 localhost\n", "resolv.loopback.conf": "nameserver 127.0.0.1\n"})
	return hosts, resolv, err
}

// awaitFile waits until the file at path contains substr; the error shows
// the file's tail.
func awaitFile(name, path, substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(readFileString(path), substr) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s log has no %q after %v:\n%s", name, substr, timeout, LogTail(path, 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// readFileString returns a file's content or "".
func readFileString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
