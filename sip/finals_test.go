package sip

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

// registerDatagram is a REGISTER for bob over UDP from conn, with one
// Contact; branch and cseq make it a new transaction or a retransmission.
func registerDatagram(conn *net.UDPConn, branch string, cseq int, contact string) []byte {
	a := conn.LocalAddr().String()
	return []byte(fmt.Sprintf("REGISTER sip:%[1]s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %[2]s;branch=z9hG4bK-%[3]s;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:bob@%[1]s>;tag=retrans\r\n"+
		"To: <sip:bob@%[1]s>\r\n"+
		"Call-ID: retrans-1@test\r\n"+
		"CSeq: %[4]d REGISTER\r\n"+
		"Contact: <%[5]s>\r\n"+
		"Expires: 600\r\n"+
		"Content-Length: 0\r\n\r\n", testDomain, a, branch, cseq, contact))
}

func exchange(t *testing.T, conn *net.UDPConn, to string, req []byte) string {
	t.Helper()
	addr, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteToUDP(req, addr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		if res := string(buf[:n]); !strings.HasPrefix(res, "SIP/2.0 1") {
			return res
		}
	}
}

// TestRetransmissionGetsTheSameFinalResponse (RFC 3261 §17.2.2): a
// REGISTER retransmitted over UDP after its 200 went out, and after a newer
// REGISTER of the same Call-ID changed the binding, gets the very bytes of
// the first 200. Processed a second time it would get 500 (CSeq out of
// order, §10.3 step 7) and a later Date and expiry. The completed
// transaction itself is gone: only the table answers.
func TestRetransmissionGetsTheSameFinalResponse(t *testing.T) {
	env := startStack(t, func(c *Config) { c.TrustedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }, nil)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first := registerDatagram(conn, "first", 1, "sip:bob@192.0.2.1:5060")
	res1 := exchange(t, conn, env.udp, first)
	if !strings.HasPrefix(res1, "SIP/2.0 200 ") {
		t.Fatalf("first REGISTER: %q", res1)
	}
	// Stored when the handler returns, just after the 200 left; until
	// then sipgo's transaction answers a retransmission.
	for deadline := time.Now().Add(2 * time.Second); env.stack.finals.len() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d final responses stored, want 1", env.stack.finals.len())
		}
	}
	time.Sleep(1100 * time.Millisecond) // a second Date, a second less of expiry
	res2 := exchange(t, conn, env.udp, registerDatagram(conn, "second", 2, "sip:bob@192.0.2.2:5060"))
	if !strings.HasPrefix(res2, "SIP/2.0 200 ") || !strings.Contains(res2, "192.0.2.2") {
		t.Fatalf("second REGISTER: %q", res2)
	}
	again := exchange(t, conn, env.udp, first)
	if again != res1 {
		t.Errorf("retransmission answered\n%s\nwant the first response\n%s", again, res1)
	}
}

// TestFinalsExpireAndShrink: entries leave after Timer J, and the table
// gives back a burst's memory.
func TestFinalsExpireAndShrink(t *testing.T) {
	f := newFinals(32*time.Second, nil)
	t0 := time.Unix(1000, 0)
	for i := range 5000 {
		f.put(fmt.Sprintf("z9hG4bK-%d__127.0.0.1:5060__REGISTER", i), "SIP/2.0 200 OK\r\n\r\n", t0.Add(time.Duration(i)*time.Millisecond))
	}
	f.sweep(t0.Add(32*time.Second + 999*time.Millisecond)) // the first 1,000 are due
	if n := f.len(); n != 4000 {
		t.Errorf("after 32.999 s: %d entries, want 4000", n)
	}
	f.sweep(t0.Add(40 * time.Second))
	if n := f.len(); n != 0 {
		t.Errorf("after 40 s: %d entries, want 0", n)
	}
	if f.peak != 0 || f.fifo != nil {
		t.Errorf("not rebuilt after the burst: peak %d, queue %d", f.peak, len(f.fifo))
	}
}

// BenchmarkFinalsEntry measures what one stored final response costs in
// the heap: a REGISTER's 200 as stox sends it (Via with received/rport,
// To tag, a Contact with expires, Date), key and all. docs/perf.md quotes
// it.
func BenchmarkFinalsEntry(b *testing.B) {
	const n = 100_000
	res := "SIP/2.0 200 OK\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-524287-1---77ff2fd8a36a2c9b;rport=5070;received=127.0.0.1\r\n" +
		"From: <sip:user000001@sip.localhost>;tag=12345SIPpTag001\r\n" +
		"To: <sip:user000001@sip.localhost>;tag=5f6c0a1e\r\n" +
		"Call-ID: 1-12345@127.0.0.1\r\n" +
		"CSeq: 1 REGISTER\r\n" +
		"Contact: <sip:user000001@127.0.0.1:5070>;expires=3600\r\n" +
		"Date: Fri, 04 Dec 2026 17:30:00 GMT\r\n" +
		"Content-Length: 0\r\n\r\n"
	var per float64
	for b.Loop() {
		f := newFinals(32*time.Second, nil)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		now := time.Now()
		for i := range n {
			f.put(fmt.Sprintf("z9hG4bK-524287-1---%016x__127.0.0.1:5070__REGISTER", i), res, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(f)
	}
	b.ReportMetric(per, "B/entry")
	b.ReportMetric(float64(len(res)), "B/response")
}
