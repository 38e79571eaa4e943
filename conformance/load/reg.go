package main

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

const regRealm = "sip.localhost"

// regSettle bounds how long the memory figure waits, after the garbage
// collection that follows Timer J, for stox's RSS to stop dropping (the Go
// runtime returns freed heap pages to the OS gradually). Defined here
// rather than in main.go's options: only the reg mode reads it.
var regSettle = flag.Duration("reg-settle", 150*time.Second, "reg: after the post-Timer-J GC, sample stox's RSS each second for up to this long until it stops dropping; bytes_per_reg uses the settled RSS (0 = no wait)")

// RSS has settled when it fell by at most rssTolKB over the last
// rssWindow one-second samples and the runtime holds no more free heap,
// not yet returned to the OS, than heap in use. RSS alone would settle at
// once: the background scavenger leaves the freed transactions alone
// until the GC after the one that freed them (the forced GC two minutes
// later in an idle stox) and then returns them in seconds.
const (
	rssWindow = 10
	rssTolKB  = 1024
)

// rssSettled reports whether RSS samples (one a second, oldest first) have
// stopped dropping: the newest is at most tolKB below the one window
// samples earlier, and unreleased (free heap not yet returned to the OS)
// is at most inuse (heap in use). Unknown figures are negative; an
// unknown unreleased counts as settled.
func rssSettled(samples []int64, window int, tolKB int64, unreleased, inuse float64) bool {
	n := len(samples)
	if n <= window || samples[n-1-window]-samples[n-1] > tolKB {
		return false
	}
	return unreleased < 0 || inuse < 0 || unreleased <= inuse
}

// waitRSSSettled samples rss once a second for up to max until it has
// settled (rssSettled, with heap asked every rssWindow seconds for the
// unreleased and in-use heap) and returns the samples and the last
// unreleased figure; settled is false when max or ctx ended the wait first.
func waitRSSSettled(ctx context.Context, rss func() int64, heap func() (unreleased, inuse float64), max time.Duration) (samples []int64, free float64, settled bool) {
	samples = append(samples, rss())
	free, _ = heap()
	deadline := time.Now().Add(max)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-t.C:
		case <-ctx.Done():
			return samples, free, false
		}
		samples = append(samples, rss())
		if (len(samples)-1)%rssWindow != 0 {
			continue
		}
		var inuse float64
		free, inuse = heap()
		fmt.Fprintf(os.Stderr, "reg: %ds after the post-Timer-J GC: RSS %d KiB, heap in use %.1f MiB, free heap not returned to the OS %.1f MiB\n",
			len(samples)-1, samples[len(samples)-1], inuse/(1<<20), free/(1<<20))
		if rssSettled(samples, rssWindow, rssTolKB, free, inuse) {
			return samples, free, true
		}
	}
	return samples, free, false
}

func ha1(user, pw string) (string, string) {
	m := md5.Sum([]byte(user + ":" + regRealm + ":" + pw))
	s := sha256.Sum256([]byte(user + ":" + regRealm + ":" + pw))
	return hex.EncodeToString(m[:]), hex.EncodeToString(s[:])
}

