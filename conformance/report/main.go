// Command report runs the conformance suite and writes the interop report:
//
//	go run ./conformance/report [-out conformance/report] [-json FILE] [-- GO-TEST-FLAGS...]
//
// It runs `go test -json -count=1 -timeout 30m GO-TEST-FLAGS ./conformance/...`
// from the module root with STOX_TRANSCRIPTS=OUT/transcripts/.run (where
// the matrix cases write their transcripts), parses the test events, and
// maps every test of package stox.dev/stox/conformance to a row:
//
//   - the case: a Test function, or for TestMatrix/<case>/<combination>
//     the function matrix<case>;
//   - its specification and section: from the first line of that
//     function's doc comment (read with go/parser and go/doc), which names
//     it, e.g. "RFC 7572 §5 (XMPP to SIP): ..." or "RFC 7247 Table 3
//     (§7.2): ..."; rows are grouped by specification;
//   - its peer combination (the column): from the subtest name for
//     TestMatrix, else from the peers the test starts (its code, followed
//     through the package's helpers: StartEjabberd, StartKamailio,
//     StartBaresip, ...).
//
// Cells are pass, FAIL, skip (a peer is missing; the reason is in the
// cell's title) or n/a (the case does not apply to the combination: no
// test ran there, or the test skipped with a reason starting "n/a:").
// A failing cell links to OUT/transcripts/<test>.txt: the case's own
// transcript (SIP messages from sipp's -trace_msg, the stanzas the XMPP
// client sent and saw, stox's log) followed by the go test output of the
// test. Transcripts of passing runs are deleted.
//
// It writes OUT/report.md and OUT/index.html (html/template, no scripts)
// and exits 1 if any test failed (after writing the report). With -json it
// reads a saved `go test -json` output instead of running the tests.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

const confPkg = "stox.dev/stox/conformance"

// ejabberdRun marks, in the package name, the results of the second pass
// of the suite with STOX_XMPP_SERVER=ejabberd.
const ejabberdRun = "@ejabberd"

// goTestJSON runs go test -json with extra environment, transcripts under
// dir, and returns the events (a failing test is not an error).
func goTestJSON(dir string, env, testArgs []string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args := append([]string{"test", "-json", "-count=1", "-timeout", "30m"}, testArgs...)
	fmt.Fprintf(os.Stderr, "report: %s go %s (STOX_TRANSCRIPTS=%s)\n", strings.Join(env, " "), strings.Join(args, " "), dir)
	cmd := exec.Command("go", args...)
	cmd.Env = append(append(os.Environ(), "STOX_TRANSCRIPTS="+dir), env...)
	cmd.Stderr = os.Stderr
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, &progress{})
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		return nil, err
	}
	_ = os.WriteFile(filepath.Join(dir, "go-test.json"), buf.Bytes(), 0o644)
	return buf.Bytes(), nil
}

// relabel renames package from to to in go test -json events.
func relabel(events []byte, from, to string) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(events))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil && e["Package"] == from {
			e["Package"] = to
			b, _ := json.Marshal(e)
			out.Write(b)
		} else {
			out.Write(sc.Bytes())
		}
		out.WriteByte('\n')
	}
	return out.Bytes()
}

func main() {
	out := flag.String("out", filepath.Join("conformance", "report"), "output directory")
	jsonIn := flag.String("json", "", "read this `go test -json` output instead of running the tests")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run ./conformance/report [-out DIR] [-json FILE] [-- GO-TEST-FLAGS...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*out, *jsonIn, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(2)
	}
}

