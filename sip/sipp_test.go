package sip

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
