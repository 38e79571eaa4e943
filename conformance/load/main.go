// Command load is stox's load harness: it starts Prosody, stox and sipp on
// 127.0.0.1, offers MESSAGE load in both directions and REGISTER load, and
// reports throughput, loss, latency and memory (one CSV row per run in
// conformance/report/load.csv, and a table on stdout). See docs/perf.md.
//
//	go build -o /tmp/stox-load ./cmd/stox
//	go run ./conformance/load -mode s2x -rate 1000 -duration 5s
//	go run ./conformance/load -sweep
//	go run ./conformance/load -mode calls -calls 50,100,200,500   # calls.go, make load-calls
//
// Every process it starts is stopped at the end, also on error or ^C.
package main

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"stox.dev/stox/conformance/peers"
)

//go:embed load_uac.xml load_uas.xml load_reg.xml
var scenarios embed.FS

type options struct {
	mode      string
	store     string
	rate      int
	duration  time.Duration
	dests     int
	sweep     bool
	stoxBin   string
	csv       string
	keep      bool
	regN      int
	regRate   int
	authN     int
	authRate  int
	authLimit int
	grace     string
	plot      bool
	capture   bool
	calls     callOptions
	levels    string
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "s2x", "s2x (SIP→XMPP), x2s (XMPP→SIP), reg (REGISTER memory and digest rate), all; calls (call load, calls.go)")
	flag.StringVar(&o.store, "store", "memory", "memory or postgres (a throwaway stox_load_* database, dropped at the end)")
	flag.IntVar(&o.rate, "rate", 1000, "offered messages per second")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "how long to offer load per run")
	flag.IntVar(&o.dests, "dests", 8, "x2s: number of SIP destinations (sipp UASes registered at stox)")
	flag.BoolVar(&o.sweep, "sweep", false, "rates 1000,2000,4000,8000,12000 × (s2x, x2s with 1 and 8 destinations) × (memory, postgres), then reg")
	flag.StringVar(&o.stoxBin, "stox", "/tmp/stox-load", "stox binary (built with go build -o /tmp/stox-load ./cmd/stox when missing)")
	flag.StringVar(&o.csv, "csv", "conformance/report/load.csv", "CSV file a row per run is appended to")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (logs, configs, sipp traces)")
	flag.IntVar(&o.regN, "reg-n", 100000, "reg: distinct AORs registered (trusted peer, in-memory store) for the memory figure")
	flag.IntVar(&o.regRate, "reg-rate", 5000, "reg: REGISTER/s offered for the memory figure")
	flag.IntVar(&o.authN, "auth-n", 20000, "reg: REGISTERs with digest, on the memory store and on Postgres")
	flag.IntVar(&o.authRate, "auth-rate", 20000, "reg: REGISTER/s offered with digest (capped by -auth-limit in flight)")
	flag.IntVar(&o.authLimit, "auth-limit", 200, "reg: REGISTER transactions in flight with digest")
	flag.StringVar(&o.grace, "error-grace", "0s", "stox core.error_grace (\"\" = stox default 20ms)")
	flag.BoolVar(&o.plot, "plot", false, "only redraw the SVG (-csv with .svg) from the existing CSV")
	flag.BoolVar(&o.capture, "capture", false, "s2x, x2s: tcpdump lo on stox's SIP port and the component port during each run and report the latency stox adds on the wire (capture.go)")
	flag.StringVar(&o.levels, "calls", "50,100,200,500", "calls: concurrent calls per step of the ramp")
	flag.DurationVar(&o.calls.hold, "call-hold", 10*time.Second, "calls: media time per step once every call is up")
	flag.IntVar(&o.calls.inflight, "call-inflight", 50, "calls: session-initiates awaiting their session-accept")
	flag.IntVar(&o.calls.clients, "call-clients", 10, "calls: XMPP clients the calls are spread over")
	flag.BoolVar(&o.calls.direct, "call-direct", false, "calls: baseline without stox (in-process pion echo peer)")
	flag.BoolVar(&o.calls.rtpengine, "call-rtpengine", false, "calls: reference run with rtpengine (userspace) in place of stox, the same callers and echo")
	flag.StringVar(&o.calls.callsCSV, "calls-csv", "conformance/report/calls.csv", "calls: CSV file a row per step is appended to")
	echoPort := flag.Int("echo-port", 0, "rtp-echo: UDP port (the call harness runs itself so)")
	flag.Parse()
	o.calls.keepCalls = o.keep
	if o.plot {
		if _, err := plotCSV(o.csv); err != nil {
			fmt.Fprintln(os.Stderr, "plot:", err)
			os.Exit(1)
		}
		return
	}

	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; fmt.Fprintln(os.Stderr, "interrupted: stopping"); cancel() }()

	var err error
	if o.mode == "rtp-echo" {
		if err := runEcho(*echoPort); err != nil {
			fmt.Fprintln(os.Stderr, "rtp-echo:", err)
			os.Exit(1)
		}
		return
	}
	if o.mode == "calls" {
		if o.calls.levels, err = parseLevels(o.levels); err == nil {
			err = buildStox(o.stoxBin)
		}
		if err == nil {
			err = runCalls(ctx, o, o.calls)
		}
	} else {
		err = run(ctx, o)
	}
	stopAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// buildStox builds stox at bin when it is missing.