func run(out, jsonIn string, testFlags []string) error {
	if _, err := os.Stat(filepath.Join("conformance", "stox_test.go")); err != nil {
		return fmt.Errorf("run from the module root (conformance/stox_test.go: %v)", err)
	}
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// The tree the tests run on, before they run (they write under out).
	commit := gitDescribe(out)
	trDir := filepath.Join(out, "transcripts")
	runDir := filepath.Join(trDir, ".run")
	start := time.Now()
	var events []byte
	if jsonIn != "" {
		if events, err = os.ReadFile(jsonIn); err != nil {
			return err
		}
	} else {
		// A new run replaces every transcript of the last one.
		if err := os.RemoveAll(trDir); err != nil {
			return err
		}
		if err := os.MkdirAll(runDir, 0o755); err != nil {
			return err
		}
		events, err = goTestJSON(runDir, nil, append(testFlags, "./conformance/..."))
		if err != nil {
			return err
		}
		// The suite again with ejabberd as the XMPP server (the matrix has
		// its own ejabberd column; TestHostileXMLFromXMPP is Prosody-only,
		// see docs/architecture.md). Its results are kept apart by package.
		ej, err := goTestJSON(filepath.Join(runDir, "ejabberd"), []string{"STOX_XMPP_SERVER=ejabberd"},
			append(testFlags, "-skip", "TestMatrix|TestHostileXMLFromXMPP", "./conformance/"))
		if err != nil {
			return err
		}
		events = append(events, relabel(ej, confPkg, confPkg+ejabberdRun)...)
	}
	results, err := parseEvents(events)
	if err != nil {
		return err
	}
	src, err := parseSource("conformance")
	if err != nil {
		return err
	}
	rep := build(results, src)
	rep.Duration = time.Since(start).Round(time.Second)
	if jsonIn != "" {
		rep.Duration = 0
	}
	rep.Command = "go run ./conformance/report"
	if len(testFlags) > 0 {
		rep.Command += " -- " + strings.Join(testFlags, " ")
	}
	if err := keepTranscripts(rep, results, runDir, trDir); err != nil {
		return err
	}
	rep.Generated = time.Now().UTC().Format("2006-01-02 15:04 UTC")
	rep.Commit = commit
	rep.GoVersion = goVersion()
	rep.Peers = peerVersions()
	if err := writeMarkdown(filepath.Join(out, "report.md"), rep); err != nil {
		return err
	}
	if err := writeHTML(filepath.Join(out, "index.html"), rep); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "report: %d pass, %d fail, %d skip, %d n/a; wrote %s and %s\n",
		rep.Totals["pass"], rep.Totals["fail"], rep.Totals["skip"], rep.Totals["n/a"],
		filepath.Join(out, "report.md"), filepath.Join(out, "index.html"))
	if rep.Totals["fail"] > 0 || len(rep.BrokenPackages) > 0 {
		os.Exit(1)
	}
	return nil
}

// progress prints one line per finished top-level test while the suite runs.
type progress struct{ buf []byte }

func (p *progress) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		var e event
		if json.Unmarshal(p.buf[:i], &e) == nil && e.Test != "" && !strings.Contains(e.Test, "/") &&
			(e.Action == "pass" || e.Action == "fail" || e.Action == "skip") {
			fmt.Fprintf(os.Stderr, "report: %-4s %s (%.1fs)\n", e.Action, e.Test, e.Elapsed)
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// result is the outcome of one test or subtest.
type result struct {
	Package, Test string
	Action        string // pass, fail, skip ("" if it never ended: the binary crashed or timed out)
	Elapsed       float64
	Output        []string
}

// SkipReason is the message of t.Skip, from the test's output.
func (r *result) SkipReason() string {
	for _, l := range r.Output {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "---") || strings.HasPrefix(l, "===") {
			continue
		}
		if i := strings.Index(l, ".go:"); i >= 0 {
			if j := strings.Index(l[i:], ": "); j >= 0 {
				return strings.TrimSpace(l[i+j+2:])
			}
		}
	}
	return ""
}

type results struct {
	tests    map[string]*result // package + " " + test
	order    []string
	packages map[string]*result // package-level outcome (Test == "")
}

func parseEvents(data []byte) (*results, error) {
	rs := &results{tests: map[string]*result{}, packages: map[string]*result{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // build output and the like
		}
		var r *result
		if e.Test == "" {
			r = rs.packages[e.Package]
			if r == nil {
				r = &result{Package: e.Package}
				rs.packages[e.Package] = r
			}
		} else {
			k := e.Package + " " + e.Test
			r = rs.tests[k]
			if r == nil {
				r = &result{Package: e.Package, Test: e.Test}
				rs.tests[k] = r
				rs.order = append(rs.order, k)
			}
		}
		switch e.Action {
		case "output":
			r.Output = append(r.Output, e.Output)
		case "pass", "fail", "skip":
			r.Action, r.Elapsed = e.Action, e.Elapsed
		}
	}
	if len(rs.tests) == 0 && len(rs.packages) == 0 {
		return nil, fmt.Errorf("no test events in the go test -json output")
	}
	return rs, sc.Err()
}

// funcInfo is what the report needs of a function in package conformance.
type funcInfo struct {
	File  string
	Doc   string          // whole doc comment
	Calls map[string]bool // identifiers used in the body (selector names included)
}

