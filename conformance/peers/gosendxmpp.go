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
	"time"
)

// go-sendxmpp (Debian package "go-sendxmpp", 0.5.6) is the matrix's second
// XMPP client: a command-line sender, and with -l a receiver that prints
// every message as "TIMESTAMP FROM: BODY". It refuses to authenticate
// without TLS, so the server must offer STARTTLS: ProsodyTLS.

// writeSelfSigned writes a self-signed certificate for names (the first is
// the CN) and its key, PEM encoded.
func writeSelfSigned(certPath, keyPath string, names ...string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
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
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}

// SendXMPPResult is one go-sendxmpp run.
type SendXMPPResult struct {
	Command string // the command line
	Output  string // stdout and stderr
	Err     error  // nil when it exited 0
}

// RunSendXMPP (SendXMPP in tests) sends body (on stdin) as one chat
// message from bareJID to to, from dir:
//
//	HOME=DIR go-sendxmpp -d -n -u BAREJID -p PASSWORD -j C2SADDR TO
//
// (-d: Output shows the stanzas it received; -n: the certificate is
// self-signed; -j: connect to 127.0.0.1:PORT
// directly, no SRV lookup). The server must offer STARTTLS
// (ProsodyTLS). The error is set unless go-sendxmpp exits 0 within 30 s.
func RunSendXMPP(dir, c2sAddr, bareJID, password, to, body string) (SendXMPPResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-d", "-n", "-u", bareJID, "-p", password, "-j", c2sAddr, to}
	cmd := exec.CommandContext(ctx, "go-sendxmpp", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	r := SendXMPPResult{Command: "go-sendxmpp " + strings.Join(args, " "), Output: string(out), Err: err}
	if err != nil {
		return r, fmt.Errorf("%s: %w\n%s", r.Command, err, out)
	}
	return r, nil
}

// SendXMPPMessage is one message a SendXMPPListener printed.
type SendXMPPMessage struct {
	Time, From, Body string
	Line             string // the raw line
}

// SendXMPPListener is go-sendxmpp in listen mode:
//
//	HOME=DIR go-sendxmpp -l -d -n -u BAREJID -p PASSWORD -j C2SADDR
//
// with stdout and stderr in Dir/go-sendxmpp.log. -d prints the XML stream
// too (to stderr), which tells when it is online: it is ready once it has
// sent its initial presence. Messages are the lines "TIMESTAMP FROM: BODY"
// it prints on stdout.
type SendXMPPListener struct {
	Dir string
	Log string

	p    *Proc
	mu   sync.Mutex
	msgs []SendXMPPMessage
	took int
}

// NewSendXMPPListener (StartSendXMPPListener in tests) starts
// go-sendxmpp -l as bareJID in dir and waits (20 s) until it has sent its
// initial presence. Stop ends it.
func NewSendXMPPListener(dir, c2sAddr, bareJID, password string) (*SendXMPPListener, error) {
	l := &SendXMPPListener{Dir: dir, Log: filepath.Join(dir, "go-sendxmpp.log")}
	cmd := exec.Command("go-sendxmpp", "-l", "-d", "-n", "-u", bareJID, "-p", password, "-j", c2sAddr)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if l.p, err = StartProc("go-sendxmpp -l "+bareJID, cmd, l.Log); err != nil {
		return nil, err
	}
	go l.read(stdout)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(readFileString(l.Log), "<presence") {
		if l.p.Exited() {
			return nil, l.p.exitedErr()
		}
		if time.Now().After(deadline) {
			l.Stop()
			return nil, fmt.Errorf("go-sendxmpp -l not online after 20 s:\n%s", LogTail(l.Log, 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return l, nil
}

// Stop ends go-sendxmpp (SIGTERM, SIGKILL after 3 s).
func (l *SendXMPPListener) Stop() { l.p.Stop(3 * time.Second) }

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

// AwaitMessage returns the next message not yet taken, waiting up to
// timeout.
func (l *SendXMPPListener) AwaitMessage(timeout time.Duration) (SendXMPPMessage, error) {
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		if l.took < len(l.msgs) {
			m := l.msgs[l.took]
			l.took++
			l.mu.Unlock()
			return m, nil
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			return SendXMPPMessage{}, fmt.Errorf("go-sendxmpp -l: no message within %v\n%s", timeout, LogTail(l.Log, 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