// writeUsers writes a sipp injection file "user;password" for n users.
func writeUsers(path, prefix string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "SEQUENTIAL")
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "%s%d;pw\n", prefix, i)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runReg measures (1) memory per binding: -reg-n distinct AORs registered
// from a trusted peer on the in-memory store, and (2) REGISTER/s with
// digest (401 challenge + authenticated retry) on the memory store
// (accounts_file) and on Postgres (accounts rows inserted with COPY).
func runReg(ctx context.Context, o options) (out []result, err error) {
	dir, err := os.MkdirTemp("", "stox-load-reg-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if o.keep {
			fmt.Fprintln(os.Stderr, "kept", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	scen, err := writeScenarios(dir)
	if err != nil {
		return nil, err
	}
	pros, err := startProsody(filepath.Join(dir, "prosody"), nil)
	if err != nil {
		return nil, err
	}
	defer pros.Close()
	comp := pros.ComponentAddr()

	// (1) memory per binding.
	{
		sdir := filepath.Join(dir, "mem")
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			return out, err
		}
		s, err := writeStoxConfig(o.stoxBin, sdir, comp, "", true, o.grace)
		if err != nil {
			return out, err
		}
		if err := s.start(); err != nil {
			return out, err
		}
		defer s.stop()
		r, err := regRun(ctx, s, scen, sdir, "mem", "u", o.regN, o.regRate, 2000, true)
		if err != nil {
			return out, err
		}
		r.Store, r.Direction = "memory", "reg"
		out = append(out, r)
		s.stop()
	}
	// (2) digest, memory store with an accounts file.
	{
		sdir := filepath.Join(dir, "digest-mem")
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			return out, err
		}
		s, err := writeStoxConfig(o.stoxBin, sdir, comp, "", false, o.grace)
		if err != nil {
			return out, err
		}
		f, err := os.Create(filepath.Join(sdir, "accounts"))
		if err != nil {
			return out, err
		}
		w := bufio.NewWriter(f)
		for i := 0; i < o.authN; i++ {
			u := "d" + strconv.Itoa(i)
			m, sh := ha1(u, "pw")
			fmt.Fprintf(w, "%s:%s:%s:%s\n", u, regRealm, m, sh)
		}
		if err := w.Flush(); err != nil {
			return out, err
		}
		f.Close()
		if err := s.start(); err != nil {
			return out, err
		}
		defer s.stop()
		r, err := regRun(ctx, s, scen, sdir, "digest-mem", "d", o.authN, o.authRate, o.authLimit, false)
		if err != nil {
			return out, err
		}
		r.Store, r.Direction = "memory", "reg-digest"
		out = append(out, r)
		s.stop()
	}
	// (3) digest, Postgres.
	{
		sdir := filepath.Join(dir, "digest-pg")
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			return out, err
		}
		dsn, drop, err := createDB(ctx)
		if err != nil {
			return out, err
		}
		defer drop()
		s, err := writeStoxConfig(o.stoxBin, sdir, comp, dsn, false, o.grace)
		if err != nil {
			return out, err
		}
		if err := s.start(); err != nil { // migrates the schema
			return out, err
		}
		defer s.stop()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return out, err
		}
		rows := make([][]any, o.authN)
		for i := range rows {
			u := "p" + strconv.Itoa(i)
			m, sh := ha1(u, "pw")
			rows[i] = []any{u, regRealm, m, sh}
		}
		_, err = c.CopyFrom(ctx, pgx.Identifier{"accounts"}, []string{"user_name", "realm", "ha1_md5", "ha1_sha256"}, pgx.CopyFromRows(rows))
		c.Close(ctx)
		if err != nil {
			return out, fmt.Errorf("insert accounts: %w", err)
		}
		r, err := regRun(ctx, s, scen, sdir, "digest-pg", "p", o.authN, o.authRate, o.authLimit, false)
		if err != nil {
			return out, err
		}
		r.Store, r.Direction = "postgres", "reg-digest"
		out = append(out, r)
		s.stop()
	}
	return out, nil
}

// heapFigures are stox's free heap not yet returned to the OS (idle −
// released) and its heap in use, negative if unknown.
func heapFigures(s *stox) (unreleased, inuse float64) {
	idle, rel := s.metric("go_memstats_heap_idle_bytes"), s.metric("go_memstats_heap_released_bytes")
	unreleased = -1
	if idle >= 0 && rel >= 0 {
		unreleased = idle - rel
	}
	return unreleased, s.metric("go_memstats_heap_inuse_bytes")
}