// parseSource reads the doc comments and calls of every function in dir's
// Go files (tests included).
func parseSource(dir string) (map[string]*funcInfo, error) {
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	files := map[string]*ast.File{}
	for _, path := range paths {
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		files[path] = f
	}
	funcs := map[string]*funcInfo{}
	for path, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || fd.Body == nil {
				continue
			}
			fi := &funcInfo{File: filepath.Base(path), Calls: map[string]bool{}}
			if fd.Doc != nil {
				fi.Doc = fd.Doc.Text()
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if id, ok := n.(*ast.Ident); ok {
					fi.Calls[id.Name] = true
				}
				return true
			})
			funcs[fd.Name.Name] = fi
		}
	}
	return funcs, nil
}

// reaches reports whether fn uses name, directly or through the package's
// own functions.
func reaches(funcs map[string]*funcInfo, fn, name string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(f string) bool {
		if seen[f] {
			return false
		}
		seen[f] = true
		fi := funcs[f]
		if fi == nil {
			return false
		}
		if fi.Calls[name] {
			return true
		}
		for c := range fi.Calls {
			if c != f && funcs[c] != nil && c != "TestMatrix" && walk(c) {
				return true
			}
		}
		return false
	}
	return walk(fn)
}

// Spec groups, in report order. The key is the first specification the
// first line of a case's doc comment names.
var groups = []struct{ key, title string }{
	{"RFC 7247", "RFC 7247 — addresses and errors"},
	{"RFC 7572", "RFC 7572 — instant messaging"},
	{"RFC 3428", "RFC 3428 — SIP MESSAGE"},
	{"RFC 8048", "RFC 8048 — presence"},
	{"XEP-0114", "XEP-0114 — component protocol"},
	{"XEP-0100", "XEP-0100 — gateway interaction"},
	{"XEP-0106", "XEP-0106 — JID escaping"},
	{"XEP-0199", "XEP-0199 — XMPP ping"},
	{"RFC 6120", "RFC 6120/6121 — XMPP core"},
	{"RFC 6121", "RFC 6120/6121 — XMPP core"},
	{"RFC 3261", "RFC 3261 — SIP"},
	{"XEP-0166", "XEP-0166/0167 ⇄ RFC 3261/3264 — calls"},
	{"XEP-0167", "XEP-0166/0167 ⇄ RFC 3261/3264 — calls"},
	{"XEP-0353", "XEP-0353 — ringing every device"},
	{"RFC 3264", "XEP-0166/0167 ⇄ RFC 3261/3264 — calls"},
	{"RFC 4568", "RFC 4568 — SDES-SRTP toward phones"},
	{"RFC 4733", "RFC 4733 — DTMF"},
	{"docs/calls.md", "Calls: robustness (docs/calls.md)"},
	{"docs/architecture.md", "Durability and robustness (docs/architecture.md)"},
	{"", "Other"},
}

var (
	specRE    = regexp.MustCompile(`(RFC \d{3,5}|XEP-\d{4}|docs/architecture\.md|docs/calls\.md)`)
	sectionRE = regexp.MustCompile(`^\s*(Table \d+(?: \(§[\d.]+\))?|§[\d.]+(?:/§[\d.]+)*)`)
)

// specOf returns the specification and section the doc's first line names.
func specOf(docText string) (spec, section string) {
	first, _, _ := strings.Cut(strings.TrimSpace(docText), "\n")
	loc := specRE.FindStringIndex(first)
	if loc == nil {
		return "", ""
	}
	spec = first[loc[0]:loc[1]]
	if m := sectionRE.FindStringSubmatch(first[loc[1]:]); m != nil {
		section = m[1]
	}
	return spec, section
}

func groupTitle(spec string) string {
	for _, g := range groups {
		if g.key == spec {
			return g.title
		}
	}
	if spec != "" {
		return spec
	}
	return "Other"
}

// Report is what the templates render.
type Report struct {
	Generated, Commit, GoVersion, Command string
	Duration                              time.Duration
	Columns                               []string
	Groups                                []*Group
	Totals                                map[string]int
	Peers                                 []PeerVersion
	Harness                               []HarnessRow // tests of the other packages (conformance/peers, ...)
	BrokenPackages                        []string     // packages that failed outside any test (build error, crash, timeout)
}

type PeerVersion struct{ Package, Version string }

type HarnessRow struct {
	Package, Test, Status, Reason string
	Elapsed                       float64
}

type Group struct {
	Title string
	Rows  []*Row
}

type Row struct {
	Case     string // TestX or TestMatrix/<case>
	Spec     string // "RFC 7572"
	Section  string // "§5"
	Synopsis string // first sentence of the doc comment
	File     string
	Cells    []*Cell // one per column
}

type Cell struct {
	Status     string // pass, fail, skip, n/a
	Reason     string // skip or n/a reason
	Elapsed    float64
	Transcript string // relative link, failing cells only
	Test       string // full test name
	pkg        string // the package its result came from (ejabberd pass: confPkg+ejabberdRun)
}

