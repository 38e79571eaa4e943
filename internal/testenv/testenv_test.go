package testenv

import (
	"strings"
	"testing"
)

// fakeTB records what Missing did instead of ending a test.
type fakeTB struct{ skipped, fatal string }

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Skip(args ...any)  { f.skipped = args[0].(string) }
func (f *fakeTB) Fatal(args ...any) { f.fatal = args[0].(string) }

func TestMissingSkipsLocallyFailsInCI(t *testing.T) {
	t.Setenv("CI", "")
	var local fakeTB
	Missing(&local, "%s not installed", "sipp")
	if local.skipped != "sipp not installed" || local.fatal != "" {
		t.Errorf("local: skipped %q, fatal %q", local.skipped, local.fatal)
	}
	t.Setenv("CI", "true")
	var ci fakeTB
	Missing(&ci, "%s not installed", "sipp")
	if ci.skipped != "" || !strings.HasPrefix(ci.fatal, "sipp not installed") {
		t.Errorf("CI: skipped %q, fatal %q", ci.skipped, ci.fatal)
	}
}

func TestLookBins(t *testing.T) {
	if err := LookBins("sh", "/bin/sh"); err != nil {
		t.Errorf("sh: %v", err)
	}
	err := LookBins("sh", "no-such-binary-xyz", "/no/such/file")
	if err == nil || !strings.HasPrefix(err.Error(), "no-such-binary-xyz not installed") {
		t.Errorf("missing binary: %v", err)
	}
	if err := LookBins("/no/such/file"); err == nil {
		t.Error("missing absolute path: no error")
	}
}
