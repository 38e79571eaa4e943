package sip

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"stox.dev/stox/mapping"
)

// fakeCalls is a CallHandler that records what the stack reports.
type fakeCalls struct {
	invites chan mapping.Invite
	events  chan mapping.CallEvent
	mu      sync.Mutex
	onInv   func(mapping.Invite)
}

func newFakeCalls() *fakeCalls {
	return &fakeCalls{invites: make(chan mapping.Invite, 16), events: make(chan mapping.CallEvent, 64)}
}

func (f *fakeCalls) Invite(inv mapping.Invite) {
	f.mu.Lock()
	on := f.onInv
	f.mu.Unlock()
	if on != nil {
		on(inv)
	}
	f.invites <- inv
}

func (f *fakeCalls) CallEvent(ev mapping.CallEvent) { f.events <- ev }

func (f *fakeCalls) invite(t *testing.T) mapping.Invite {
	t.Helper()
	select {
	case inv := <-f.invites:
		return inv
	case <-time.After(5 * time.Second):
		t.Fatal("no Invite reported")
	}
	return mapping.Invite{}
}

func (f *fakeCalls) event(t *testing.T, kind mapping.CallEventKind) mapping.CallEvent {
	t.Helper()
	select {
	case ev := <-f.events:
		if ev.Kind != kind {
			t.Fatalf("event %+v, want kind %d", ev, kind)
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatalf("no event of kind %d", kind)
	}
	return mapping.CallEvent{}
}

func (f *fakeCalls) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case ev := <-f.events:
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(d):
	}
}

func startCallStack(t *testing.T, mod func(*Config)) (*testEnv, *fakeCalls, *net.UDPAddr) {
	t.Helper()
	fc := newFakeCalls()
	env := startStack(t, func(c *Config) {
		c.TrustedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		if mod != nil {
			mod(c)
		}
	}, nil, func(s *Stack) { s.HandleCalls(fc) })
	ua, err := net.ResolveUDPAddr("udp", env.udp)
	if err != nil {
		t.Fatal(err)
	}
	return env, fc, ua
}

const offerSDP = "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
const answerSDP = "v=0\r\no=stox 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"

// inviteMsg is an INVITE (or, with toTag, an in-dialog request) from the
// peer at peerAddr.
func inviteMsg(method, ruri, peerAddr, callID, fromTag, toTag, branch string, cseq int, ctype, body string, extra ...string) string {
	to := "<sip:bob@stox.test>"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	ct := ""
	if body != "" {
		ct = "Content-Type: " + ctype + "\r\n"
	}
	return fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\r\nFrom: \"Alice\" <sip:alice@pbx.test>;tag=%s\r\n"+
		"To: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\nMax-Forwards: 70\r\nContact: <sip:alice@%s>\r\n%s%sContent-Length: %d\r\n\r\n%s",
		method, ruri, peerAddr, branch, fromTag, to, callID, cseq, method, peerAddr, strings.Join(extra, ""), ct, len(body), body)
}

func isResponse(status int, method sip.RequestMethod) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == status && r.CSeq().MethodName == method
	}
}