// Class is the CSS class of the cell.
func (c *Cell) Class() string {
	if c.Status == "n/a" {
		return "na"
	}
	return c.Status
}

// Label is the cell text.
func (c *Cell) Label() string {
	if c.Status == "fail" {
		return "FAIL"
	}
	return c.Status
}

// Title is the cell's tooltip.
func (c *Cell) Title() string {
	s := c.Test
	if c.Elapsed > 0 {
		s += fmt.Sprintf(" (%.1fs)", c.Elapsed)
	}
	if c.Reason != "" {
		s += ": " + c.Reason
	}
	return s
}

// column returns the peer combination a non-matrix test runs on.
func column(funcs map[string]*funcInfo, test string) string {
	// The XMPP server is the run's (Prosody, then ejabberd in the second
	// pass), not something the test's code names: both are reachable
	// through newWorld.
	c := "prosody+slixmpp"
	if reaches(funcs, test, "StartKamailio") {
		c += "+kamailio"
	}
	if reaches(funcs, test, "StartBaresip") {
		c += "+baresip"
	}
	return c
}

var matrixOrder = []string{"prosody+slixmpp", "ejabberd+slixmpp", "prosody+go-sendxmpp"}

func build(rs *results, funcs map[string]*funcInfo) *Report {
	rep := &Report{Totals: map[string]int{}}
	rows := map[string]*Row{}
	var rowOrder []string
	cells := map[string]map[string]*Cell{} // case → column → cell
	colSet := map[string]bool{}
	add := func(caseName, fn, col string, r *result) {
		row := rows[caseName]
		if row == nil {
			fi := funcs[fn]
			row = &Row{Case: caseName}
			if fi != nil {
				row.Spec, row.Section = specOf(fi.Doc)
				row.Synopsis = new(doc.Package).Synopsis(fi.Doc)
				row.File = fi.File
			}
			rows[caseName] = row
			rowOrder = append(rowOrder, caseName)
			cells[caseName] = map[string]*Cell{}
		}
		c := &Cell{Status: r.Action, Elapsed: r.Elapsed, Test: r.Test, pkg: r.Package}
		switch r.Action {
		case "skip":
			c.Reason = r.SkipReason()
			if strings.HasPrefix(c.Reason, "n/a") {
				c.Status = "n/a"
			}
		case "":
			c.Status = "fail"
			c.Reason = "did not finish (test binary crashed or timed out)"
		}
		cells[caseName][col] = c
		colSet[col] = true
	}
	for _, k := range rs.order {
		r := rs.tests[k]
		ejab := r.Package == confPkg+ejabberdRun
		if r.Package != confPkg && !ejab {
			if !strings.Contains(r.Test, "/") {
				st := r.Action
				if st == "" {
					st = "fail"
				}
				rep.Harness = append(rep.Harness, HarnessRow{Package: r.Package, Test: r.Test, Status: st, Reason: r.SkipReason(), Elapsed: r.Elapsed})
			}
			continue
		}
		parts := strings.Split(r.Test, "/")
		switch {
		case parts[0] == "TestMatrix" && len(parts) == 3:
			add("TestMatrix/"+parts[1], "matrix"+parts[1], parts[2], r)
		case parts[0] == "TestMatrix":
			// the parents' results are their subtests'
		case len(parts) == 1 && ejab:
			add(r.Test, r.Test, strings.Replace(column(funcs, r.Test), "prosody", "ejabberd", 1), r)
		case len(parts) == 1:
			add(r.Test, r.Test, column(funcs, r.Test), r)
		}
	}
	// Columns: the matrix's in its order, then the others by name.
	for _, c := range matrixOrder {
		if colSet[c] {
			rep.Columns = append(rep.Columns, c)
			delete(colSet, c)
		}
	}
	var rest []string
	for c := range colSet {
		rest = append(rest, c)
	}
	sort.Strings(rest)
	rep.Columns = append(rep.Columns, rest...)

	byGroup := map[string]*Group{}
	for _, name := range rowOrder {
		row := rows[name]
		for _, col := range rep.Columns {
			c := cells[name][col]
			if c == nil {
				c = &Cell{Status: "n/a", Reason: "not run on this combination"}
			}
			row.Cells = append(row.Cells, c)
			rep.Totals[c.Status]++
		}
		title := groupTitle(row.Spec)
		g := byGroup[title]
		if g == nil {
			g = &Group{Title: title}
			byGroup[title] = g
		}
		g.Rows = append(g.Rows, row)
	}
	seen := map[string]bool{}
	for _, gd := range groups {
		if g := byGroup[gd.title]; g != nil && !seen[gd.title] {
			rep.Groups = append(rep.Groups, g)
			seen[gd.title] = true
		}
	}
	var extra []string
	for t := range byGroup {
		if !seen[t] {
			extra = append(extra, t)
		}
	}
	sort.Strings(extra)
	for _, t := range extra {
		rep.Groups = append(rep.Groups, byGroup[t])
	}
	for pkg, r := range rs.packages {
		if r.Action == "fail" {
			failedTest := false
			for _, t := range rs.tests {
				if t.Package == pkg && (t.Action == "fail" || t.Action == "") {
					failedTest = true
				}
			}
			if !failedTest {
				rep.BrokenPackages = append(rep.BrokenPackages, pkg+": "+lastLines(r.Output, 20))
			}
		}
	}
	sort.Strings(rep.BrokenPackages)
	return rep
}

