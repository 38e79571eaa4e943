package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
)

// plotCSV reads the harness's CSV (csvHeader) and writes an SVG next to
// it (load.csv → load.svg): two panels, achieved msg/s and p99 latency
// versus offered rate, one line per direction × store (× destinations when
// a direction ran with several). When a configuration ran more than once at
// a rate, its latest row counts. Rows without an offered rate (reg) are left
// out. It returns the SVG's path.
func plotCSV(csvPath string) (string, error) {
	f, err := os.Open(csvPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	series, err := readSeries(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", csvPath, err)
	}
	out := strings.TrimSuffix(csvPath, filepath.Ext(csvPath)) + ".svg"
	w, err := os.Create(out)
	if err != nil {
		return "", err
	}
	if err := writeSVG(w, series); err != nil {
		w.Close()
		return "", err
	}
	return out, w.Close()
}

type point struct{ offered, achieved, p99 float64 }

type series struct {
	name   string
	points []point // by offered rate
}

func readSeries(r io.Reader) ([]series, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // rows written before columns were appended are shorter
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("no rows")
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, h := range []string{"store", "direction", "dests", "offered_per_s", "achieved_per_s", "p99_ms"} {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("no column %q", h)
		}
	}
	for i, row := range rows[1:] {
		if len(row) < len(rows[0]) {
			rows[i+1] = append(row, make([]string, len(rows[0])-len(row))...)
		}
	}
	num := func(row []string, h string) float64 {
		v, _ := strconv.ParseFloat(row[col[h]], 64)
		return v
	}
	dests := map[string]map[string]bool{} // direction → distinct dests
	for _, row := range rows[1:] {
		d := row[col["direction"]]
		if dests[d] == nil {
			dests[d] = map[string]bool{}
		}
		dests[d][row[col["dests"]]] = true
	}
	byName := map[string]map[float64]point{}
	for _, row := range rows[1:] {
		off := num(row, "offered_per_s")
		if off <= 0 || row[col["direction"]] == "reg" {
			continue
		}
		name := row[col["direction"]] + " " + row[col["store"]]
		if len(dests[row[col["direction"]]]) > 1 {
			name += " ×" + row[col["dests"]]
		}
		if byName[name] == nil {
			byName[name] = map[float64]point{}
		}
		byName[name][off] = point{off, num(row, "achieved_per_s"), num(row, "p99_ms")} // later rows win
	}
	var out []series
	for name, pts := range byName {
		s := series{name: name}
		for _, p := range pts {
			s.points = append(s.points, p)
		}
		slices.SortFunc(s.points, func(a, b point) int { return int(a.offered - b.offered) })
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b series) int { return strings.Compare(a.name, b.name) })
	if len(out) == 0 {
		return nil, fmt.Errorf("no rows with an offered rate")
	}
	return out, nil
}

// niceMax rounds v up to 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^n.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

type svgPanel struct {
	X, Y, W, H    float64
	Title, YLabel string
	Ideal         string // polyline points of achieved = offered, first panel only
	XTicks        []svgTick
	YTicks        []svgTick
	Lines         []svgLine
}

type svgTick struct {
	Pos   float64
	Label string
}

type svgLine struct {
	Color, Name, Points string
	XY                  [][2]float64 // the points, for the markers
}

type svgDoc struct {
	W, H   float64
	Title  string
	Panels []svgPanel
	Legend []svgLine
}

// The template's text and attributes are escaped by text/template's html
// function; names come from the CSV.
const svgText = `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{{.W | half}}" y="22" text-anchor="middle" font-size="15">{{html .Title}}</text>
{{range .Panels}}{{$p := .}}<g>
<text x="{{add .X (half .W)}}" y="{{sub .Y 8}}" text-anchor="middle" font-size="13">{{html .Title}}</text>
<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="none" stroke="#444"/>
{{range .YTicks}}<line x1="{{$p.X}}" x2="{{add $p.X $p.W}}" y1="{{.Pos}}" y2="{{.Pos}}" stroke="#ddd"/><text x="{{sub $p.X 6}}" y="{{add .Pos 4}}" text-anchor="end">{{html .Label}}</text>
{{end}}{{range .XTicks}}<line x1="{{.Pos}}" x2="{{.Pos}}" y1="{{$p.Y}}" y2="{{add $p.Y $p.H}}" stroke="#ddd"/><text x="{{.Pos}}" y="{{add (add $p.Y $p.H) 16}}" text-anchor="middle">{{html .Label}}</text>
{{end}}<text x="{{add .X (half .W)}}" y="{{add (add .Y .H) 34}}" text-anchor="middle">offered msg/s</text>
<text transform="translate({{sub .X 52}},{{add .Y (half .H)}}) rotate(-90)" text-anchor="middle">{{html .YLabel}}</text>
{{if .Ideal}}<polyline fill="none" stroke="#888" stroke-dasharray="5,4" points="{{.Ideal}}"/>
{{end}}{{range .Lines}}<polyline fill="none" stroke="{{.Color}}" stroke-width="2" points="{{.Points}}"/>
{{$c := .Color}}{{range .XY}}<circle cx="{{index . 0}}" cy="{{index . 1}}" r="3" fill="{{$c}}"/>
{{end}}{{end}}</g>
{{end}}{{range $i, $l := .Legend}}<g><line x1="80" x2="104" y1="{{legendY $i}}" y2="{{legendY $i}}" stroke="{{$l.Color}}" stroke-width="3"/><text x="110" y="{{add (legendY $i) 4}}">{{html $l.Name}}</text></g>
{{end}}</svg>
`