func TestInviteInAnswerReofferBye(t *testing.T) {
	env, fc, ua := startCallStack(t, nil)
	p := newPeer(t)
	p.send(inviteMsg("INVITE", "sip:bob@stox.test", p.addr(), "c1", "ft1", "", "i1", 1, "application/sdp", offerSDP), ua)
	p.read(isResponse(100, sip.INVITE))
	inv := fc.invite(t)
	if inv.CallID != "c1" || inv.From.User != "alice" || inv.To.User != "bob" || inv.FromDisplay != "Alice" ||
		string(inv.SDP) != offerSDP || !strings.HasPrefix(inv.Source, "udp:127.0.0.1:") {
		t.Fatalf("invite %+v", inv)
	}
	if err := env.stack.Respond(inv.Key, 180, "Ringing", nil, 0); err != nil {
		t.Fatal(err)
	}
	m, _ := p.read(isResponse(180, sip.INVITE))
	tag := tagOf(m.(*sip.Response).To().Params)
	if tag == "" || m.(*sip.Response).Contact() == nil {
		t.Fatalf("180 without tag or Contact:\n%s", m)
	}
	if _, ok := env.stack.DialogRecord(inv.Key); ok {
		t.Fatal("DialogRecord of an unanswered call")
	}
	if err := env.stack.Respond(inv.Key, 200, "OK", []byte(answerSDP), 0); err != nil {
		t.Fatal(err)
	}
	m, _ = p.read(isResponse(200, sip.INVITE))
	res := m.(*sip.Response)
	if tagOf(res.To().Params) != tag || string(res.Body()) != answerSDP || hdr(res, "Content-Type") != "application/sdp" ||
		!strings.Contains(hdr(res, "Allow"), "INVITE") || res.Contact() == nil {
		t.Fatalf("200:\n%s", res)
	}
	if err := env.stack.Respond(inv.Key, 200, "OK", nil, 0); !errors.Is(err, ErrNoCall) {
		t.Fatalf("second final: %v", err)
	}
	p.send(inviteMsg("ACK", "sip:alice@x", p.addr(), "c1", "ft1", tag, "a1", 1, "", ""), ua)
	fc.event(t, mapping.CallConfirmed)
	rec, ok := env.stack.DialogRecord(inv.Key)
	if !ok || rec.CallID != "c1" || rec.LocalTag != tag || rec.RemoteTag != "ft1" || !strings.Contains(rec.RemoteTarget, p.addr()) {
		t.Fatalf("record %+v %v", rec, ok)
	}

	// The peer puts us on hold: the stack answers with our SDP, recvonly,
	// version 8.
	hold := strings.Replace(offerSDP, "a=sendrecv", "a=sendonly", 1)
	p.send(inviteMsg("INVITE", "sip:stox@x", p.addr(), "c1", "ft1", tag, "i2", 2, "application/sdp", hold), ua)
	m, _ = p.read(isResponse(200, sip.INVITE))
	body := string(m.(*sip.Response).Body())
	if !strings.Contains(body, "a=recvonly\r\n") || strings.Contains(body, "sendrecv") || !strings.Contains(body, "o=stox 7 8 IN IP4") {
		t.Fatalf("re-INVITE answer:\n%s", body)
	}
	if ev := fc.event(t, mapping.CallReoffered); string(ev.SDP) != hold || ev.Key != inv.Key {
		t.Fatalf("reoffer %+v", ev)
	}
	p.send(inviteMsg("ACK", "sip:alice@x", p.addr(), "c1", "ft1", tag, "a2", 2, "", ""), ua)
	// INFO and OPTIONS in the dialog: 200.
	p.send(inviteMsg("INFO", "sip:stox@x", p.addr(), "c1", "ft1", tag, "n3", 3, "", ""), ua)
	p.read(isResponse(200, sip.INFO))

	p.send(inviteMsg("BYE", "sip:stox@x", p.addr(), "c1", "ft1", tag, "b4", 4, "", "",
		"Reason: SIP;cause=200;text=\"x\", Q.850;cause=16;text=\"Normal call clearing\"\r\n"), ua)
	p.read(isResponse(200, sip.BYE))
	if ev := fc.event(t, mapping.CallHungUp); ev.Status != 16 || ev.Reason != "Normal call clearing" {
		t.Fatalf("hung up %+v", ev)
	}
	if _, ok := env.stack.DialogRecord(inv.Key); ok {
		t.Fatal("record after BYE")
	}
	// The dialog is gone: 481.
	p.send(inviteMsg("BYE", "sip:stox@x", p.addr(), "c1", "ft1", tag, "b5", 5, "", ""), ua)
	p.read(isResponse(481, sip.BYE))
}

func TestInviteInCancel(t *testing.T) {
	env, fc, ua := startCallStack(t, nil)
	p := newPeer(t)
	p.send(inviteMsg("INVITE", "sip:bob@stox.test", p.addr(), "c2", "ft2", "", "i1", 1, "application/sdp", offerSDP), ua)
	p.read(isResponse(100, sip.INVITE))
	inv := fc.invite(t)
	if err := env.stack.Respond(inv.Key, 180, "", nil, 0); err != nil {
		t.Fatal(err)
	}
	m, _ := p.read(isResponse(180, sip.INVITE))
	tag := tagOf(m.(*sip.Response).To().Params)
	p.send(inviteMsg("CANCEL", "sip:bob@stox.test", p.addr(), "c2", "ft2", "", "i1", 1, "", ""), ua)
	p.read(isResponse(200, sip.CANCEL))
	m, _ = p.read(isResponse(487, sip.INVITE))
	if got := tagOf(m.(*sip.Response).To().Params); got != tag {
		t.Errorf("487 tag %q, 180 tag %q", got, tag)
	}
	p.send(inviteMsg("ACK", "sip:bob@stox.test", p.addr(), "c2", "ft2", tag, "i1", 1, "", ""), ua)
	fc.event(t, mapping.CallCancelled)
	if err := env.stack.Respond(inv.Key, 200, "OK", []byte(answerSDP), 0); !errors.Is(err, ErrNoCall) {
		t.Fatalf("Respond after CANCEL: %v", err)
	}
}

