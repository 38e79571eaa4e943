package sip

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"stox.dev/stox/mapping"
)

// rawUAS is a UDP peer that records the exact bytes it receives and answers
// every request with status.
type rawUAS struct {
	conn   *net.UDPConn
	got    chan rawReq
	status string
}

type rawReq struct {
	data string
	from *net.UDPAddr
}

func newRawUAS(t testing.TB, status string) *rawUAS {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUAS{conn: conn, got: make(chan rawReq, 16), status: status}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			data := string(buf[:n])
			u.got <- rawReq{data, from}
			if u.status == "" {
				continue // silent: the client times out
			}
			var b strings.Builder
			b.WriteString("SIP/2.0 " + u.status + "\r\n")
			for _, line := range strings.Split(data, "\r\n") {
				name, _, _ := strings.Cut(line, ":")
				switch strings.ToLower(name) {
				case "via", "from", "call-id", "cseq":
					b.WriteString(line + "\r\n")
				case "to":
					b.WriteString(line + ";tag=uas1\r\n")
				}
			}
			b.WriteString("Content-Length: 0\r\n\r\n")
			conn.WriteToUDP([]byte(b.String()), from)
		}
	}()
	return u
}

func (u *rawUAS) addr() string { return u.conn.LocalAddr().String() }

func headerLines(data string) map[string][]string {
	head, _, _ := strings.Cut(data, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	out := map[string][]string{"": {lines[0]}}
	for _, l := range lines[1:] {
		name, val, _ := strings.Cut(l, ":")
		out[strings.ToLower(strings.TrimSpace(name))] = append(out[strings.ToLower(strings.TrimSpace(name))], strings.TrimSpace(val))
	}
	return out
}

func testMsg() mapping.SIPMessage {
	return mapping.SIPMessage{
		From:            mapping.URI{Scheme: "sip", User: "juliet", Host: "xmpp.test", GR: "balcony"},
		FromDisplay:     `Juliet "Cap" C`,
		To:              mapping.URI{Scheme: "sip", User: "o'malley", Host: "example.net"},
		CallID:          "thread-42",
		Subject:         "Wherefore",
		ContentType:     "text/plain;charset=UTF-8",
		ContentLanguage: "en",
		Body:            []byte("art thou"),
	}
}

func TestSendMessage(t *testing.T) {
	env := startStack(t, nil, nil)
	uas := newRawUAS(t, "200 OK")
	m := testMsg()
	target := mapping.Target{URI: mapping.URI{Scheme: "sip", User: "o'malley", Host: "example.net"}, Destination: "udp:" + uas.addr()}
	res, err := env.stack.SendMessage(ctxT(t), m, target)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || res.Reason != "OK" {
		t.Fatalf("response %+v", res)
	}
	r := <-uas.got
	// Sent from the listener's port, so replies reach us.
	if r.from.String() != env.udp {
		t.Errorf("sent from %s, listener is %s", r.from, env.udp)
	}
	h := headerLines(r.data)
	t.Logf("wire:\n%s", r.data)
	check := func(name, want string) {
		t.Helper()
		if got := h[name]; len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	check("", "MESSAGE sip:o'malley@example.net SIP/2.0")
	check("to", "<sip:o'malley@example.net>")
	check("call-id", "thread-42")
	check("cseq", "1 MESSAGE")
	check("max-forwards", "70")
	check("subject", "Wherefore")
	check("content-type", "text/plain;charset=UTF-8")
	check("content-language", "en")
	check("content-length", "8")
	if f := h["from"]; len(f) != 1 || !strings.HasPrefix(f[0], `"Juliet \"Cap\" C" <sip:juliet@xmpp.test;gr=balcony>;tag=`) {
		t.Errorf("from %q", f)
	}
	if v := h["via"]; len(v) != 1 || !strings.HasPrefix(v[0], "SIP/2.0/UDP "+env.udp+";branch=z9hG4bK") {
		t.Errorf("via %q", v)
	}
	if !strings.HasSuffix(r.data, "\r\n\r\nart thou") {
		t.Errorf("body: %q", r.data)
	}

	// No Call-ID: a fresh one.
	m.CallID = ""
	if _, err := env.stack.SendMessage(ctxT(t), m, target); err != nil {
		t.Fatal(err)
	}
	if r := <-uas.got; len(headerLines(r.data)["call-id"][0]) < 16 {
		t.Errorf("call-id %q", headerLines(r.data)["call-id"])
	}
}

func TestSendMessageInjection(t *testing.T) {
	env := startStack(t, nil, nil)
	uas := newRawUAS(t, "200 OK")
	target := mapping.Target{URI: mapping.URI{Scheme: "sip", User: "bob", Host: "example.net"}, Destination: "udp:" + uas.addr()}
	for _, mod := range []func(*mapping.SIPMessage){
		func(m *mapping.SIPMessage) { m.Subject = "hi\r\nX-Injected: 1" },
		func(m *mapping.SIPMessage) { m.Subject = "hi\nX-Injected: 1" },
		func(m *mapping.SIPMessage) { m.FromDisplay = "x\rX-Injected: 1" },
		func(m *mapping.SIPMessage) { m.CallID = "a\x00b" },
		func(m *mapping.SIPMessage) { m.ContentLanguage = "en\r\nX-Injected: 1" },
		func(m *mapping.SIPMessage) { m.From.User = "a\r\nX-Injected: 1" },
	} {
		m := testMsg()
		mod(&m)
		_, err := env.stack.SendMessage(ctxT(t), m, target)
		var f *mapping.Failure
		if !errors.As(err, &f) || f.Status != 400 || f.Condition != mapping.BadRequest {
			t.Errorf("%+v: err %v", m, err)
		}
	}
	select {
	case r := <-uas.got:
		t.Fatalf("something was sent: %q", r.data)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestSendMessageTooBig(t *testing.T) {
	env := startStack(t, nil, nil)
	m := testMsg()
	m.Body = []byte(strings.Repeat("x", 1200))
	_, err := env.stack.SendMessage(ctxT(t), m, mapping.Target{URI: m.To, Destination: "udp:127.0.0.1:9"})
	var f *mapping.Failure
	if !errors.As(err, &f) || f.Status != 413 || f.Condition != mapping.PolicyViolation {
		t.Fatalf("err %v", err)
	}
}

func TestSendMessageOutboundProxyAndError(t *testing.T) {
	uas := newRawUAS(t, "404 Not Found")
	env := startStack(t, func(c *Config) { c.OutboundProxy = "udp:" + uas.addr() }, nil)
	m := testMsg()
	res, err := env.stack.SendMessage(ctxT(t), m, mapping.Target{URI: m.To})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 404 {
		t.Fatalf("%+v", res)
	}
	if r := <-uas.got; !strings.HasPrefix(r.data, "MESSAGE sip:o'malley@example.net SIP/2.0\r\n") {
		t.Fatalf("%q", r.data)
	}
}

func TestSendMessageTimeout(t *testing.T) {
	uas := newRawUAS(t, "")
	env := startStack(t, nil, nil)
	m := testMsg()
	ctx := ctxT(t)
	ctx, cancel := contextWithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := env.stack.SendMessage(ctx, m, mapping.Target{URI: m.To, Destination: "udp:" + uas.addr()}); err == nil {
		t.Fatal("no error")
	}
}

var contextWithTimeout = context.WithTimeout