func writeSVG(w io.Writer, ss []series) error {
	const (
		panelW, panelH = 420.0, 300.0
		left, top, gap = 80.0, 60.0, 110.0
	)
	doc := svgDoc{W: left + 2*panelW + gap + 30, Title: "stox load: achieved rate and p99 latency versus offered rate"}
	doc.H = top + panelH + 60 + float64(len(ss))*18 + 20
	maxOff, maxAch, maxP99 := 0.0, 0.0, 0.0
	for _, s := range ss {
		for _, p := range s.points {
			maxOff, maxAch, maxP99 = max(maxOff, p.offered), max(maxAch, p.achieved), max(maxP99, p.p99)
		}
	}
	xMax := niceMax(maxOff)
	yMax := niceMax(max(maxAch, maxOff))
	// p99 spans 0.5 ms to seconds: log10 scale from 0.1 ms to the next
	// power of ten above the largest.
	logLo, logHi := -1.0, math.Max(0, math.Ceil(math.Log10(math.Max(maxP99, 1))))
	yPos := func(i int, v float64) float64 { // fraction of the panel height
		if i == 0 {
			return v / yMax
		}
		return (math.Log10(math.Max(v, 0.1)) - logLo) / (logHi - logLo)
	}
	for i, title := range []string{"achieved msg/s (dashed: achieved = offered)", "p99 latency (ms, log scale)"} {
		p := svgPanel{X: left + float64(i)*(panelW+gap), Y: top, W: panelW, H: panelH, Title: title, YLabel: strings.Split(title, " (dashed")[0]}
		for k := 0; k <= 5; k++ {
			xv := xMax * float64(k) / 5
			p.XTicks = append(p.XTicks, svgTick{p.X + panelW*float64(k)/5, strconv.FormatFloat(xv, 'f', -1, 64)})
			if i == 0 {
				yv := yMax * float64(k) / 5
				p.YTicks = append(p.YTicks, svgTick{p.Y + panelH - panelH*float64(k)/5, strconv.FormatFloat(yv, 'f', -1, 64)})
			}
		}
		if i == 1 {
			for e := logLo; e <= logHi; e++ {
				v := math.Pow(10, e)
				p.YTicks = append(p.YTicks, svgTick{p.Y + panelH - panelH*yPos(1, v), strconv.FormatFloat(v, 'f', -1, 64)})
			}
		} else {
			p.Ideal = fmt.Sprintf("%.1f,%.1f %.1f,%.1f", p.X, p.Y+panelH, p.X+panelW*math.Min(xMax, yMax)/xMax, p.Y+panelH-panelH*math.Min(xMax, yMax)/yMax)
		}
		for j, s := range ss {
			l := svgLine{Color: palette[j%len(palette)], Name: s.name}
			var pts []string
			for _, pt := range s.points {
				v := pt.achieved
				if i == 1 {
					v = pt.p99
				}
				x := p.X + panelW*pt.offered/xMax
				y := p.Y + panelH - panelH*yPos(i, v)
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
				l.XY = append(l.XY, [2]float64{math.Round(x*10) / 10, math.Round(y*10) / 10})
			}
			l.Points = strings.Join(pts, " ")
			p.Lines = append(p.Lines, l)
			if i == 0 {
				doc.Legend = append(doc.Legend, l)
			}
		}
		doc.Panels = append(doc.Panels, p)
	}
	legendTop := top + panelH + 60
	t, err := template.New("svg").Funcs(template.FuncMap{
		"half":    func(v float64) float64 { return v / 2 },
		"add":     func(a, b float64) float64 { return a + b },
		"sub":     func(a, b float64) float64 { return a - b },
		"legendY": func(i int) float64 { return legendTop + float64(i)*18 },
	}).Parse(svgText)
	if err != nil {
		return err
	}
	return t.Execute(w, doc)
}
