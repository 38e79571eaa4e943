package sip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/mapping"
)

// BenchmarkMessageIn measures the SIP half of SIP→XMPP: pager MESSAGEs from
// a trusted peer over UDP loopback, through sipgo's transaction layer and
// stox's checks and translation, to a router that answers 202 at once. The
// peer is a raw UDP socket keeping 64 MESSAGEs in flight, so the figure is
// the stack's own cost per message (run with -cpuprofile to see where it
// goes).
func BenchmarkMessageIn(b *testing.B) {
	env := startStack(b, func(c *Config) {
		c.TrustedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}, routerFunc(func(context.Context, mapping.SIPMessage) mapping.Outcome {
		return mapping.Outcome{Status: 202, Reason: "Accepted"}
	}))
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadBuffer(4 << 20)
	dst, err := net.ResolveUDPAddr("udp4", env.udp)
	if err != nil {
		b.Fatal(err)
	}
	local := conn.LocalAddr().String()
	msg := func(i int) []byte {
		body := fmt.Sprintf("hello %d", i)
		return []byte("MESSAGE sip:alice@xmpp.test SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bKbench" + fmt.Sprint(i) + "\r\n" +
			"From: <sip:bob@" + testDomain + ">;tag=b" + fmt.Sprint(i) + "\r\n" +
			"To: <sip:alice@xmpp.test>\r\n" +
			"Call-ID: bench-" + fmt.Sprint(i) + "@test\r\n" +
			"CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\n" +
			"Content-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body)
	}
	const window = 64
	buf := make([]byte, 65536)
	sent, answered := 0, 0
	read := func() {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			b.Fatalf("after %d answers: %v", answered, err)
		}
		if !strings.HasPrefix(string(buf[:n]), "SIP/2.0 202") {
			b.Fatalf("answer %q", buf[:min(n, 80)])
		}
		answered++
	}
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if sent-answered >= window {
			read()
		}
		if _, err := conn.WriteToUDP(msg(sent), dst); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	for answered < sent {
		read()
	}
	b.ReportMetric(float64(sent)/time.Since(start).Seconds(), "msgs/s")
}
