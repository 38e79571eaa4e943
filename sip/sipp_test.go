package sip

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestSIPpRegisterDigest runs a real SIPp UAC (REGISTER with digest via -au/-ap
// and [authentication]) against the stack.
func TestSIPpRegisterDigest(t *testing.T) {
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sipp not installed (required when CI=true)")
		}
		t.Skip("sipp not installed; skipping the SIPp interop test")
	}
	env := startStack(t, nil, nil)
	scen, _ := filepath.Abs("testdata/sipp/register_digest.xml")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, sipp, env.udp,
		"-sf", scen, "-s", "bob", "-key", "domain", testDomain,
		"-au", "bob", "-ap", "secret", "-auth_uri", testDomain,
		"-i", "127.0.0.1", "-p", "0", "-m", "1", "-timeout", "15s", "-timeout_error",
		"-nostdin", "-trace_err", "-error_file", filepath.Join(dir, "err.log"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		errlog, _ := os.ReadFile(filepath.Join(dir, "err.log"))
		t.Fatalf("sipp: %v\n%s\n%s", err, lastLines(out, 30), errlog)
	}
	if bs := env.stack.Bindings("sip:bob@" + testDomain); len(bs) != 0 {
		t.Fatalf("binding left after Expires 0: %+v", bs)
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