func TestInviteInNoAck(t *testing.T) {
	env, fc, ua := startCallStack(t, func(c *Config) { c.CallT1 = 20 * time.Millisecond })
	p := newPeer(t)
	p.send(inviteMsg("INVITE", "sip:bob@stox.test", p.addr(), "c3", "ft3", "", "i1", 1, "application/sdp", offerSDP), ua)
	inv := fc.invite(t)
	if err := env.stack.Respond(inv.Key, 200, "OK", []byte(answerSDP), 0); err != nil {
		t.Fatal(err)
	}
	p.read(isResponse(200, sip.INVITE))
	p.read(isResponse(200, sip.INVITE)) // retransmitted (RFC 3261 §13.3.1.4)
	m, from := p.read(isRequest(sip.BYE))
	bye := m.(*sip.Request)
	if bye.CSeq().SeqNo != 1 || tagOf(bye.From().Params) == "" || tagOf(bye.To().Params) != "ft3" {
		t.Fatalf("BYE:\n%s", bye)
	}
	p.send(sip.NewResponseFromRequest(bye, 200, "OK", nil).String(), from)
	if ev := fc.event(t, mapping.CallLost); ev.Key != inv.Key {
		t.Fatalf("lost %+v", ev)
	}
}

func TestInviteInRefused(t *testing.T) {
	env, fc, ua := startCallStack(t, nil)
	p := newPeer(t)
	// Not SDP: 415 with Accept.
	p.send(inviteMsg("INVITE", "sip:bob@stox.test", p.addr(), "c4", "ft4", "", "i1", 1, "text/plain", "hello"), ua)
	m, _ := p.read(isResponse(415, sip.INVITE))
	if hdr(m.(*sip.Response), "Accept") != "application/sdp" {
		t.Fatalf("415:\n%s", m)
	}
	// An unknown dialog: 481 to a re-INVITE, BYE, UPDATE.
	p.send(inviteMsg("INVITE", "sip:bob@stox.test", p.addr(), "c5", "ft5", "nope", "i2", 1, "application/sdp", offerSDP), ua)
	p.read(isResponse(481, sip.INVITE))
	p.send(inviteMsg("BYE", "sip:bob@stox.test", p.addr(), "c5", "ft5", "nope", "b2", 2, "", ""), ua)
	p.read(isResponse(481, sip.BYE))
	p.send(inviteMsg("UPDATE", "sip:bob@stox.test", p.addr(), "c5", "ft5", "nope", "u2", 3, "", ""), ua)
	p.read(isResponse(481, sip.UPDATE))
	// A rejection by the capability, with Retry-After.
	p.send(inviteMsg("INVITE", "sip:bob@stox.test", p.addr(), "c6", "ft6", "", "i3", 1, "application/sdp", offerSDP), ua)
	inv := fc.invite(t)
	if err := env.stack.Respond(inv.Key, 503, "", nil, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	m, _ = p.read(isResponse(503, sip.INVITE))
	if hdr(m.(*sip.Response), "Retry-After") != "30" {
		t.Fatalf("503:\n%s", m)
	}
	// A Hangup of an unanswered inbound call: its status and a Reason.
	p.send(inviteMsg("INVITE", "sip:bob@stox.test", p.addr(), "c7", "ft7", "", "i4", 1, "application/sdp", offerSDP), ua)
	inv = fc.invite(t)
	if err := env.stack.Hangup(ctxT(t), inv.Key, 486, 17, "Busy\r\nX: y"); err != nil {
		t.Fatal(err)
	}
	m, _ = p.read(isResponse(486, sip.INVITE))
	if got := hdr(m.(*sip.Response), "Reason"); got != `Q.850;cause=17;text="BusyX: y"` {
		t.Fatalf("Reason %q", got)
	}
	fc.none(t, 100*time.Millisecond)
}

func TestInviteWithoutCallsIs488(t *testing.T) {
	env := startStack(t, nil, nil)
	ua, _ := net.ResolveUDPAddr("udp", env.udp)
	p := newPeer(t)
	p.send(inviteMsg("INVITE", "sip:bob@stox.test", p.addr(), "c8", "ft8", "", "i1", 1, "application/sdp", offerSDP), ua)
	m, _ := p.read(isResponse(488, sip.INVITE))
	if strings.Contains(hdr(m.(*sip.Response), "Allow"), "INVITE") {
		t.Fatalf("Allow without calls: %s", hdr(m.(*sip.Response), "Allow"))
	}
}

func testDial(p *peer) mapping.Dial {
	return mapping.Dial{
		From: mapping.URI{Scheme: "sip", User: "juliet", Host: "xmpp.test"}, FromDisplay: "Juliet",
		To:     mapping.URI{Scheme: "sip", User: "alice", Host: "pbx.test"},
		Target: mapping.Target{URI: mapping.URI{Scheme: "sip", User: "alice", Host: "pbx.test"}, Destination: "udp:" + p.addr()},
		SDP:    []byte(offerSDP),
	}
}

// answer sends res for req from the peer, with our tag and Contact.
func peerReply(p *peer, req *sip.Request, status int, tag, body string, to *net.UDPAddr) {
	res := sip.NewResponseFromRequest(req, status, "", nil)
	res.To().Params.Add("tag", tag)
	if status < 300 && status > 100 {
		res.AppendHeader(sip.NewHeader("Contact", "<sip:alice@"+p.addr()+">"))
	}
	if body != "" {
		ct := sip.ContentTypeHeader("application/sdp")
		res.AppendHeader(&ct)
	}
	res.SetBody([]byte(body))
	p.send(res.String(), to)
}

func TestDialAnswerHangup(t *testing.T) {
	env, fc, _ := startCallStack(t, nil)
	p := newPeer(t)
	key, err := env.stack.Dial(ctxT(t), testDial(p))
	if err != nil {
		t.Fatal(err)
	}
	m, from := p.read(isRequest(sip.INVITE))
	inv := m.(*sip.Request)
	if string(inv.Body()) != offerSDP || hdr(inv, "Content-Type") != "application/sdp" || inv.Contact() == nil ||
		tagOf(inv.From().Params) == "" || inv.From().DisplayName != "Juliet" || !strings.Contains(hdr(inv, "Allow"), "BYE") {
		t.Fatalf("INVITE:\n%s", inv)
	}
	peerReply(p, inv, 180, "pt", "", from)
	if ev := fc.event(t, mapping.CallProgress); ev.Status != 180 || ev.Key != key {
		t.Fatalf("progress %+v", ev)
	}
	peerReply(p, inv, 200, "pt", answerSDP, from)
	m, _ = p.read(isRequest(sip.ACK))
	ack := m.(*sip.Request)
	if ack.CSeq().SeqNo != 1 || tagOf(ack.To().Params) != "pt" || ack.Recipient.Host != "127.0.0.1" {
		t.Fatalf("ACK:\n%s", ack)
	}
	if ev := fc.event(t, mapping.CallAnswered); string(ev.SDP) != answerSDP {
		t.Fatalf("answered %+v", ev)
	}
	rec, ok := env.stack.DialogRecord(key)
	if !ok || rec.RemoteTag != "pt" || rec.LocalCSeq != 1 {
		t.Fatalf("record %+v", rec)
	}

	// Hold: a re-INVITE, its answer returned, ACKed with its CSeq.
	done := make(chan error, 1)
	var got []byte
	go func() {
		var err error
		got, err = env.stack.Reinvite(ctxT(t), key, []byte(strings.Replace(offerSDP, "sendrecv", "sendonly", 1)))
		done <- err
	}()
	m, from = p.read(isRequest(sip.INVITE))
	re := m.(*sip.Request)
	if re.CSeq().SeqNo != 2 || tagOf(re.To().Params) != "pt" || !strings.Contains(string(re.Body()), "a=sendonly") {
		t.Fatalf("re-INVITE:\n%s", re)
	}
	peerReply(p, re, 200, "pt", strings.Replace(answerSDP, "sendrecv", "recvonly", 1), from)
	m, _ = p.read(isRequest(sip.ACK))
	if m.(*sip.Request).CSeq().SeqNo != 2 {
		t.Fatalf("ACK:\n%s", m)
	}
	if err := <-done; err != nil || !strings.Contains(string(got), "recvonly") {
		t.Fatalf("Reinvite: %v %q", err, got)
	}

	go func() { done <- env.stack.Hangup(ctxT(t), key, 0, 16, `say "bye"`) }()
	m, from = p.read(isRequest(sip.BYE))
	bye := m.(*sip.Request)
	if bye.CSeq().SeqNo != 3 || hdr(bye, "Reason") != `Q.850;cause=16;text="say \"bye\""` {
		t.Fatalf("BYE:\n%s", bye)
	}
	p.send(sip.NewResponseFromRequest(bye, 200, "OK", nil).String(), from)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fc.none(t, 100*time.Millisecond)
	if err := env.stack.Hangup(ctxT(t), key, 0, 0, ""); !errors.Is(err, ErrNoCall) {
		t.Fatalf("second Hangup: %v", err)
	}
}

func TestDialBusy(t *testing.T) {
	reg := prometheus.NewRegistry()
	env, fc, _ := startCallStack(t, func(c *Config) { c.Metrics = reg })
	p := newPeer(t)
	key, err := env.stack.Dial(ctxT(t), testDial(p))
	if err != nil {
		t.Fatal(err)
	}
	m, from := p.read(isRequest(sip.INVITE))
	peerReply(p, m.(*sip.Request), 486, "pt", "", from)
	p.read(isRequest(sip.ACK)) // the transaction's (RFC 3261 §17.1.1.3)
	if ev := fc.event(t, mapping.CallFailed); ev.Status != 486 || ev.Key != key {
		t.Fatalf("failed %+v", ev)
	}
	if _, ok := env.stack.DialogRecord(key); ok {
		t.Fatal("record of a failed call")
	}
	if n, _ := gatherValue(reg, "stox_sip_invites_total", "outcome", "rejected"); n != 1 {
		t.Errorf("stox_sip_invites_total{outcome=rejected} = %v", n)
	}
	if n, _ := gatherValue(reg, "stox_sip_calls_active", "", ""); n != 0 {
		t.Errorf("stox_sip_calls_active = %v", n)
	}
}

func TestDialCancel(t *testing.T) {
	env, fc, _ := startCallStack(t, nil)
	p := newPeer(t)
	key, err := env.stack.Dial(ctxT(t), testDial(p))
	if err != nil {
		t.Fatal(err)
	}
	m, from := p.read(isRequest(sip.INVITE))
	inv := m.(*sip.Request)
	peerReply(p, inv, 180, "pt", "", from)
	fc.event(t, mapping.CallProgress)
	if err := env.stack.Hangup(ctxT(t), key, 0, 31, "gone"); err != nil {
		t.Fatal(err)
	}
	m, from = p.read(isRequest(sip.CANCEL))
	cancel := m.(*sip.Request)
	if cancel.CSeq().SeqNo != 1 || cancel.Via().Params.GetOr("branch", "") != inv.Via().Params.GetOr("branch", "x") ||
		hdr(cancel, "Reason") != `Q.850;cause=31;text="gone"` {
		t.Fatalf("CANCEL:\n%s", cancel)
	}
	p.send(sip.NewResponseFromRequest(cancel, 200, "OK", nil).String(), from)
	peerReply(p, inv, 487, "pt", "", from)
	p.read(isRequest(sip.ACK))
	fc.none(t, 200*time.Millisecond)
}

func TestDialRingTimeout(t *testing.T) {
	env, fc, _ := startCallStack(t, func(c *Config) { c.CallRingTimeout = 300 * time.Millisecond })
	p := newPeer(t)
	if _, err := env.stack.Dial(ctxT(t), testDial(p)); err != nil {
		t.Fatal(err)
	}
	m, from := p.read(isRequest(sip.INVITE))
	inv := m.(*sip.Request)
	peerReply(p, inv, 180, "pt", "", from)
	fc.event(t, mapping.CallProgress)
	m, from = p.read(isRequest(sip.CANCEL))
	p.send(sip.NewResponseFromRequest(m.(*sip.Request), 200, "OK", nil).String(), from)
	peerReply(p, inv, 487, "pt", "", from)
	if ev := fc.event(t, mapping.CallFailed); ev.Status != 408 {
		t.Fatalf("failed %+v", ev)
	}
}

func TestByeRecord(t *testing.T) {
	env, _, _ := startCallStack(t, nil)
	p := newPeer(t)
	r := mapping.DialogRecord{CallID: "c9", LocalTag: "lt", RemoteTag: "rt", LocalURI: "sip:juliet@xmpp.test",
		RemoteURI: "sip:alice@pbx.test", RemoteTarget: "sip:alice@" + p.addr(), LocalCSeq: 4, Destination: "udp:" + p.addr()}
	done := make(chan error, 1)
	go func() { done <- env.stack.ByeRecord(ctxT(t), r, 16, "gateway restarted") }()
	m, from := p.read(isRequest(sip.BYE))
	bye := m.(*sip.Request)
	if bye.CSeq().SeqNo != 5 || callIDOf(bye) != "c9" || tagOf(bye.To().Params) != "rt" || tagOf(bye.From().Params) != "lt" ||
		!strings.HasPrefix(hdr(bye, "Reason"), "Q.850;cause=16;") {
		t.Fatalf("BYE:\n%s", bye)
	}
	p.send(sip.NewResponseFromRequest(bye, 481, "Call/Transaction Does Not Exist", nil).String(), from)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestParseReason(t *testing.T) {
	for _, tc := range []struct {
		in    string
		cause int
		text  string
	}{
		{`Q.850;cause=16;text="Terminated"`, 16, "Terminated"},
		{`SIP;cause=200;text="Call completed elsewhere"`, 200, "Call completed elsewhere"},
		{`SIP ;cause=487, Q.850 ; cause = 31 ; text="a, \"b\"; c"`, 31, `a, "b"; c`},
		{`Q.850;text="x"`, 0, ""},
		{``, 0, ""},
		{`Q.850;cause=abc`, 0, ""},
	} {
		c, txt := hangupCause(tc.in)
		if c != tc.cause || txt != tc.text {
			t.Errorf("%q: %d %q, want %d %q", tc.in, c, txt, tc.cause, tc.text)
		}
	}
	if got := formatReason(16, "a\"b\\c\x00\r\n"); got != `Q.850;cause=16;text="a\"b\\c"` {
		t.Errorf("formatReason %q", got)
	}
}

func FuzzParseReason(f *testing.F) {
	for _, s := range []string{`Q.850;cause=16;text="x"`, `SIP;cause=200, Q.850;cause=31`, `"`, `;;,,`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range parseReason(s) {
			if r.Protocol == "" || len(r.Text) > maxReasonText {
				t.Fatalf("%q: %+v", s, r)
			}
		}
		c, txt := hangupCause(s)
		v := formatReason(c, txt)
		if strings.ContainsAny(v, "\r\n\x00") {
			t.Fatalf("formatReason %q", v)
		}
		// What stox writes reads back as written.
		if c2, _ := hangupCause(v); c2 != c {
			t.Fatalf("round trip %q: %d != %d", v, c2, c)
		}
	})
}

func TestMirroredAnswer(t *testing.T) {
	ours := "v=0\r\no=stox 1 41 IN IP4 1.2.3.4\r\ns=-\r\na=sendrecv\r\nm=audio 1 RTP/AVP 0\r\na=sendonly\r\nm=video 2 RTP/AVP 96\r\n"
	offer := "v=0\r\na=inactive\r\nm=audio 3 RTP/AVP 0\r\na=sendonly\r\nm=video 4 RTP/AVP 96\r\n"
	want := "v=0\r\no=stox 1 42 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\na=recvonly\r\nm=video 2 RTP/AVP 96\r\na=inactive\r\n"
	if got := string(mirroredAnswer([]byte(ours), []byte(offer))); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	if mirroredAnswer(nil, []byte(offer)) != nil {
		t.Fatal("answer from nothing")
	}
}

func TestInviteInOverloadAndHangupConfirmed(t *testing.T) {
	env, fc, ua := startCallStack(t, func(c *Config) { c.MaxInFlight = 1 })
	p := newPeer(t)
	p.send(inviteMsg("INVITE", "sip:bob@stox.test", p.addr(), "o1", "ft1", "", "i1", 1, "application/sdp", offerSDP), ua)
	inv := fc.invite(t)
	// The unanswered INVITE holds the one slot: 503 with Retry-After.
	p.send(inviteMsg("INVITE", "sip:bob@stox.test", p.addr(), "o2", "ft2", "", "i2", 1, "application/sdp", offerSDP), ua)
	m, _ := p.read(isResponse(503, sip.INVITE))
	if hdr(m.(*sip.Response), "Retry-After") == "" {
		t.Fatalf("503:\n%s", m)
	}
	if err := env.stack.Respond(inv.Key, 200, "OK", []byte(answerSDP), 0); err != nil {
		t.Fatal(err)
	}
	m, _ = p.read(isResponse(200, sip.INVITE))
	tag := tagOf(m.(*sip.Response).To().Params)
	// Answered: the slot is free again.
	p.send(inviteMsg("INVITE", "sip:bob@stox.test", p.addr(), "o3", "ft3", "", "i3", 1, "application/sdp", offerSDP), ua)
	fc.invite(t)
	// Hangup before the ACK waits for it (RFC 3261 §15), then BYEs.
	done := make(chan error, 1)
	go func() { done <- env.stack.Hangup(ctxT(t), inv.Key, 0, 16, "") }()
	time.Sleep(50 * time.Millisecond)
	p.send(inviteMsg("ACK", "sip:alice@x", p.addr(), "o1", "ft1", tag, "a1", 1, "", ""), ua)
	m, from := p.read(isRequest(sip.BYE))
	bye := m.(*sip.Request)
	if callIDOf(bye) != "o1" || hdr(bye, "Reason") != "Q.850;cause=16" || bye.Recipient.User != "alice" {
		t.Fatalf("BYE:\n%s", bye)
	}
	p.send(sip.NewResponseFromRequest(bye, 200, "OK", nil).String(), from)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fc.none(t, 100*time.Millisecond)
}

// The calls capability's view of the stack (calls.SIPLink), spelled out
// here because sip may not import calls.
var _ interface {
	Dial(ctx context.Context, d mapping.Dial) (mapping.CallKey, error)
	Respond(key mapping.CallKey, status int, reason string, sdp []byte, retryAfter time.Duration) error
	Hangup(ctx context.Context, key mapping.CallKey, status, cause int, text string) error
	Reinvite(ctx context.Context, key mapping.CallKey, sdp []byte) ([]byte, error)
	DialogRecord(key mapping.CallKey) (mapping.DialogRecord, bool)
	ByeRecord(ctx context.Context, r mapping.DialogRecord, cause int, text string) error
} = (*Stack)(nil)

func TestDialCancelWithoutFinal(t *testing.T) {
	env, fc, _ := startCallStack(t, func(c *Config) {
		c.CallRingTimeout = 200 * time.Millisecond
		c.CallT1 = 10 * time.Millisecond
	})
	p := newPeer(t)
	if _, err := env.stack.Dial(ctxT(t), testDial(p)); err != nil {
		t.Fatal(err)
	}
	m, from := p.read(isRequest(sip.INVITE))
	peerReply(p, m.(*sip.Request), 180, "pt", "", from)
	fc.event(t, mapping.CallProgress)
	m, from = p.read(isRequest(sip.CANCEL))
	p.send(sip.NewResponseFromRequest(m.(*sip.Request), 200, "OK", nil).String(), from)
	// No 487 ever: given up 64·T1 after the CANCEL (RFC 3261 §9.1).
	if ev := fc.event(t, mapping.CallFailed); ev.Status != 408 {
		t.Fatalf("failed %+v", ev)
	}
}

func TestReinviteInRetransmitted(t *testing.T) {
	env, fc, ua := startCallStack(t, func(c *Config) { c.CallT1 = 20 * time.Millisecond })
	p := newPeer(t)
	p.send(inviteMsg("INVITE", "sip:bob@stox.test", p.addr(), "r1", "ft1", "", "i1", 1, "application/sdp", offerSDP), ua)
	inv := fc.invite(t)
	if err := env.stack.Respond(inv.Key, 200, "OK", []byte(answerSDP), 0); err != nil {
		t.Fatal(err)
	}
	m, _ := p.read(isResponse(200, sip.INVITE))
	tag := tagOf(m.(*sip.Response).To().Params)
	p.send(inviteMsg("ACK", "sip:alice@x", p.addr(), "r1", "ft1", tag, "a1", 1, "", ""), ua)
	fc.event(t, mapping.CallConfirmed)
	p.send(inviteMsg("INVITE", "sip:stox@x", p.addr(), "r1", "ft1", tag, "i2", 2, "application/sdp", offerSDP), ua)
	p.read(isResponseTo(2, sip.INVITE))
	p.read(isResponseTo(2, sip.INVITE)) // again, no ACK yet
	fc.event(t, mapping.CallReoffered)
	p.send(inviteMsg("ACK", "sip:alice@x", p.addr(), "r1", "ft1", tag, "a2", 2, "", ""), ua)
	// Drain what was in flight, then expect silence for several T1.
	buf := make([]byte, 65535)
	drain := func(d time.Duration) (n2xx int) {
		p.conn.SetReadDeadline(time.Now().Add(d))
		for {
			n, _, err := p.conn.ReadFromUDP(buf)
			if err != nil {
				return n2xx
			}
			if r, ok := mustParse(buf[:n]).(*sip.Response); ok && r.CSeq().SeqNo == 2 {
				n2xx++
			}
		}
	}
	drain(60 * time.Millisecond)
	if n := drain(400 * time.Millisecond); n != 0 {
		t.Fatalf("%d retransmissions of the 2xx after its ACK", n)
	}
}

func mustParse(b []byte) sip.Message {
	m, _ := sip.ParseMessage(append([]byte(nil), b...))
	return m
}

func FuzzMirroredAnswer(f *testing.F) {
	f.Add([]byte(answerSDP), []byte(strings.Replace(offerSDP, "sendrecv", "sendonly", 1)))
	f.Add([]byte("o=x\r\nm=\r\n"), []byte("a=inactive\nm=audio\n\na=recvonly"))
	f.Fuzz(func(t *testing.T, ours, offer []byte) {
		out := mirroredAnswer(ours, offer)
		if len(ours) == 0 {
			if out != nil {
				t.Fatal("answer from nothing")
			}
			return
		}
		// One direction per m= section, every line CRLF-terminated.
		want := 0
		for _, l := range sdpLines(ours) {
			if strings.HasPrefix(l, "m=") {
				want++
			}
		}
		if got := len(sdpDirections(out)); got != want {
			t.Fatalf("%d sections, want %d", got, want)
		}
		if len(out) > 0 && !strings.HasSuffix(string(out), "\r\n") {
			t.Fatalf("unterminated %q", out)
		}
	})
}

// tcpPeer reads SIP messages from a stream.
type tcpPeer struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func (p *tcpPeer) read(keep func(sip.Message) bool) sip.Message {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var head strings.Builder
		n := 0
		for {
			line, err := p.r.ReadString('\n')
			if err != nil {
				p.t.Fatalf("tcp read: %v", err)
			}
			if line == "\r\n" && head.Len() == 0 {
				continue // keep-alive
			}
			head.WriteString(line)
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
				fmt.Sscan(strings.TrimSpace(v), &n)
			}
			if line == "\r\n" {
				break
			}
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(p.r, body); err != nil {
			p.t.Fatal(err)
		}
		m, err := sip.ParseMessage(append([]byte(head.String()), body...))
		if err != nil {
			p.t.Fatalf("parse: %v\n%s", err, head.String())
		}
		if keep(m) {
			return m
		}
	}
}

