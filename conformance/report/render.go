package main

import (
	"fmt"
	"html/template"
	"os"
	"strings"
)

// howToRead is the explanation both report formats start with.
const howToRead = `Each row is one conformance case: a test that names, in its first doc
comment line, the specification section it checks, and asserts what crosses
the wire. Rows are grouped by specification. Each column is a peer
combination: the XMPP server stox is a component of (Prosody or ejabberd,
XEP-0114 on both) plus the XMPP client (slixmpp or go-sendxmpp); the SIP
side is sipp unless the column names Kamailio (trunk mode) or baresip.
A cell is pass, FAIL (linked to its transcript: the SIP messages sipp
exchanged, the stanzas the XMPP client sent and saw, stox's log and the test
output), skip (a peer is not installed here; in CI, where CI=true, a missing
peer is a failure instead) or n/a (the case does not apply to that
combination, e.g. go-sendxmpp cannot send an IQ or show an error stanza, or
the case is only written for one set of peers).`

func writeMarkdown(path string, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# stox conformance and interop report\n\n")
	fmt.Fprintf(&b, "Generated %s from commit %s with %s by `%s`", rep.Generated, rep.Commit, rep.GoVersion, rep.Command)
	if rep.Duration > 0 {
		fmt.Fprintf(&b, " in %s", rep.Duration)
	}
	fmt.Fprintf(&b, ".\n\n**%d pass, %d fail, %d skip, %d n/a.** The same report as HTML: [index.html](index.html).\n\n",
		rep.Totals["pass"], rep.Totals["fail"], rep.Totals["skip"], rep.Totals["n/a"])
	fmt.Fprintf(&b, "## How to read it\n\n%s\n\n", howToRead)
	for _, p := range rep.BrokenPackages {
		fmt.Fprintf(&b, "**Package failed outside its tests:**\n\n```\n%s\n```\n\n", p)
	}
	esc := strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace
	for _, g := range rep.Groups {
		fmt.Fprintf(&b, "## %s\n\n| case | section | %s |\n|---|---|%s\n", g.Title, strings.Join(rep.Columns, " | "),
			strings.Repeat("---|", len(rep.Columns)))
		for _, r := range g.Rows {
			fmt.Fprintf(&b, "| `%s`<br>%s | %s %s |", r.Case, esc(r.Synopsis), r.Spec, esc(r.Section))
			for _, c := range r.Cells {
				switch {
				case c.Transcript != "":
					fmt.Fprintf(&b, " [**FAIL**](%s) |", c.Transcript)
				case c.Status == "skip":
					fmt.Fprintf(&b, " skip: %s |", esc(c.Reason))
				default:
					fmt.Fprintf(&b, " %s |", c.Label())
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	if len(rep.Harness) > 0 {
		b.WriteString("## Peer harness self-tests\n\n| package | test | result |\n|---|---|---|\n")
		for _, h := range rep.Harness {
			res := h.Status
			if h.Reason != "" && h.Status == "skip" {
				res += ": " + esc(h.Reason)
			}
			fmt.Fprintf(&b, "| %s | `%s` | %s |\n", h.Package, h.Test, res)
		}
		b.WriteString("\n")
	}
	b.WriteString("## Peers\n\n| Debian package | version |\n|---|---|\n")
	for _, p := range rep.Peers {
		fmt.Fprintf(&b, "| %s | %s |\n", p.Package, p.Version)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>stox conformance and interop report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 90em; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.cell { text-align: center; white-space: nowrap; font-weight: 600; }
td.pass { background: #d9f2d9; color: #165c16; }
td.fail { background: #f8d0d0; color: #8b0000; }
td.skip { background: #fff1c6; color: #7a5b00; }
td.na { background: #f6f6f6; color: #999; font-weight: normal; }
td.case code { font-weight: 600; }
.syn { color: #555; font-size: 0.9em; }
.totals span { margin-right: 1em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
</style>
</head>
<body>
<h1>stox conformance and interop report</h1>
<p>Generated {{.Generated}} from commit <code>{{.Commit}}</code> with {{.GoVersion}} by <code>{{.Command}}</code>{{if .Duration}} in {{.Duration}}{{end}}.
Also as <a href="report.md">report.md</a>.</p>
<p class="totals"><span>pass: <b>{{index .Totals "pass"}}</b></span><span>fail: <b>{{index .Totals "fail"}}</b></span><span>skip: <b>{{index .Totals "skip"}}</b></span><span>n/a: <b>{{index .Totals "n/a"}}</b></span></p>
<h2>How to read it</h2>
<p>{{.HowToRead}}</p>
{{range .BrokenPackages}}<p><b>Package failed outside its tests:</b></p><pre>{{.}}</pre>{{end}}
{{$cols := .Columns}}
{{range .Groups}}
<h2>{{.Title}}</h2>
<table>
<tr><th>case</th><th>section</th>{{range $cols}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>
<td class="case"><code>{{.Case}}</code><br><span class="syn">{{.Synopsis}}</span></td>
<td>{{.Spec}} {{.Section}}</td>
{{range .Cells}}<td class="cell {{.Class}}" title="{{.Title}}">{{if .Transcript}}<a href="{{.Transcript}}">{{.Label}}</a>{{else}}{{.Label}}{{end}}</td>{{end}}
</tr>
{{end}}</table>
{{end}}
{{if .Harness}}<h2>Peer harness self-tests</h2>
<table><tr><th>package</th><th>test</th><th>result</th></tr>
{{range .Harness}}<tr><td>{{.Package}}</td><td><code>{{.Test}}</code></td><td class="cell {{.Status}}" title="{{.Reason}}">{{.Status}}</td></tr>
{{end}}</table>{{end}}
<h2>Peers</h2>
<table><tr><th>Debian package</th><th>version</th></tr>
{{range .Peers}}<tr><td>{{.Package}}</td><td>{{.Version}}</td></tr>
{{end}}</table>
</body>
</html>
`))

func writeHTML(path string, rep *Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	data := struct {
		*Report
		HowToRead string
	}{rep, howToRead}
	if err := page.Execute(f, data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
