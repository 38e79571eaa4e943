// Package testenv holds the one rule for a test that needs something the
// machine may lack (a peer binary, a Python module, a database server): it
// is skipped with the reason when run locally, and fails when the
// environment variable CI is "true", because CI must have installed
// everything (.ci/install-peers.sh).
//
// It does not import testing: TB is the part of testing.TB it uses, so
// packages that are not tests (conformance/peers) can call it without
// linking the testing package.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// TB is the subset of testing.TB that Missing needs.
type TB interface {
	Helper()
	Skip(args ...any)
	Fatal(args ...any)
}

// CI reports whether the environment variable CI is "true".
func CI() bool { return os.Getenv("CI") == "true" }

// Missing ends the test because something it needs is missing: t.Skip
// with the message locally, t.Fatal when CI is "true".
func Missing(t TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatal(msg + " (required when CI=true)")
		return
	}
	t.Skip(msg)
}

// LookBins returns an error naming the first of bins that is neither on
// PATH nor an existing absolute path, or nil.
func LookBins(bins ...string) error {
	for _, b := range bins {
		var err error
		if filepath.IsAbs(b) {
			_, err = os.Stat(b)
		} else {
			_, err = exec.LookPath(b)
		}
		if err != nil {
			return fmt.Errorf("%s not installed: %w (run .ci/install-peers.sh)", b, err)
		}
	}
	return nil
}

// RequireBins calls Missing for the first of bins that LookBins does not
// find.
func RequireBins(t TB, bins ...string) {
	t.Helper()
	if err := LookBins(bins...); err != nil {
		Missing(t, "%v", err)
	}
}
