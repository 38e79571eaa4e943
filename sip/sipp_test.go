package sip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"stox.dev/stox/internal/testenv"
	"stox.dev/stox/mapping"
)

// TestSIPpRegisterDigest runs a real SIPp UAC (REGISTER with digest via -au/-ap
// and [authentication]) against the stack.
func TestSIPpRegisterDigest(t *testing.T) {
	sipp := needSIPp(t)
	env := startStack(t, nil, nil)
	runSIPp(t, sipp, env, "register_digest.xml", "-auth_uri", testDomain)
	if bs := env.stack.Bindings("sip:bob@" + testDomain); len(bs) != 0 {
		t.Fatalf("binding left after Expires 0: %+v", bs)
	}
}

// needSIPp returns the sipp binary, or skips (fails when CI=true).
func needSIPp(t *testing.T) string {
	t.Helper()
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		testenv.Missing(t, "sipp not installed; skipping the SIPp interop test")
	}
	return sipp
}

// runSIPp runs one call of testdata/sipp/scenario as user bob (digest
// bob/secret) against the stack's UDP listener and fails on a non-zero exit.
func runSIPp(t *testing.T, sipp string, env *testEnv, scenario string, args ...string) {
	t.Helper()
	scen, _ := filepath.Abs(filepath.Join("testdata/sipp", scenario))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	args = append([]string{env.udp, "-sf", scen, "-s", "bob", "-key", "domain", testDomain,
		"-au", "bob", "-ap", "secret",
		"-i", "127.0.0.1", "-p", "0", "-m", "1", "-timeout", "15s", "-timeout_error",
		"-nostdin", "-trace_err", "-error_file", filepath.Join(dir, "err.log")}, args...)
	cmd := exec.CommandContext(ctx, sipp, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		errlog, _ := os.ReadFile(filepath.Join(dir, "err.log"))
		t.Fatalf("sipp: %v\n%s\n%s", err, lastLines(out, 30), errlog)
	}
}

func lastLines(b []byte, n int) []byte {
	cnt := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			cnt++
			if cnt > n {
				return b[i+1:]
			}
		}
	}
	return b
}

// TestSIPpSubscribe runs a SIPp watcher: SUBSCRIBE with digest, 200, then
// the NOTIFY stox sends through Stack.Notify right after Subscribe returned.
func TestSIPpSubscribe(t *testing.T) {
	sipp := needSIPp(t)
	var env *testEnv // the NOTIFY below needs the running stack
	reg := prometheus.NewRegistry()
	notified := make(chan error, 1)
	fp := &fakePresence{}
	fp.onSub = func(r mapping.SubscribeRequest) mapping.SubscribeOutcome {
		d := r.Dialog
		d.LocalCSeq = 1
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// After the 200 is on the wire (RFC 6665 §4.2.1: NOTIFY follows):
			// the stack counts a request once its final response is sent.
			for {
				if n, err := gatherValue(reg, "stox_sip_requests_total", "status", "200"); err != nil || n >= 1 {
					break
				}
				select {
				case <-ctx.Done():
					notified <- fmt.Errorf("SUBSCRIBE not answered 200: %w", ctx.Err())
					return
				case <-time.After(time.Millisecond):
				}
			}
			res, err := env.stack.Notify(ctx, d, "active;expires=600", pidfType,
				[]byte(`<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:juliet@xmpp.test"/>`))
			if err == nil && res.Status != 200 {
				err = fmt.Errorf("NOTIFY answered %d", res.Status)
			}
			notified <- err
		}()
		return mapping.SubscribeOutcome{Status: 200, Expires: 600 * time.Second}
	}
	env = startStack(t, func(c *Config) { c.Metrics = reg }, nil, withPresence(fp))
	runSIPp(t, sipp, env, "subscribe.xml", "-key", "presentity", "juliet@xmpp.test", "-auth_uri", "juliet@xmpp.test")
	select {
	case err := <-notified:
		if err != nil {
			t.Fatalf("Notify: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Notify did not return")
	}
	if r := fp.lastSub(t); !r.Initial || r.Dialog.RemoteTarget == "" || r.Expires != 600*time.Second {
		t.Errorf("subscribe %+v", r)
	}
}

