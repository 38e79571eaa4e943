package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The report names the exact commit it ran on, and says unambiguously when
// the tree held changes that no commit has, untracked files included; its
// own output directory does not count.
func TestGitDescribe(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q")
	write("a.go", "package a\n")
	write("out/report.md", "old report\n")
	git("add", ".")
	git("commit", "-q", "-m", "one")
	head := git("rev-parse", "HEAD")
	t.Chdir(dir)
	out := filepath.Join(dir, "out")

	if got := gitDescribe(out); got != head {
		t.Errorf("clean tree: %q, want the full hash %q", got, head)
	}
	write("out/report.md", "new report\n")
	write("out/transcripts/x.txt", "x")
	if got := gitDescribe(out); got != head {
		t.Errorf("only the report's own output changed: %q, want %q", got, head)
	}
	write("new_test.go", "package a\n")
	if got, want := gitDescribe(out), head+" plus uncommitted changes to new_test.go"; got != want {
		t.Errorf("untracked file: %q, want %q", got, want)
	}
	write("a.go", "package a // changed\n")
	if got, want := gitDescribe(out), head+" plus uncommitted changes to a.go, new_test.go"; got != want {
		t.Errorf("changed file: %q, want %q", got, want)
	}
}