func regRun(ctx context.Context, s *stox, scen map[string]string, dir, name, prefix string, n, rate, limit int, memFigure bool) (result, error) {
	r := result{When: time.Now(), Load1: loadavg(), Dests: 0, Offered: rate}
	users := filepath.Join(dir, "users.csv")
	if err := writeUsers(users, prefix, n); err != nil {
		return r, err
	}
	time.Sleep(time.Second)
	r.RSSBefore = s.rssKB()
	heapBefore := s.metric("go_memstats_heap_inuse_bytes")
	var elapsed float64
	var st map[string]string
	if memFigure {
		stat := filepath.Join(dir, "stat.csv")
		cmd, err := sippCmd(dir, "-sf", scen["load_reg.xml"], s.addr(),
			"-inf", users, "-key", "domain", regRealm, "-r", strconv.Itoa(rate), "-l", strconv.Itoa(limit),
			"-m", strconv.Itoa(n), "-timeout", "240s", "-recv_timeout", "10000",
			"-max_recv_loops", "10000", "-max_sched_loops", "10000",
			"-trace_stat", "-stf", stat, "-fd", "1", "-trace_err", "-error_file", filepath.Join(dir, "errors.log"))
		if err != nil {
			return r, err
		}
		begin := time.Now()
		p, err := start("sipp-reg-"+name, cmd, filepath.Join(dir, "sipp.out"))
		if err != nil {
			return r, err
		}
		select {
		case <-p.Done():
		case <-ctx.Done():
			return r, ctx.Err()
		}
		elapsed = time.Since(begin).Seconds()
		st = sippStats(stat)
		r.Sent = statInt(st, "TotalCallCreated")
		r.Accepted = statInt(st, "SuccessfulCall(C)")
		r.Rejected = statInt(st, "FailedCall(C)")
	} else {
		ok, failed, el, err := digestRegister(ctx, s.addr(), prefix, n, rate, limit)
		if err != nil {
			return r, err
		}
		elapsed = el.Seconds()
		r.Sent, r.Accepted, r.Rejected = ok+failed, ok, failed
	}
	time.Sleep(2 * time.Second) // let the binding writer settle
	r.RSSAfter = s.rssKB()
	heapAfter := s.metric("go_memstats_heap_inuse_bytes")
	settled := ""
	if memFigure && n >= 10000 {
		// The server transactions of the last REGISTERs live for Timer J
		// (64·T1 = 32 s on UDP) after their 200: wait for them to expire
		// and for a garbage collection after that (the Go runtime forces
		// one at least every 2 minutes), so the figure is the bindings.
		peakRSS, peakHeap := r.RSSAfter, heapAfter
		end := float64(time.Now().UnixNano())/1e9 + 33
		deadline := time.Now().Add(160 * time.Second)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if s.metric("go_memstats_last_gc_time_seconds") > end {
				break
			}
			time.Sleep(time.Second)
		}
		r.RSSAfter = s.rssKB()
		heapAfter = s.metric("go_memstats_heap_inuse_bytes")
		settled = fmt.Sprintf(", right after the run RSS %d KiB, heap %.1f MiB (Timer J transactions alive); settled after GC: heap %.1f MiB, RSS %d KiB",
			peakRSS, peakHeap/(1<<20), heapAfter/(1<<20), r.RSSAfter)
		if *regSettle > 0 && r.Accepted > 0 {
			// The freed transaction memory stays in RSS until the runtime
			// returns it to the OS: bytes_per_reg is taken once RSS has
			// stopped dropping (or -reg-settle has passed).
			rs, free, ok := waitRSSSettled(ctx, s.rssKB, func() (float64, float64) { return heapFigures(s) }, *regSettle)
			r.RSSAfter = rs[len(rs)-1]
			state := "RSS settled"
			if !ok {
				state = fmt.Sprintf("RSS NOT settled (%.1f MiB free heap not yet returned to the OS)", free/(1<<20))
			}
			settled += fmt.Sprintf("; %s: %d KiB = %.0f B/binding (RSS growth / bindings) %ds after that GC",
				state, r.RSSAfter, float64(r.RSSAfter-r.RSSBefore)*1024/float64(r.Accepted), len(rs)-1)
		}
	}
	r.Delivered = r.Accepted
	r.Duration = elapsed
	r.Achieved = float64(r.Accepted) / elapsed
	regs := s.metric("stox_sip_registrations")
	r.Notes = fmt.Sprintf("%s: wall %.1fs, in flight ≤%d", name, elapsed, limit)
	if regs >= 0 {
		r.Notes += fmt.Sprintf(", stox_sip_registrations=%.0f", regs)
	}
	if memFigure && r.Accepted > 0 {
		r.BytesPerReg = float64(r.RSSAfter-r.RSSBefore) * 1024 / float64(r.Accepted)
		if heapBefore >= 0 && heapAfter >= 0 {
			r.Notes += fmt.Sprintf(", Go heap in use %+.1f MiB = %.0f B/binding", (heapAfter-heapBefore)/(1<<20), (heapAfter-heapBefore)/float64(r.Accepted))
		}
	}
	r.Notes += settled
	if s.p.Exited() {
		r.Notes += ", STOX EXITED"
	}
	return r, nil
}
