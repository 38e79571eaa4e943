package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDependencyDirection enforces the tiers of docs/architecture.md:
// clock is the standard library only, below everything; mapping imports no
// other package of stox (not even clock: it reads no time) and neither
// stack's library;
// the stacks (xmpp, sip), the capabilities (im, presence, calls), the
// relay (media) and store import
// mapping but not each other, and capabilities never import a stack's
// library; only cmd wires concrete packages together.
func TestDependencyDirection(t *testing.T) {
	const mod = "stox.dev/stox/"
	forbidden := map[string][]string{
		"clock":    {"mapping", "xmpp", "sip", "store", "im", "presence", "cmd", "conformance"},
		"mapping":  {"clock", "xmpp", "sip", "store", "im", "presence", "cmd", "conformance"},
		"xmpp":     {"sip", "store", "im", "presence", "cmd", "conformance"},
		"sip":      {"xmpp", "store", "im", "presence", "cmd", "conformance"},
		"im":       {"xmpp", "sip", "store", "presence", "cmd", "conformance"},
		"presence": {"xmpp", "sip", "store", "im", "cmd", "conformance"},
		"store":    {"xmpp", "sip", "im", "presence", "cmd", "conformance"},
		"media":    {"xmpp", "sip", "store", "im", "presence", "calls", "cmd", "conformance", "internal"},
		"calls":    {"xmpp", "sip", "store", "im", "presence", "media", "cmd", "conformance", "internal"},
	}
	// Libraries that must not leak into a tier: mapping is pure (no stack,
	// no database, no logger, no metrics); capabilities see the stacks and
	// the store only through their own interfaces.
	// mellium's jid package (PRECIS, RFC 7622) is the one piece of a stack's
	// library mapping may use: it does no I/O.
	stacks := []string{"github.com/emiago/sipgo", "mellium.im/xmpp", "github.com/jackc/pgx"}
	jidDeps := map[string]bool{}
	out, err := exec.Command("go", "list", "-deps", "mellium.im/xmpp/jid").CombinedOutput()
	if err != nil {
		t.Fatalf("go list mellium.im/xmpp/jid: %v\n%s", err, out)
	}
	for _, d := range strings.Fields(string(out)) {
		jidDeps[d] = true
	}
	foreign := map[string][]string{
		"clock":    {"github.com/", "go.uber.org/", "golang.org/x/", "mellium.im/"},
		"mapping":  slices.Concat(stacks, []string{"go.uber.org/zap", "github.com/prometheus"}),
		"im":       stacks,
		"presence": stacks,
		"media":    stacks, // pion speaks WebRTC; neither stack's library belongs in the relay
		"calls":    slices.Concat(stacks, []string{"github.com/pion"}),
	}
	// media (tier 2) sees the rest of stox through mapping and clock only:
	// the calls capability drives it through its exported API.
	allowed := map[string][]string{"media": {"mapping", "clock"}, "calls": {"mapping", "clock"}}
	for pkg, ok := range allowed {
		out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, d := range strings.Fields(string(out)) {
			if rest, found := strings.CutPrefix(d, mod); found && !slices.Contains(ok, rest) {
				t.Errorf("%s imports %s; it may import only %v of stox (docs/architecture.md)", pkg, d, ok)
			}
		}
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		for _, d := range deps {
			for _, b := range bad {
				if d == mod+b || strings.HasPrefix(d, mod+b+"/") {
					t.Errorf("%s imports %s (docs/architecture.md forbids it)", pkg, d)
				}
			}
			for _, f := range foreign[pkg] {
				if strings.HasPrefix(d, f) && !jidDeps[d] {
					t.Errorf("%s depends on %s (docs/architecture.md forbids it)", pkg, d)
				}
			}
			if pkg == "mapping" && !mappingMayUse(d, jidDeps) {
				t.Errorf("mapping depends on %s: outside the standard library it may use only mellium's jid and pion/sdp (docs/architecture.md)", d)
			}
		}
	}
}

// mappingMayUse reports whether mapping may depend on d: the standard
// library, stox's own module, mellium's jid package with its dependencies,
// and pion/sdp (the SDP codec, pure) with its one dependency.
func mappingMayUse(d string, jidDeps map[string]bool) bool {
	first, _, _ := strings.Cut(d, "/")
	if !strings.Contains(first, ".") || strings.HasPrefix(d, "stox.dev/stox") || jidDeps[d] {
		return true
	}
	for _, ok := range []string{"github.com/pion/sdp/v3", "github.com/pion/randutil"} {
		if d == ok || strings.HasPrefix(d, ok+"/") {
			return true
		}
	}
	return false
}

// TestMappingIsPure keeps mapping a package of functions over values
// (docs/architecture.md): no goroutine, no lock, no clock, no randomness,
// no logger and no I/O in its non-test files, so every translation is
// deterministic and testable with a table.
func TestMappingIsPure(t *testing.T) {
	impure := map[string]bool{ // imports that bring state, time or I/O
		"sync": true, "sync/atomic": true, "log": true, "log/slog": true, "os": true, "net": true,
		"net/http": true, "crypto/rand": true, "math/rand": true, "math/rand/v2": true, "io/fs": true,
	}
	clock := map[string]bool{"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
		"AfterFunc": true, "NewTimer": true, "NewTicker": true, "Tick": true}
	files, err := filepath.Glob("../../mapping/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no mapping sources: %v", err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p := strings.Trim(imp.Path.Value, `"`); impure[p] {
				t.Errorf("%s imports %s", fset.Position(imp.Pos()), p)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s starts a goroutine", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && x.Name == "time" && clock[n.Sel.Name] {
					t.Errorf("%s reads the clock (time.%s)", fset.Position(n.Pos()), n.Sel.Name)
				}
			}
			return true
		})
	}
}