func lastLines(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, ""))
}

// transcriptFile mirrors conformance.TranscriptFile (the name a matrix
// case writes its transcript under).
func transcriptFile(test string) string {
	return regexp.MustCompile(`[^A-Za-z0-9._+-]+`).ReplaceAllString(strings.ReplaceAll(test, "/", "__"), "_") + ".txt"
}

// keepTranscripts writes OUT/transcripts/<test>.txt for every failing
// cell (the case's own transcript, if it wrote one, then the test's go
// test output) and removes the staging dir with the passing ones.
func keepTranscripts(rep *Report, rs *results, runDir, trDir string) error {
	for _, g := range rep.Groups {
		for _, row := range g.Rows {
			for _, c := range row.Cells {
				if c.Status != "fail" {
					continue
				}
				name, own := transcriptFile(c.Test), runDir
				if c.pkg == confPkg+ejabberdRun {
					name, own = "ejabberd-"+name, filepath.Join(runDir, "ejabberd")
				}
				var b bytes.Buffer
				if own, err := os.ReadFile(filepath.Join(own, transcriptFile(c.Test))); err == nil {
					b.Write(own)
					b.WriteString("\n")
				}
				fmt.Fprintf(&b, "== go test output of %s\n", c.Test)
				for _, k := range rs.order {
					r := rs.tests[k]
					if r.Package == c.pkg && (r.Test == c.Test || strings.HasPrefix(r.Test, c.Test+"/")) {
						for _, l := range r.Output {
							b.WriteString(l)
						}
					}
				}
				if err := os.MkdirAll(trDir, 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(trDir, name), b.Bytes(), 0o644); err != nil {
					return err
				}
				c.Transcript = "transcripts/" + name
			}
		}
	}
	return os.RemoveAll(runDir)
}

// gitDescribe names the commit the tree is at by its full hash, followed by
// " plus uncommitted changes to " and the files when the tree differs from it
// (modified, staged, deleted or untracked files; ignored files and the
// report's own output directory outDir do not count).
func gitDescribe(outDir string) string {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "unknown"
	}
	root := strings.TrimSpace(string(top))
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	s := strings.TrimSpace(string(head))
	args := []string{"-C", root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", "."}
	if real, err := filepath.EvalSymlinks(outDir); err == nil {
		if rel, err := filepath.Rel(root, real); err == nil && !strings.HasPrefix(rel, "..") {
			args = append(args, ":(exclude)"+filepath.ToSlash(rel))
		}
	}
	st, err := exec.Command("git", args...).Output()
	if err != nil {
		return s + " plus changes that git status could not list"
	}
	// Entries are "XY path\0", a rename or copy followed by "origin\0".
	var files []string
	entries := strings.Split(string(st), "\x00")
	for i := 0; i < len(entries); i++ {
		e := entries[i]
		if len(e) < 4 {
			continue
		}
		files = append(files, e[3:])
		if e[0] == 'R' || e[0] == 'C' {
			i++
		}
	}
	if len(files) > 0 {
		sort.Strings(files)
		s += " plus uncommitted changes to " + strings.Join(files, ", ")
	}
	return s
}

func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// peerVersions lists the Debian packages of the peers (dpkg-query).
func peerVersions() []PeerVersion {
	var out []PeerVersion
	for _, p := range []string{"prosody", "ejabberd", "python3-slixmpp", "go-sendxmpp", "sip-tester", "baresip-core", "kamailio", "postgresql"} {
		v, err := exec.Command("dpkg-query", "-W", "-f=${Version}", p).Output()
		ver := strings.TrimSpace(string(v))
		if err != nil || ver == "" {
			ver = "not installed"
		}
		out = append(out, PeerVersion{p, ver})
	}
	return out
}