func buildStox(bin string) error {
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	fmt.Fprintln(os.Stderr, "building", bin)
	b := exec.Command("go", "build", "-o", bin, "./cmd/stox")
	b.Stdout, b.Stderr = os.Stderr, os.Stderr
	if err := b.Run(); err != nil {
		return fmt.Errorf("build stox: %w", err)
	}
	return nil
}

func run(ctx context.Context, o options) error {
	if err := buildStox(o.stoxBin); err != nil {
		return err
	}
	if err := peers.LookBins("sipp", "prosody", "prosodyctl"); err != nil {
		return err
	}
	var results []result
	defer func() {
		printTable(results)
		if len(results) > 0 {
			if _, err := plotCSV(o.csv); err != nil {
				fmt.Fprintln(os.Stderr, "plot:", err)
			}
		}
	}()
	add := func(r result) error {
		results = append(results, r)
		fmt.Println(r.line())
		return appendCSV(o.csv, r)
	}
	stores := []string{o.store}
	if o.sweep {
		stores = []string{"memory", "postgres"}
	}
	for _, st := range stores {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if o.mode == "reg" && !o.sweep {
			break
		}
		e, err := newEnv(ctx, o, st)
		if err != nil {
			return err
		}
		err = func() error {
			defer e.close()
			type job struct {
				dir   string
				dests int
			}
			var jobs []job
			if o.sweep || o.mode == "s2x" || o.mode == "all" {
				jobs = append(jobs, job{"s2x", 0})
			}
			if o.sweep {
				jobs = append(jobs, job{"x2s", 1}, job{"x2s", 8})
			} else if o.mode == "x2s" || o.mode == "all" {
				jobs = append(jobs, job{"x2s", o.dests})
			}
			rates := []int{o.rate}
			if o.sweep {
				rates = []int{1000, 2000, 4000, 8000, 12000}
			}
			for _, j := range jobs {
				for _, r := range rates {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					var res result
					var err error
					if j.dir == "s2x" {
						res, err = e.runS2X(ctx, r, o.duration)
					} else {
						res, err = e.runX2S(ctx, r, o.duration, j.dests)
					}
					if err != nil {
						return err
					}
					if err := add(res); err != nil {
						return err
					}
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	if o.sweep || o.mode == "reg" || o.mode == "all" {
		rs, err := runReg(ctx, o)
		for _, r := range rs {
			if err := add(r); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// env is one store's set-up: Prosody with the receiver and sender users,
// the stox config (stox is restarted for every run), a temp dir.
type env struct {
	o       options
	store   string
	dir     string
	pros    *peers.Prosody
	stox    *stox
	drop    func()
	dsn     string
	alice   *client // receiver of SIP→XMPP
	carol   *client // sender of XMPP→SIP
	scen    map[string]string
	runSeqN int
}

func writeScenarios(dir string) (map[string]string, error) {
	m := map[string]string{}
	for _, n := range []string{"load_uac.xml", "load_uas.xml", "load_reg.xml"} {
		b, err := scenarios.ReadFile(n)
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		m[n] = p
	}
	return m, nil
}

func newEnv(ctx context.Context, o options, store string) (e *env, err error) {
	e = &env{o: o, store: store}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	e.dir, err = os.MkdirTemp("", "stox-load-")
	if err != nil {
		return nil, err
	}
	if e.scen, err = writeScenarios(e.dir); err != nil {
		return nil, err
	}
	pd := filepath.Join(e.dir, "prosody")
	if e.pros, err = startProsody(pd, map[string]string{"alice": "alicepw", "carol": "carolpw"}); err != nil {
		return nil, err
	}
	dsn := ""
	if store == "postgres" {
		if dsn, e.drop, err = createDB(ctx); err != nil {
			return nil, err
		}
		e.dsn = dsn
	}
	if e.stox, err = writeStoxConfig(o.stoxBin, e.dir, e.pros.ComponentAddr(), dsn, true, o.grace); err != nil {
		return nil, err
	}
	c2s := e.pros.C2SAddr()
	if e.alice, err = dialClient(ctx, c2s, "alice", "alicepw", "load"); err != nil {
		return nil, err
	}
	if e.carol, err = dialClient(ctx, c2s, "carol", "carolpw", "load"); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	e.alice.close()
	e.carol.close()
	e.stox.stop()
	if e.pros != nil {
		e.pros.Close()
	}
	if e.drop != nil {
		e.drop()
	}
	if e.dir != "" {
		if e.o.keep {
			fmt.Fprintln(os.Stderr, "kept", e.dir)
		} else {
			os.RemoveAll(e.dir)
		}
	}
}

// result is one run's figures (one CSV row).
type result struct {
	When        time.Time
	Load1       string
	Store       string
	Direction   string // s2x, x2s, reg, reg-digest
	Dests       int
	Offered     int // per second
	Duration    float64
	Sent        int
	Accepted    int // s2x: 2xx; x2s: sent − XMPP errors; reg: 200
	Rejected    int // s2x: 503/480/other final; x2s: XMPP errors; reg: failed calls
	Delivered   int
	Lost        int
	Achieved    float64
	P50, P99    float64 // ms, end to end (send → receipt at the far side)
	SIPP50      float64 // ms, s2x: MESSAGE → final response at sipp
	SIPP99      float64
	RSSBefore   int64 // KiB
	RSSAfter    int64
	Notes       string
	BytesPerReg float64
	// -capture: what stox adds on the wire (capture.go); Wire false
	// without -capture, and the CSV columns are left empty.
	Wire                      bool
	WireMatched               int     // messages seen entering and leaving stox
	WireP50, WireP99, WireMax float64 // ms
	WireAnsP50, WireAnsP99    float64 // ms, s2x: MESSAGE in → final response out
	CaptureDrops              int64   // reported by tcpdump, -1 unknown
}

// csvHeader: columns are only ever appended, so that older files (and rows)
// still parse; appendCSV upgrades an older header in place.
var csvHeader = "time,load1,store,direction,dests,offered_per_s,duration_s,sent,accepted,rejected,delivered,lost,achieved_per_s,p50_ms,p99_ms,sip_p50_ms,sip_p99_ms,rss_before_kb,rss_after_kb,bytes_per_reg,notes" +
	",wire_matched,wire_p50_ms,wire_p99_ms,wire_max_ms,wire_answer_p50_ms,wire_answer_p99_ms,capture_drops"

func (r result) csv() string {
	return strings.Join([]string{r.When.UTC().Format(time.RFC3339), r.Load1, r.Store, r.Direction, strconv.Itoa(r.Dests),
		strconv.Itoa(r.Offered), fmt.Sprintf("%.1f", r.Duration), strconv.Itoa(r.Sent), strconv.Itoa(r.Accepted),
		strconv.Itoa(r.Rejected), strconv.Itoa(r.Delivered), strconv.Itoa(r.Lost), fmt.Sprintf("%.0f", r.Achieved),
		fmt.Sprintf("%.2f", r.P50), fmt.Sprintf("%.2f", r.P99), fmt.Sprintf("%.2f", r.SIPP50), fmt.Sprintf("%.2f", r.SIPP99),
		strconv.FormatInt(r.RSSBefore, 10), strconv.FormatInt(r.RSSAfter, 10), fmt.Sprintf("%.0f", r.BytesPerReg),
		`"` + strings.ReplaceAll(r.Notes, `"`, `""`) + `"`}, ",") + "," + strings.Join(r.wireCols(), ",")
}

// wireCols are the -capture columns, empty strings without a capture.
func (r result) wireCols() []string {
	if !r.Wire {
		return make([]string, 7)
	}
	return []string{strconv.Itoa(r.WireMatched), fmt.Sprintf("%.3f", r.WireP50), fmt.Sprintf("%.3f", r.WireP99),
		fmt.Sprintf("%.3f", r.WireMax), fmt.Sprintf("%.3f", r.WireAnsP50), fmt.Sprintf("%.3f", r.WireAnsP99),
		strconv.FormatInt(r.CaptureDrops, 10)}
}

func (r result) line() string {
	return fmt.Sprintf("%-8s %-10s %2d %6d/s %4.1fs sent=%d acc=%d rej=%d del=%d lost=%d %.0f/s p50=%.2fms p99=%.2fms sip-p50=%.2fms sip-p99=%.2fms rss=%d→%dKiB load=%s %s",
		r.Store, r.Direction, r.Dests, r.Offered, r.Duration, r.Sent, r.Accepted, r.Rejected, r.Delivered, r.Lost,
		r.Achieved, r.P50, r.P99, r.SIPP50, r.SIPP99, r.RSSBefore, r.RSSAfter, r.Load1, r.Notes) + r.wireLine()
}

func (r result) wireLine() string {
	if !r.Wire {
		return ""
	}
	s := fmt.Sprintf("\n  stox added latency p50/p99/max = %.3f/%.3f/%.3f ms, matched %d of %d delivered",
		r.WireP50, r.WireP99, r.WireMax, r.WireMatched, r.Delivered)
	if r.Direction == "s2x" {
		s += fmt.Sprintf("; SIP answer on the wire p50/p99 = %.3f/%.3f ms", r.WireAnsP50, r.WireAnsP99)
	}
	return s
}

func appendCSV(path string, r result) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	_, statErr := os.Stat(path)
	if statErr == nil {
		if err := upgradeCSVHeader(path); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if errors.Is(statErr, os.ErrNotExist) {
		fmt.Fprintln(f, csvHeader)
	}
	_, err = fmt.Fprintln(f, r.csv())
	return err
}

// upgradeCSVHeader rewrites the first line of an existing CSV whose header
// is an older (shorter) form of csvHeader, so that appended rows' new
// columns have names. Older rows keep their fields (readers allow short rows).
func upgradeCSVHeader(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	hdr, rest, _ := strings.Cut(string(b), "\n")
	hdr = strings.TrimSuffix(hdr, "\r")
	if hdr == csvHeader || !strings.HasPrefix(csvHeader, hdr+",") {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(csvHeader+"\n"+rest), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func printTable(rs []result) {
	if len(rs) == 0 {
		return
	}
	fmt.Println()
	fmt.Println("| store | direction | dests | offered/s | s | sent | accepted | rejected | delivered | lost | achieved/s | p50 ms | p99 ms | SIP p50 ms | SIP p99 ms | RSS KiB before→after | load1 | notes | wire matched | stox p50 ms | stox p99 ms | stox max ms | wire SIP answer p50 ms | wire SIP answer p99 ms | capture drops |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		w := r.wireCols()
		for i := range w {
			if w[i] == "" {
				w[i] = "–"
			}
		}
		fmt.Printf("| %s | %s | %d | %d | %.1f | %d | %d | %d | %d | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %d→%d | %s | %s | %s |\n",
			r.Store, r.Direction, r.Dests, r.Offered, r.Duration, r.Sent, r.Accepted, r.Rejected, r.Delivered, r.Lost,
			r.Achieved, r.P50, r.P99, r.SIPP50, r.SIPP99, r.RSSBefore, r.RSSAfter, r.Load1, r.Notes, strings.Join(w, " | "))
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) > 0 {
		return f[0]
	}
	return ""
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	i := int(p * float64(len(xs)-1))
	return xs[i]
}

// restartStox starts a fresh stox for a run (same config, same store).
func (e *env) restartStox() error {
	e.stox.stop()
	return e.stox.start()
}

// runS2X: sipp UAC → stox → Prosody → alice.
func (e *env) runS2X(ctx context.Context, rate int, d time.Duration) (result, error) {
	r := result{When: time.Now(), Load1: loadavg(), Store: e.store, Direction: "s2x", Dests: 1, Offered: rate, Duration: d.Seconds()}
	if err := e.restartStox(); err != nil {
		return r, err
	}
	e.alice.reset()
	time.Sleep(300 * time.Millisecond)
	r.RSSBefore = e.stox.rssKB()
	e.runSeqN++
	dir := filepath.Join(e.dir, fmt.Sprintf("s2x-%d-%d", rate, e.runSeqN))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, err
	}
	cp, err := e.startWire(dir)
	if err != nil {
		return r, err
	}
	defer cp.stop()
	n := int(float64(rate) * d.Seconds())
	logs, stat := filepath.Join(dir, "logs.log"), filepath.Join(dir, "stat.csv")
	cmd, err := sippCmd(dir, "-sf", e.scen["load_uac.xml"], e.stox.addr(),
		"-s", "alice", "-key", "to_domain", "localhost", "-key", "from_domain", "sip.other",
		"-r", strconv.Itoa(rate), "-m", strconv.Itoa(n), "-timeout", fmt.Sprintf("%ds", int(d.Seconds())+40),
		"-recv_timeout", "10000", "-max_recv_loops", "10000", "-max_sched_loops", "10000",
		"-trace_logs", "-log_file", logs, "-trace_stat", "-stf", stat, "-fd", "1",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"))
	if err != nil {
		return r, err
	}
	drops0 := udpRcvbufErrors()
	begin := time.Now()
	p, err := start("sipp-uac", cmd, filepath.Join(dir, "sipp.out"))
	if err != nil {
		return r, err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		return r, ctx.Err()
	}
	// SIP side: per-call log lines "R code ts tus rs rus".
	codes := map[string]int{}
	var sipLat []float64
	logged := 0
	b, _ := os.ReadFile(logs)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[0] != "R" {
			continue
		}
		logged++
		codes[f[1]]++
		ts, _ := strconv.ParseFloat(f[2], 64)
		tus, _ := strconv.ParseFloat(f[3], 64)
		rs, _ := strconv.ParseFloat(f[4], 64)
		rus, _ := strconv.ParseFloat(f[5], 64)
		sipLat = append(sipLat, ((rs-ts)*1e6+(rus-tus))/1000)
	}
	st := sippStats(stat)
	r.Sent = statInt(st, "TotalCallCreated")
	if r.Sent == 0 {
		r.Sent = logged
	}
	r.Accepted = codes["200"] + codes["202"]
	r.Rejected = r.Sent - r.Accepted
	// Wait for the XMPP side to drain: until every accepted message arrived
	// or nothing arrived for 2 s (at most 30 s).
	last, lastChange := -1, time.Now()
	for time.Since(lastChange) < 2*time.Second && time.Since(begin) < d+30*time.Second {
		got, _ := e.alice.counts()
		if got >= r.Accepted {
			break
		}
		if got != last {
			last, lastChange = got, time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.RSSAfter = e.stox.rssKB()
	e.alice.mu.Lock()
	r.Delivered = e.alice.got
	lat := append([]float64(nil), e.alice.lat...)
	end := e.alice.lastRecv
	xerr := 0
	for _, v := range e.alice.errs {
		xerr += v
	}
	e.alice.mu.Unlock()
	r.Lost = r.Accepted - r.Delivered
	if !end.IsZero() {
		r.Achieved = float64(r.Delivered) / end.Sub(begin).Seconds()
	}
	r.P50, r.P99 = pct(lat, 0.50), pct(lat, 0.99)
	r.SIPP50, r.SIPP99 = pct(sipLat, 0.50), pct(sipLat, 0.99)
	notes, err := e.finishWire(cp, s2xSpec(e.stox.sip, e.pros.ComponentPort), &r)
	if err != nil {
		return r, err
	}
	keys := make([]string, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		notes = append(notes, fmt.Sprintf("%s:%d", k, codes[k]))
	}
	if un := r.Sent - logged; un > 0 {
		notes = append(notes, fmt.Sprintf("no-final:%d", un))
	}
	if xerr > 0 {
		notes = append(notes, "xmpp-errors:"+e.alice.errSummary())
	}
	if dr := udpRcvbufErrors() - drops0; dr > 0 {
		notes = append(notes, fmt.Sprintf("udp-rcvbuf-drops:%d", dr))
	}
	if fc := statInt(st, "FailedCall(C)"); fc > 0 {
		notes = append(notes, fmt.Sprintf("sipp-failed:%d", fc))
	}
	if e.o.grace != "0s" {
		notes = append(notes, "error-grace:"+cmp.Or(e.o.grace, "default"))
	}
	if e.stox.p.Exited() {
		notes = append(notes, "STOX EXITED")
	}
	r.Notes = strings.Join(notes, " ")
	return r, nil
}

// startWire starts tcpdump for a run with -capture (nil without).
func (e *env) startWire(dir string) (*capture, error) {
	if !e.o.capture {
		return nil, nil
	}
	return startCapture(dir, e.stox.sip, e.pros.ComponentPort)
}

// finishWire stops the capture, matches every message's way into stox with
// its way out, fills r's wire figures and returns notes for r.Notes.
func (e *env) finishWire(c *capture, spec wireSpec, r *result) ([]string, error) {
	if c == nil {
		return nil, nil
	}
	c.stop()
	w, err := matchCapture(c.path, spec)
	if err != nil {
		return nil, fmt.Errorf("capture %s: %w", c.path, err)
	}
	r.Wire, r.CaptureDrops = true, c.drops
	r.WireMatched = len(w.Lat)
	r.WireP50, r.WireP99, r.WireMax = pct(w.Lat, 0.50), pct(w.Lat, 0.99), pct(w.Lat, 1)
	r.WireAnsP50, r.WireAnsP99 = pct(w.Answer, 0.50), pct(w.Answer, 0.99)
	fmt.Fprintf(os.Stderr, "capture: %s; %d records, %d IPv4 UDP/TCP; markers in %d, out %d, matched %d of %d delivered\n",
		c.summary, w.Stats.Records, w.Stats.Decoded, w.In, w.Out, r.WireMatched, r.Delivered)
	fmt.Fprintf(os.Stderr, "stox added latency p50/p99/max = %.3f/%.3f/%.3f ms (%s, %d/s); %d over 2 ms; the slowest, %s, entered stox %.0f ms into the capture\n",
		r.WireP50, r.WireP99, r.WireMax, r.Direction, r.Offered, w.Over2ms, w.WorstKey, w.WorstAt)
	var notes []string
	if c.drops != 0 {
		fmt.Fprintf(os.Stderr, "capture: tcpdump dropped packets: %s\n", c.summary)
		notes = append(notes, fmt.Sprintf("capture-drops:%d", c.drops))
	}
	if w.Stats.Truncated > 0 {
		notes = append(notes, fmt.Sprintf("capture-truncated:%d", w.Stats.Truncated))
	}
	if n := w.In - r.WireMatched - w.Negative; n > 0 {
		notes = append(notes, fmt.Sprintf("wire-in-only:%d", n))
	}
	if n := w.Out - r.WireMatched - w.Negative; n > 0 {
		notes = append(notes, fmt.Sprintf("wire-out-only:%d", n))
	}
	if w.Negative > 0 {
		notes = append(notes, fmt.Sprintf("wire-out-before-in:%d", w.Negative))
	}
	return notes, nil
}

// uas is one sipp UAS registered at stox as bobN@sip.localhost.
type uas struct {
	user, dir, logs, stat string
	p                     *peers.Proc
}

func (e *env) startUASes(dir string, n int) ([]*uas, error) {
	var out []*uas
	for i := 1; i <= n; i++ {
		u := &uas{user: fmt.Sprintf("bob%d", i), dir: filepath.Join(dir, fmt.Sprintf("uas%d", i))}
		if err := os.MkdirAll(u.dir, 0o755); err != nil {
			return out, err
		}
		pn, err := peers.PickPort("udp+tcp")
		if err != nil {
			return out, err
		}
		port := strconv.Itoa(pn)
		csv := filepath.Join(u.dir, "user.csv")
		if err := os.WriteFile(csv, []byte("SEQUENTIAL\n"+u.user+";x\n"), 0o644); err != nil {
			return out, err
		}
		reg, err := sippCmd(u.dir, "-sf", e.scen["load_reg.xml"], e.stox.addr(), "-p", port, "-inf", csv,
			"-key", "domain", "sip.localhost", "-m", "1", "-timeout", "10s", "-timeout_error")
		if err != nil {
			return out, err
		}
		if outb, err := reg.CombinedOutput(); err != nil {
			return out, fmt.Errorf("register %s: %v\n%s", u.user, err, tailStr(string(outb), 2000))
		}
		u.logs, u.stat = filepath.Join(u.dir, "logs.log"), filepath.Join(u.dir, "stat.csv")
		cmd, err := sippCmd(u.dir, "-sf", e.scen["load_uas.xml"], "-p", port,
			"-max_recv_loops", "10000", "-max_sched_loops", "10000",
			"-trace_logs", "-log_file", u.logs, "-trace_stat", "-stf", u.stat, "-fd", "1")
		if err != nil {
			return out, err
		}
		p, err := start("sipp-uas", cmd, filepath.Join(u.dir, "sipp.out"))
		if err != nil {
			return out, err
		}
		u.p = p
		out = append(out, u)
	}
	time.Sleep(300 * time.Millisecond)
	return out, nil
}

func tailStr(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// runX2S: carol → Prosody → stox → sipp UASes bob1..bobN.
func (e *env) runX2S(ctx context.Context, rate int, d time.Duration, ndest int) (result, error) {
	r := result{When: time.Now(), Load1: loadavg(), Store: e.store, Direction: "x2s", Dests: ndest, Offered: rate, Duration: d.Seconds()}
	if err := e.restartStox(); err != nil {
		return r, err
	}
	e.runSeqN++
	dir := filepath.Join(e.dir, fmt.Sprintf("x2s-%d-%d-%d", ndest, rate, e.runSeqN))
	uases, err := e.startUASes(dir, ndest)
	defer func() {
		for _, u := range uases {
			u.p.Stop(3 * time.Second)
		}
	}()
	if err != nil {
		return r, err
	}
	e.carol.reset()
	r.RSSBefore = e.stox.rssKB()
	cp, err := e.startWire(dir)
	if err != nil {
		return r, err
	}
	defer cp.stop()
	dests := make([]string, ndest)
	for i, u := range uases {
		dests[i] = u.user + "@sip.localhost"
	}
	drops0 := udpRcvbufErrors()
	begin := time.Now()
	sent, failed := e.carol.send(ctx, dests, rate, d)
	r.Sent = sent
	// Drain: until every non-refused message reached a UAS, or no progress
	// for 5 s (at most 60 s). The UASes' -trace_stat files show progress.
	count := func() int {
		n := 0
		for _, u := range uases {
			n += statInt(sippStats(u.stat), "TotalCallCreated")
		}
		return n
	}
	last, lastChange := -1, time.Now()
	for time.Since(lastChange) < 5*time.Second && time.Since(begin) < d+60*time.Second {
		_, xerr := e.carol.counts()
		got := count()
		if got+xerr >= sent {
			break
		}
		if got+xerr != last {
			last, lastChange = got+xerr, time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(1200 * time.Millisecond) // one more -fd period and late errors
	r.RSSAfter = e.stox.rssKB()
	outbox := int64(-1)
	if e.dsn != "" {
		outbox = countOutbox(ctx, e.dsn)
	}
	// Stop the UASes so they flush their logs, then count "G" lines.
	for _, u := range uases {
		u.p.Stop(3 * time.Second)
	}
	var lat []float64
	var lastRecv float64
	for _, u := range uases {
		b, _ := os.ReadFile(u.logs)
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 || f[0] != "G" || f[3] != "T" {
				continue
			}
			r.Delivered++
			rs, _ := strconv.ParseFloat(f[1], 64)
			rus, _ := strconv.ParseFloat(f[2], 64)
			ns, _ := strconv.ParseInt(f[4], 10, 64)
			recv := rs + rus/1e6
			lat = append(lat, (recv-float64(ns)/1e9)*1000)
			if recv > lastRecv {
				lastRecv = recv
			}
		}
	}
	if n := count(); n > r.Delivered {
		r.Delivered = n // the log may be cut short at exit; the stats count every MESSAGE
	}
	_, xerr := e.carol.counts()
	r.Rejected = xerr
	r.Accepted = sent - xerr
	r.Lost = r.Accepted - r.Delivered
	if lastRecv > 0 {
		r.Achieved = float64(r.Delivered) / (lastRecv - float64(begin.UnixNano())/1e9)
	}
	r.P50, r.P99 = pct(lat, 0.50), pct(lat, 0.99)
	notes, err := e.finishWire(cp, x2sSpec(e.stox.sip, e.pros.ComponentPort), &r)
	if err != nil {
		return r, err
	}
	if failed > 0 {
		notes = append(notes, fmt.Sprintf("send-failed:%d", failed))
	}
	if xerr > 0 {
		notes = append(notes, "xmpp-errors:"+e.carol.errSummary())
	}
	if dr := udpRcvbufErrors() - drops0; dr > 0 {
		notes = append(notes, fmt.Sprintf("udp-rcvbuf-drops:%d", dr))
	}
	if outbox >= 0 {
		notes = append(notes, fmt.Sprintf("outbox-rows-at-end:%d", outbox))
	}
	if e.stox.p.Exited() {
		notes = append(notes, "STOX EXITED")
	}
	r.Notes = strings.Join(notes, " ")
	return r, nil
}
