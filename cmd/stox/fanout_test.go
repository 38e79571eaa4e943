package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"stox.dev/stox/mapping"
	"stox.dev/stox/presence"
	"stox.dev/stox/sip"
	"stox.dev/stox/store"
	"stox.dev/stox/xmpp"
)

// BenchmarkPresenceFanout1000 is one presence change of an XMPP user
// watched by 1,000 SIP subscribers, through the whole gateway as it is
// wired in serve: the XEP-0114 component reads the 1,000 stanzas the XMPP
// server sends for the change (one per watcher JID at D, RFC 8048 §6.2),
// the presence service turns them into 1,000 NOTIFYs (RFC 3856 §6.10), the
// SIP stack sends them over UDP to a watcher socket that answers each with
// 200. The clock runs from the server's write of the first stanza to the
// watcher's read of the 1,000th NOTIFY (docs/perf.md, "Presence fan-out").
func BenchmarkPresenceFanout1000(b *testing.B) {
	for _, w := range []int{0, 8, 32, 64} { // 0: the service's default
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) { benchFanout(b, 1000, w) })
	}
}

func benchFanout(b *testing.B, n, workers int) {
	f := startFanout(b, n, workers)
	shows := []string{"away", "dnd", "xa", "chat"}
	var total time.Duration
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gc0 := ms.NumGC
	b.ReportAllocs()
	gcCPU := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(gcCPU)
	gcCPU0 := gcCPU[0].Value.Float64()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		var stanzas bytes.Buffer
		for w := range n {
			fmt.Fprintf(&stanzas, "<presence from='alice@xmpp.example/phone' to='w%d@gw.example'><show>%s</show></presence>", w, shows[i%len(shows)])
		}
		t0 := time.Now()
		f.expect(n)
		f.write(b, stanzas.Bytes())
		f.wait(b)
		total += f.last() - time.Duration(t0.UnixNano())
	}
	cpu := (cpuTime() - cpu0) / time.Duration(b.N)
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.NumGC-gc0)/float64(b.N), "gcs/op")
	metrics.Read(gcCPU)
	b.ReportMetric((gcCPU[0].Value.Float64()-gcCPU0)*1000/float64(b.N), "gc-cpu-ms")
	per := total / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms-to-last")
	// CPU of the whole process per fan-out, the watcher socket included:
	// on a shared machine, less noisy than the wall clock.
	b.ReportMetric(float64(cpu.Microseconds())/1000, "cpu-ms")
	b.ReportMetric(float64(n)/per.Seconds(), "notifies/s")
}

type fanout struct {
	srv     net.Conn // the fake XMPP server's side of the component stream
	uas     *net.UDPConn
	lastNs  atomic.Int64 // when the watcher read the latest new NOTIFY
	reached chan struct{}

	mu   sync.Mutex
	want int             // NOTIFYs still expected
	seen map[string]bool // Call-ID and CSeq of those read: a retransmission is not news
}

// startFanout wires xmpp, sip and presence over the memory store as serve
// does (with serve's GC policy, releaseAfterBursts), and brings n SIP watcher subscriptions of alice@xmpp.example to
// active (SUBSCRIBE accepted, the contact's "subscribed", the first
// NOTIFYs answered), with workers NOTIFY senders (0: the default).
func startFanout(b *testing.B, n, workers int) *fanout {
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	uas, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	_ = uas.SetReadBuffer(8 << 20)
	f := &fanout{uas: uas, reached: make(chan struct{}, 1)}
	go f.answer()

	doms := mapping.Domains{XMPP: "gw.example", SIP: "sip.example"}
	st := store.NewMemory()
	comp := xmpp.New(xmpp.Config{Server: ln.Addr().String(), Domain: doms.XMPP, Secret: "secret", Domains: doms})
	stack, err := sip.New(sip.Config{Listen: []string{"udp:127.0.0.1:0"}, Domain: doms.SIP,
		NonceSecret: []byte("0123456789abcdef0123456789abcdef")}, newSIPStore(st))
	if err != nil {
		b.Fatal(err)
	}
	svc := presence.New(presence.Config{Domains: doms, Coalesce: time.Microsecond, Workers: workers}, comp, stack, st, stack)
	comp.HandlePresence(svc)
	stack.HandlePresence(svc)
	stack.ObserveRegistrations(svc)
	memory := func(ctx context.Context) error { return releaseAfterBursts(ctx, releaseEvery, zap.NewNop()) }
	done := make(chan struct{}, 4)
	for _, run := range []func(context.Context) error{stack.Run, svc.Run, comp.Run, memory} {
		go func() { _ = run(ctx); done <- struct{}{} }()
	}
	b.Cleanup(func() {
		// The watcher has answered the last fan-out, but its last 200s may
		// not have reached their transactions yet: stopping the stack now
		// ends those transactions, and sipgo logs each late 200 as
		// "Unhandled sip response. Possible retransmissions" (not a
		// retransmission: the benchmark's own teardown, docs/perf.md).
		time.Sleep(300 * time.Millisecond)
		cancel()
		ln.Close()
		uas.Close()
		for range 4 {
			<-done
		}
	})
	f.srv = acceptComponent(b, ln, "secret")
	go func() { _, _ = io.Copy(io.Discard, f.srv) }() // stox's subscribes and probes

	dest := "udp:" + uas.LocalAddr().String()
	f.expect(n)
	var subscribed bytes.Buffer
	for w := range n {
		aor := fmt.Sprintf("sip:w%d@sip.example", w)
		watcher, _ := mapping.ParseURI(aor)
		pres, _ := mapping.ParseURI("sip:alice@xmpp.example")
		r := mapping.SubscribeRequest{
			Dialog: mapping.Dialog{CallID: fmt.Sprintf("fan-%d", w), LocalTag: "lt", RemoteTag: "rt", LocalURI: "sip:alice@xmpp.example",
				RemoteURI: aor, RemoteTarget: fmt.Sprintf("sip:w%d@%s", w, uas.LocalAddr()), Destination: dest, RemoteCSeq: 1, Event: "presence"},
			Watcher: watcher, Presentity: pres, Event: "presence", Expires: time.Hour, Initial: true,
		}
		out := svc.Subscribe(ctx, r)
		for deadline := time.Now().Add(5 * time.Second); out.Status == 503 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond) // 503 until Run has loaded the store
			out = svc.Subscribe(ctx, r)
		}
		if out.Status != 200 {
			b.Fatalf("SUBSCRIBE %d: %+v", w, out)
		}
		fmt.Fprintf(&subscribed, "<presence from='alice@xmpp.example' to='w%d@gw.example' type='subscribed'/>", w)
	}
	f.wait(b) // the pending NOTIFYs
	f.expect(n)
	f.write(b, subscribed.Bytes())
	f.wait(b)                                       // the active ones
	time.Sleep(gcFloorEvery + 100*time.Millisecond) // serve's GC floor is in force after a second
	return f
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (f *fanout) expect(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.want, f.seen = n, make(map[string]bool, n)
}