func TestInviteInTCP(t *testing.T) {
	env, fc, _ := startCallStack(t, nil)
	conn, err := net.Dial("tcp", env.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p := &tcpPeer{t: t, conn: conn, r: bufio.NewReader(conn)}
	addr := conn.LocalAddr().String()
	tcp := func(m string) string { return strings.Replace(m, "SIP/2.0/UDP", "SIP/2.0/TCP", 1) }
	send := func(m string) {
		if _, err := conn.Write([]byte(tcp(m))); err != nil {
			t.Fatal(err)
		}
	}
	send(inviteMsg("INVITE", "sip:bob@stox.test", addr+";transport=tcp", "t1", "ft1", "", "i1", 1, "application/sdp", offerSDP))
	inv := fc.invite(t)
	if !strings.HasPrefix(inv.Source, "tcp:") {
		t.Fatalf("source %q", inv.Source)
	}
	if err := env.stack.Respond(inv.Key, 200, "OK", []byte(answerSDP), 0); err != nil {
		t.Fatal(err)
	}
	m := p.read(isResponse(200, sip.INVITE))
	tag := tagOf(m.(*sip.Response).To().Params)
	send(inviteMsg("ACK", "sip:alice@x", addr, "t1", "ft1", tag, "a1", 1, "", ""))
	fc.event(t, mapping.CallConfirmed)
	done := make(chan error, 1)
	go func() { done <- env.stack.Hangup(ctxT(t), inv.Key, 0, 16, "") }()
	bye := p.read(isRequest(sip.BYE)).(*sip.Request)
	if _, err := conn.Write([]byte(sip.NewResponseFromRequest(bye, 200, "OK", nil).String())); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDialPeerHangsUp(t *testing.T) {
	env, fc, ua := startCallStack(t, nil)
	p := newPeer(t)
	key, err := env.stack.Dial(ctxT(t), testDial(p))
	if err != nil {
		t.Fatal(err)
	}
	m, from := p.read(isRequest(sip.INVITE))
	inv := m.(*sip.Request)
	peerReply(p, inv, 200, "pt", answerSDP, from)
	p.read(isRequest(sip.ACK))
	fc.event(t, mapping.CallAnswered)
	// The callee's BYE: From and To swapped, our tag in To.
	ourTag := tagOf(inv.From().Params)
	bye := fmt.Sprintf("BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKpb1\r\nFrom: <sip:alice@pbx.test>;tag=pt\r\n"+
		"To: <sip:juliet@xmpp.test>;tag=%s\r\nCall-ID: %s\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nReason: Q.850;cause=17\r\nContent-Length: 0\r\n\r\n",
		inv.Contact().Address.String(), p.addr(), ourTag, callIDOf(inv))
	p.send(bye, ua)
	p.read(isResponse(200, sip.BYE))
	if ev := fc.event(t, mapping.CallHungUp); ev.Status != 17 || ev.Key != key {
		t.Fatalf("hung up %+v", ev)
	}
	if err := env.stack.Hangup(ctxT(t), key, 0, 0, ""); !errors.Is(err, ErrNoCall) {
		t.Fatalf("Hangup after BYE: %v", err)
	}
}

func TestDialChosenKey(t *testing.T) {
	env, fc, _ := startCallStack(t, nil)
	p := newPeer(t)
	d := testDial(p)
	d.Key = "calls-1"
	key, err := env.stack.Dial(ctxT(t), d)
	if err != nil || key != "calls-1" {
		t.Fatalf("Dial: %q %v", key, err)
	}
	if _, err := env.stack.Dial(ctxT(t), d); err == nil {
		t.Fatal("a key in use was taken again")
	}
	m, from := p.read(isRequest(sip.INVITE))
	peerReply(p, m.(*sip.Request), 603, "pt", "", from)
	if ev := fc.event(t, mapping.CallFailed); ev.Key != "calls-1" || ev.Status != 603 {
		t.Fatalf("failed %+v", ev)
	}
}