// TestSIPpCallIn runs SIPp's built-in uac scenario (INVITE with SDP, 200,
// ACK, BYE) against a stack whose CallHandler answers with an SDP.
func TestSIPpCallIn(t *testing.T) {
	sipp := needSIPp(t)
	fc := newFakeCalls()
	var env *testEnv
	fc.onInv = func(inv mapping.Invite) {
		go func() {
			_ = env.stack.Respond(inv.Key, 180, "Ringing", nil, 0)
			_ = env.stack.Respond(inv.Key, 200, "OK", []byte(answerSDP), 0)
		}()
	}
	env = startStack(t, func(c *Config) {
		c.TrustedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}, nil, func(s *Stack) { s.HandleCalls(fc) })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, sipp, env.udp, "-sn", "uac", "-s", "bob", "-i", "127.0.0.1", "-p", "0",
		"-m", "1", "-timeout", "15s", "-timeout_error", "-nostdin", "-d", "200",
		"-trace_err", "-error_file", filepath.Join(dir, "err.log"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		errlog, _ := os.ReadFile(filepath.Join(dir, "err.log"))
		t.Fatalf("sipp: %v\n%s\n%s", err, lastLines(out, 30), errlog)
	}
	inv := fc.invite(t)
	if !strings.Contains(string(inv.SDP), "m=audio") {
		t.Fatalf("offer %q", inv.SDP)
	}
	fc.event(t, mapping.CallConfirmed)
	fc.event(t, mapping.CallHungUp)
}

// TestSIPpCallOut dials SIPp's built-in uas scenario (180, 200 with SDP,
// ACK, then our BYE).
func TestSIPpCallOut(t *testing.T) {
	sipp := needSIPp(t)
	env, fc, _ := startCallStack(t, nil)
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", fmt.Sprint(port),
		"-m", "1", "-nostdin", "-trace_err", "-error_file", filepath.Join(dir, "err.log"))
	cmd.Dir = dir
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	time.Sleep(300 * time.Millisecond) // sipp binds its port
	d := mapping.Dial{
		From:   mapping.URI{Scheme: "sip", User: "juliet", Host: "xmpp.test"},
		To:     mapping.URI{Scheme: "sip", User: "service", Host: "127.0.0.1"},
		Target: mapping.Target{URI: mapping.URI{Scheme: "sip", User: "service", Host: "127.0.0.1"}, Destination: fmt.Sprintf("udp:127.0.0.1:%d", port)},
		SDP:    []byte(offerSDP),
	}
	key, err := env.stack.Dial(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	// SIPp sends 180 and 200 back to back, and sipgo handles each
	// response on its own goroutine: the 180 may come after the 200,
	// when the transaction no longer passes it up.
	var ev mapping.CallEvent
	for ev.Kind != mapping.CallAnswered {
		select {
		case ev = <-fc.events:
		case <-ctx.Done():
			t.Fatal("no CallAnswered")
		}
		if ev.Kind != mapping.CallProgress && ev.Kind != mapping.CallAnswered {
			t.Fatalf("event %+v", ev)
		}
	}
	if !strings.Contains(string(ev.SDP), "m=audio") {
		t.Fatalf("answer %q", ev.SDP)
	}
	if err := env.stack.Hangup(ctx, key, 0, 16, "normal"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			errlog, _ := os.ReadFile(filepath.Join(dir, "err.log"))
			t.Fatalf("sipp: %v\n%s\n%s", err, lastLines([]byte(out.String()), 30), errlog)
		}
	case <-ctx.Done():
		t.Fatal("sipp did not finish")
	}
}