func (f *fanout) last() time.Duration { return time.Duration(f.lastNs.Load()) }

func (f *fanout) write(b *testing.B, p []byte) {
	if _, err := f.srv.Write(p); err != nil {
		b.Fatal(err)
	}
}

func (f *fanout) wait(b *testing.B) {
	select {
	case <-f.reached:
	case <-time.After(10 * time.Second):
		f.mu.Lock()
		defer f.mu.Unlock()
		b.Fatalf("NOTIFYs missing: %d", f.want)
	}
}

// answer is the watchers' side: 200 to every request, and a signal when
// the expected NOTIFYs have all arrived. It copies the header lines a
// response needs (RFC 3261 §8.2.6.2) byte for byte without parsing the
// NOTIFY further, so that the benchmark's own CPU per fan-out stays small
// next to stox's (docs/perf.md).
func (f *fanout) answer() {
	buf := make([]byte, 65535)
	res := make([]byte, 0, 2048)
	id := make([]byte, 0, 128)
	for {
		n, from, err := f.uas.ReadFromUDP(buf)
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		msg := buf[:n]
		if !bytes.HasPrefix(msg, []byte("NOTIFY ")) {
			continue
		}
		if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
			msg = msg[:i]
		}
		res = append(res[:0], "SIP/2.0 200 OK\r\n"...)
		id = id[:0]
		_, rest, _ := bytes.Cut(msg, []byte("\r\n")) // the request line
		for len(rest) > 0 {
			var l []byte
			l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
			name, _, _ := bytes.Cut(l, []byte(":"))
			name = bytes.TrimSpace(name)
			switch {
			case bytes.EqualFold(name, []byte("call-id")), bytes.EqualFold(name, []byte("cseq")):
				id = append(id, l...)
				fallthrough
			case bytes.EqualFold(name, []byte("via")), bytes.EqualFold(name, []byte("from")), bytes.EqualFold(name, []byte("to")):
				res = append(append(res, l...), "\r\n"...)
			}
		}
		res = append(res, "Content-Length: 0\r\n\r\n"...)
		_, _ = f.uas.WriteToUDP(res, from)
		f.mu.Lock()
		if !f.seen[string(id)] {
			f.seen[string(id)] = true
			f.lastNs.Store(now)
			if f.want--; f.want == 0 {
				f.reached <- struct{}{} // room: one signal per expect
			}
		}
		f.mu.Unlock()
	}
}

// acceptComponent is the server side of the XEP-0114 handshake (§2–3):
// stream header, id, handshake = hex(SHA-1(id + secret)).
func acceptComponent(b *testing.B, ln net.Listener, secret string) net.Conn {
	conn, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	d := xml.NewDecoder(conn)
	for {
		tok, err := d.Token()
		if err != nil {
			b.Fatal(err)
		}
		if st, ok := tok.(xml.StartElement); ok && st.Name.Local == "stream" {
			break
		}
	}
	const id = "fanout-1"
	fmt.Fprintf(conn, `<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='gw.example' id='%s'>`, id)
	var hs struct {
		Hash string `xml:",chardata"`
	}
	if err := d.Decode(&hs); err != nil {
		b.Fatal(err)
	}
	if sum := sha1.Sum([]byte(id + secret)); hs.Hash != hex.EncodeToString(sum[:]) {
		b.Fatalf("handshake %q", hs.Hash)
	}
	if _, err := io.WriteString(conn, "<handshake/>"); err != nil {
		b.Fatal(err)
	}
	return conn
}
