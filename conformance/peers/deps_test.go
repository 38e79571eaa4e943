package peers

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoTestingImport checks that the package, and the load harness built
// on it, do not link the testing package: the test layer (testing.go)
// works through the TB interface, so a program can start peers without
// it.
func TestNoTestingImport(t *testing.T) {
	for _, pkg := range []string{"stox.dev/stox/conformance/peers", "stox.dev/stox/conformance/load"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, d := range strings.Fields(string(out)) {
			if d == "testing" || strings.HasPrefix(d, "testing/") {
				t.Errorf("%s depends on %s", pkg, d)
			}
		}
	}
}
