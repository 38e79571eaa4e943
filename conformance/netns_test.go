package conformance

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/internal/testenv"
)

// Some peers will not use a loopback address: baresip's ICE module skips
// them, so a WebRTC-capable baresip has no candidate on a machine whose
// only safe interface is lo (docs/peers.md). Such a case runs again in a
// private network namespace (unshare -n) whose lo also holds 198.18.0.1
// (RFC 2544's benchmarking range): every peer of the case starts inside
// it, nothing in it can reach the machine's real interfaces, and nothing
// outside can reach it.

const (
	envPrivateNet = "STOX_CONFORMANCE_NETNS" // set in the re-run
	envStoxBin    = "STOX_CONFORMANCE_BIN"   // the stox binary the parent built
	// privateAddr is the non-loopback address of the private namespace.
	privateAddr = "198.18.0.1"
)

// inPrivateNet reports whether the calling test runs in the private
// namespace. When it does not, it runs the test there (the same test
// binary, only this case) and reports the re-run's outcome as its own; the
// caller returns at once when it gets false.
func inPrivateNet(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envPrivateNet) == "1" {
		return true
	}
	if os.Geteuid() != 0 {
		testenv.Missing(t, "%s needs root for a private network namespace (unshare -n)", t.Name())
		return false
	}
	testenv.RequireBins(t, "unshare", "ip")
	timeout := 5 * time.Minute
	if d, ok := t.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d) - 10*time.Second
	}
	cmd := exec.Command("unshare", "-n", "sh", "-ec",
		`ip link set lo up; ip addr add `+privateAddr+`/32 dev lo; exec "$@"`, "sh",
		os.Args[0], "-test.run", "^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count", "1",
		"-test.timeout", timeout.Round(time.Second).String())
	cmd.Env = append(os.Environ(), envPrivateNet+"=1", envStoxBin+"="+stoxBin)
	out, err := cmd.CombinedOutput()
	t.Logf("the case in a private network namespace (lo: 127.0.0.1, %s):\n%s", privateAddr, indent(string(out)))
	switch {
	case err != nil:
		t.Fatalf("the re-run failed: %v", err)
	case strings.Contains(string(out), "--- SKIP: "+t.Name()):
		t.Skip("skipped in the private namespace")
	case !strings.Contains(string(out), "--- PASS: "+t.Name()):
		t.Fatalf("the re-run did not report %s as passed", t.Name())
	}
	return false
}

func indent(s string) string {
	return "\t" + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n\t")
}
