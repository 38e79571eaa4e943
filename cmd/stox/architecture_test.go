package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection enforces design.md §3: mapping imports neither
// stack nor the store; the stacks, presence and store import mapping but
// not each other; only cmd wires concrete packages together.
func TestDependencyDirection(t *testing.T) {
	const mod = "stox.dev/stox/"
	forbidden := map[string][]string{
		"mapping":  {"xmpp", "sip", "store", "presence", "cmd", "conformance"},
		"xmpp":     {"sip", "store", "presence", "cmd", "conformance"},
		"sip":      {"xmpp", "store", "presence", "cmd", "conformance"},
		"presence": {"xmpp", "sip", "store", "cmd", "conformance"},
		"store":    {"xmpp", "sip", "presence", "cmd", "conformance"},
	}
	// Third-party stacks that must not leak into the neutral package.
	foreign := map[string][]string{
		"mapping": {"github.com/emiago/sipgo", "github.com/jackc/pgx", "go.uber.org/zap", "github.com/prometheus"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "no Go files") || strings.Contains(string(out), "no required module provides") {
				continue // package not written yet (presence)
			}
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		for _, d := range deps {
			for _, b := range bad {
				if d == mod+b || strings.HasPrefix(d, mod+b+"/") {
					t.Errorf("%s imports %s (design.md §3 forbids it)", pkg, d)
				}
			}
			for _, f := range foreign[pkg] {
				if strings.HasPrefix(d, f) {
					t.Errorf("%s depends on %s; mapping must stay free of the stacks", pkg, d)
				}
			}
		}
	}
}
