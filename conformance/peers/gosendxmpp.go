package peers

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// go-sendxmpp (Debian package "go-sendxmpp", 0.5.6) is the matrix's second
// XMPP client: a command-line sender, and with -l a receiver that prints
// every message as "TIMESTAMP FROM: BODY". It refuses to authenticate
// without TLS, so the server must offer STARTTLS: StartProsodyTLS.

// StartProsodyTLS is StartProsody with STARTTLS offered on c2s (still not
// required, so slixmpp clients keep logging in without TLS): it writes a
// self-signed certificate for Domain and the component domain to
// Dir/localhost.crt and Dir/localhost.key (ECDSA P-256, generated in Go),
// moves "tls" from modules_disabled to modules_enabled in
// Dir/prosody.cfg.lua, and restarts Prosody (about 0.1 s).
func StartProsodyTLS(t testing.TB, componentDomain, secret string, opts ...ProsodyOption) *Prosody {
	t.Helper()
	p := StartProsody(t, componentDomain, secret, opts...)
	p.Stop(t)
	names := []string{p.Domain}
	if componentDomain != "" {
		names = append(names, componentDomain)
	}
	writeSelfSigned(t, filepath.Join(p.Dir, p.Domain+".crt"), filepath.Join(p.Dir, p.Domain+".key"), names...)
	conf := readFileString(p.Config)
	const enabled, disabled = `modules_enabled = { "roster";`, `modules_disabled = { "offline"; "s2s"; "tls" }`
	if !strings.Contains(conf, enabled) || !strings.Contains(conf, disabled) {
		t.Fatalf("StartProsodyTLS: prosody.cfg.lua changed shape; update gosendxmpp.go:\n%s", conf)
	}
	conf = strings.Replace(conf, enabled, `modules_enabled = { "tls"; "roster";`, 1)
	conf = strings.Replace(conf, disabled, `modules_disabled = { "offline"; "s2s" }`, 1)
	writeFile(t, p.Config, conf)
	p.Start(t)
	return p
}

// writeSelfSigned writes a self-signed certificate for names (the first is
// the CN) and its key, PEM encoded.
func writeSelfSigned(t testing.TB, certPath, keyPath string, names ...string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certPath, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// SendXMPPResult is one go-sendxmpp run.
type SendXMPPResult struct {
	Command string // the command line
	Output  string // stdout and stderr
	Err     error  // nil when it exited 0
}

// SendXMPP sends body (on stdin) as one chat message from bareJID to to:
//
//	HOME=TMP go-sendxmpp -d -n -u BAREJID -p PASSWORD -j C2SADDR TO
//
// (-d: Output shows the stanzas it received; -n: the certificate is
// self-signed; -j: connect to 127.0.0.1:PORT
// directly, no SRV lookup). The server must offer STARTTLS
// (StartProsodyTLS). It fails the test unless go-sendxmpp exits 0 within
// 30 s.
func SendXMPP(t testing.TB, c2sAddr, bareJID, password, to, body string) SendXMPPResult {
	t.Helper()
	Require(t, "go-sendxmpp")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-d", "-n", "-u", bareJID, "-p", password, "-j", c2sAddr, to}
	cmd := exec.CommandContext(ctx, "go-sendxmpp", args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+cmd.Dir)
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	r := SendXMPPResult{Command: "go-sendxmpp " + strings.Join(args, " "), Output: string(out), Err: err}
	if err != nil {
		t.Fatalf("%s: %v\n%s", r.Command, err, out)
	}
	return r
}

// SendXMPPMessage is one message a SendXMPPListener printed.
type SendXMPPMessage struct {
	Time, From, Body string
	Line             string // the raw line
}

// SendXMPPListener is go-sendxmpp in listen mode:
//
//	HOME=TMP go-sendxmpp -l -d -n -u BAREJID -p PASSWORD -j C2SADDR
//
// with stdout and stderr in Dir/go-sendxmpp.log. -d prints the XML stream
// too (to stderr), which tells when it is online: it is ready once it has
// sent its initial presence. Messages are the lines "TIMESTAMP FROM: BODY"
// it prints on stdout.
type SendXMPPListener struct {
	Dir string
	Log string

	p    *proc
	mu   sync.Mutex
	msgs []SendXMPPMessage
	took int
}

// StartSendXMPPListener starts go-sendxmpp -l as bareJID and waits (20 s)
// until it has sent its initial presence. Cleanup stops it.
func StartSendXMPPListener(t testing.TB, c2sAddr, bareJID, password string) *SendXMPPListener {
	t.Helper()
	Require(t, "go-sendxmpp")
	dir := t.TempDir()
	l := &SendXMPPListener{Dir: dir, Log: filepath.Join(dir, "go-sendxmpp.log")}
	cmd := exec.Command("go-sendxmpp", "-l", "-d", "-n", "-u", bareJID, "-p", password, "-j", c2sAddr)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	dumpOnFailure(t, "go-sendxmpp -l "+bareJID, l.Log)
	l.p = startProc(t, "go-sendxmpp", cmd, l.Log)
	t.Cleanup(func() { l.p.stop(3 * time.Second) })
	go l.read(stdout)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(readFileString(l.Log), "<presence") {
		if l.p.exited() {
			t.Fatalf("go-sendxmpp -l exited (%v):\n%s", l.p.err, logTail(l.Log, 3000))
		}
		if time.Now().After(deadline) {
			t.Fatalf("go-sendxmpp -l not online after 20 s:\n%s", logTail(l.Log, 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return l
}

func (l *SendXMPPListener) read(r interface{ Read([]byte) (int, error) }) {
	f, _ := os.OpenFile(l.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if f != nil {
		defer f.Close()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if f != nil {
			fmt.Fprintln(f, line)
		}
		m := SendXMPPMessage{Line: line}
		// "2024-01-02T15:04:05Z07:00 alice@localhost/res: body"
		ts, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.Contains(rest, ": ") {
			continue
		}
		m.Time = ts
		m.From, m.Body, _ = strings.Cut(rest, ": ")
		l.mu.Lock()
		l.msgs = append(l.msgs, m)
		l.mu.Unlock()
	}
}

// Messages returns every message printed so far.
func (l *SendXMPPListener) Messages() []SendXMPPMessage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]SendXMPPMessage(nil), l.msgs...)
}

// NextMessage returns the next message not yet taken, waiting up to
// timeout (Fatal on timeout).
func (l *SendXMPPListener) NextMessage(t testing.TB, timeout time.Duration) SendXMPPMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		if l.took < len(l.msgs) {
			m := l.msgs[l.took]
			l.took++
			l.mu.Unlock()
			return m
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("go-sendxmpp -l: no message within %v\n%s", timeout, logTail(l.Log, 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
