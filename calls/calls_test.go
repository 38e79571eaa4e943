package calls

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"stox.dev/stox/mapping"
)

var testDomains = mapping.Domains{XMPP: "sip.example", SIP: "sip.example"}

var (
	alice    = mapping.JID{Local: "alice", Domain: "xmpp.example", Resource: "laptop"}
	bobJID   = mapping.JID{Local: "bob", Domain: "sip.example"}
	bobPhone = mapping.JID{Local: "bob", Domain: "sip.example", Resource: "phone"}
)

type harness struct {
	t     *testing.T
	svc   *Service
	w     *wire
	relay *relay
	store *records
	stop  func()
}

func newHarness(t *testing.T, cfg Config, store *records) *harness {
	t.Helper()
	if cfg.Domains == (mapping.Domains{}) {
		cfg.Domains = testDomains
	}
	w, r := newWire(t), newRelay()
	loc := locator{bindings: map[string][]mapping.Binding{
		"sip:bob@sip.example": {{AOR: "sip:bob@sip.example", Contact: "sip:bob@127.0.0.1:5080", Source: "udp:127.0.0.1:5080"}},
	}}
	if store == nil {
		store = newRecords()
	}
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	svc := New(cfg, w, w, loc, r, store)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(ctx) }()
	h := &harness{t: t, svc: svc, w: w, relay: r, store: store, stop: func() { cancel(); <-done }}
	t.Cleanup(h.stop)
	// Run must have started before the first event.
	for {
		svc.mu.Lock()
		started := svc.ctx != nil
		svc.mu.Unlock()
		if started {
			break
		}
	}
	return h
}

// browserOffer is a session-initiate as a WebRTC client sends it: ICE and
// DTLS, opus, PCMU and telephone-event, no candidates yet (they trickle).
func browserOffer(sid string) mapping.Jingle {
	m := mapping.Media{Mid: "0", Kind: "audio", Profile: "UDP/TLS/RTP/SAVPF", Port: 9, Direction: mapping.SendRecv, RTCPMux: true,
		Codecs: []mapping.Codec{
			{PT: 111, Name: "opus", Clock: 48000, Channels: 2},
			{PT: 0, Name: "PCMU", Clock: 8000},
			{PT: 126, Name: "telephone-event", Clock: 8000},
		},
		ICEUfrag: "K002", ICEPwd: "xfsB1szefPItdRRoMDrmk/VY",
		Fingerprint: &mapping.Fingerprint{Hash: "sha-256", Value: "E9:A5", Setup: "actpass"}}
	j := mapping.Jingle{Action: mapping.ActSessionInitiate, SID: sid, Initiator: alice.String()}
	j.Contents, j.Group = mapping.SessionToJingle(mapping.Session{Media: []mapping.Media{m}, Bundle: []string{"0"}}, mapping.RoleInitiator, mapping.RoleInitiator)
	return j
}

const phoneAnswer = "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"

func TestXMPPToSIPAnsweredAndHungUp(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	if err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: browserOffer("s1")}); err != nil {
		t.Fatalf("session-initiate refused: %v", err)
	}
	d := h.w.next("dial")
	if d.dial.To.User != "bob" || d.dial.Target.Destination != "udp:127.0.0.1:5080" {
		t.Errorf("INVITE to %v via %q, want bob's binding", d.dial.To, d.dial.Target.Destination)
	}
	offer, err := mapping.ParseSDP(d.sdp)
	if err != nil {
		t.Fatalf("INVITE SDP: %v\n%s", err, d.sdp)
	}
	if got := codecNames(offer.Media[0].Codecs); got != "opus PCMU telephone-event" {
		t.Errorf("INVITE offers %q, want the common codecs", got)
	}
	// A trickled candidate before the answer is kept for the relay.
	ti := mapping.Jingle{Action: mapping.ActTransportInfo, SID: "s1",
		Contents: []mapping.JingleContent{mapping.TransportInfoContent("0", mapping.RoleInitiator, "K002", "xfsB1szefPItdRRoMDrmk/VY",
			[]mapping.Candidate{{Foundation: "1", Component: 1, Protocol: "udp", Priority: 2122260223, IP: "127.0.0.1", Port: 48697, Type: "host"}}, false)}}
	if err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: ti}); err != nil {
		t.Fatalf("transport-info refused: %v", err)
	}

	h.svc.CallEvent(mapping.CallEvent{Key: d.key, Kind: mapping.CallProgress, Status: 180})
	ring := h.w.next("jingle")
	if ring.jingle.Action != mapping.ActSessionInfo || len(ring.jingle.Info) != 1 || ring.jingle.Info[0].XMLName.Local != "ringing" {
		t.Errorf("180 gave %+v, want session-info ringing", ring.jingle)
	}
	h.svc.CallEvent(mapping.CallEvent{Key: d.key, Kind: mapping.CallAnswered, Status: 200, SDP: []byte(phoneAnswer)})
	acc := h.w.next("jingle")
	if acc.jingle.Action != mapping.ActSessionAccept || acc.from != bobPhone || acc.to != alice {
		t.Fatalf("200 gave %s %v→%v, want session-accept bob/phone→alice", acc.jingle.Action, acc.from, acc.to)
	}
	ans, err := mapping.JingleToSession(acc.jingle)
	if err != nil {
		t.Fatalf("session-accept: %v", err)
	}
	// No transcoding: the XMPP leg gets the codec the phone chose, in the
	// browser's numbering.
	if got := codecPTs(ans.Media[0].Codecs); got != "PCMU/0 telephone-event/126" {
		t.Errorf("session-accept codecs %q, want PCMU/0 telephone-event/126", got)
	}
	rc := <-h.relay.opened
	rc.mu.Lock()
	if rc.remoteRTP.Port != 30000 || len(rc.cands) != 1 {
		t.Errorf("relay got remote RTP port %d and %d candidates, want 30000 and 1", rc.remoteRTP.Port, len(rc.cands))
	}
	rc.mu.Unlock()

	term := mapping.Jingle{Action: mapping.ActSessionTerminate, SID: "s1", Reason: mapping.NewJingleReason("success", "")}
	if err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: term}); err != nil {
		t.Fatalf("session-terminate refused: %v", err)
	}
	hu := h.w.next("hangup")
	if hu.key != d.key || hu.cause != 0 {
		t.Errorf("hangup %+v, want BYE on %s without a cause", hu, d.key)
	}
	h.w.quiet()
	waitOutcome(t, h.store, "answered")
}

func TestXMPPToSIPBusy(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	if err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: browserOffer("s2")}); err != nil {
		t.Fatal(err)
	}
	d := h.w.next("dial")
	h.svc.CallEvent(mapping.CallEvent{Key: d.key, Kind: mapping.CallFailed, Status: 486, Reason: "Busy Here"})
	term := h.w.next("jingle")
	if term.jingle.Action != mapping.ActSessionTerminate || term.jingle.Reason.Name() != "busy" {
		t.Errorf("486 gave %s/%s, want session-terminate busy", term.jingle.Action, term.jingle.Reason.Name())
	}
	h.w.quiet() // no hangup: the INVITE transaction is over
	waitOutcome(t, h.store, "busy")
}

func TestXMPPToSIPNoCommonCodec(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	j := browserOffer("s3")
	j.Contents[0].Description.PayloadTypes = j.Contents[0].Description.PayloadTypes[:0]
	off := browserOffer("s3")
	for _, pt := range off.Contents[0].Description.PayloadTypes {
		if pt.Name == "telephone-event" {
			j.Contents[0].Description.PayloadTypes = append(j.Contents[0].Description.PayloadTypes, pt)
		}
	}
	// The IQ is acknowledged; the session is then terminated
	// (XEP-0166 §6.3.2 allows either).
	if err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: j}); err != nil {
		t.Fatal(err)
	}
	term := h.w.next("jingle")
	if term.jingle.Reason.Name() != "incompatible-parameters" {
		t.Errorf("reason %q, want incompatible-parameters", term.jingle.Reason.Name())
	}
	h.w.quiet()
}

func TestUnknownSession(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	j := mapping.Jingle{Action: mapping.ActSessionTerminate, SID: "nope"}
	err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: j})
	if err == nil || err.Condition != mapping.ItemNotFound || err.Jingle != "unknown-session" {
		t.Errorf("unknown sid answered %v, want item-not-found/unknown-session", err)
	}
}

func TestJMIProposalToSIPContact(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.svc.ReceiveJMI(mapping.JMI{From: alice, To: bobJID, Kind: "propose", ID: "jmi-1", Media: []string{"audio"}})
	p := h.w.next("jmi")
	if p.jmi.Kind != "proceed" || p.from != bobPhone || p.to != alice {
		t.Fatalf("propose answered %s from %v to %v, want proceed from bob/phone", p.jmi.Kind, p.from, p.to)
	}
	// The session-initiate reuses the proposal's id (XEP-0353 §3.3).
	if err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: browserOffer("jmi-1")}); err != nil {
		t.Fatal(err)
	}
	h.w.next("dial")
}

func TestSIPToXMPPAnswered(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	inv := mapping.Invite{Key: "in-1", RequestURI: mapping.URI{Scheme: "sip", User: "alice", Host: "xmpp.example"},
		From: mapping.URI{Scheme: "sip", User: "bob", Host: "sip.example"}, SDP: []byte(phoneAnswer)}
	h.svc.Invite(inv)
	p := h.w.next("jmi")
	if p.jmi.Kind != "propose" || p.to != alice.Bare() || p.from != bobJID {
		t.Fatalf("INVITE gave %s %v→%v, want propose bob→alice's bare JID", p.jmi.Kind, p.from, p.to)
	}
	h.svc.ReceiveJMI(mapping.JMI{From: alice, To: bobJID, Kind: "ringing", ID: p.jmi.ID})
	if r := h.w.next("respond"); r.status != 180 {
		t.Errorf("ringing gave %d, want 180", r.status)
	}
	h.svc.ReceiveJMI(mapping.JMI{From: alice, To: bobJID, Kind: "proceed", ID: p.jmi.ID})
	si := h.w.next("jingle")
	if si.jingle.Action != mapping.ActSessionInitiate || si.to != alice || si.jingle.SID != p.jmi.ID {
		t.Fatalf("proceed gave %s to %v sid %s, want session-initiate to the device with the JMI id", si.jingle.Action, si.to, si.jingle.SID)
	}
	off, err := mapping.JingleToSession(si.jingle)
	if err != nil {
		t.Fatal(err)
	}
	if got := codecPTs(off.Media[0].Codecs); got != "PCMU/0 telephone-event/101" {
		t.Errorf("session-initiate codecs %q, want the phone's PCMU and telephone-event", got)
	}
	accept := browserOffer(p.jmi.ID)
	accept.Action = mapping.ActSessionAccept
	if err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: accept}); err != nil {
		t.Fatal(err)
	}
	ok := h.w.next("respond")
	if ok.status != 200 || !strings.Contains(string(ok.sdp), "m=audio 20002 RTP/AVP 0 101") {
		t.Errorf("answer %d with SDP\n%s\nwant 200 with the relay's RTP leg", ok.status, ok.sdp)
	}
	// A BYE with Reason: Q.850;cause=38 (network out of order).
	h.svc.CallEvent(mapping.CallEvent{Key: "in-1", Kind: mapping.CallHungUp, Status: 38})
	term := h.w.next("jingle")
	if want := mapping.JingleReasonForQ850(38); term.jingle.Action != mapping.ActSessionTerminate || term.jingle.Reason.Name() != want {
		t.Errorf("BYE gave %s/%s, want session-terminate %s", term.jingle.Action, term.jingle.Reason.Name(), want)
	}
	h.w.quiet()
	waitOutcome(t, h.store, "answered")
}

func TestSIPToXMPPCancelled(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.svc.Invite(mapping.Invite{Key: "in-2", RequestURI: mapping.URI{Scheme: "sip", User: "alice", Host: "xmpp.example"},
		From: mapping.URI{Scheme: "sip", User: "bob", Host: "sip.example"}, SDP: []byte(phoneAnswer)})
	p := h.w.next("jmi")
	h.svc.CallEvent(mapping.CallEvent{Key: "in-2", Kind: mapping.CallCancelled})
	r := h.w.next("jmi")
	if r.jmi.Kind != "retract" || r.jmi.ID != p.jmi.ID {
		t.Errorf("CANCEL gave %s %s, want retract of %s", r.jmi.Kind, r.jmi.ID, p.jmi.ID)
	}
	h.w.quiet()
	waitOutcome(t, h.store, "cancelled")
}

func TestSIPToXMPPDeclined(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.svc.Invite(mapping.Invite{Key: "in-3", RequestURI: mapping.URI{Scheme: "sip", User: "alice", Host: "xmpp.example"},
		From: mapping.URI{Scheme: "sip", User: "bob", Host: "sip.example"}, SDP: []byte(phoneAnswer)})
	p := h.w.next("jmi")
	h.svc.ReceiveJMI(mapping.JMI{From: alice, To: bobJID, Kind: "reject", ID: p.jmi.ID, Reason: "decline"})
	// A device's reject ends the proposal: nothing is retracted
	// (XEP-0353 §3.2), and the INVITE gets 603.
	if r := h.w.next("hangup"); r.status != 603 || r.key != "in-3" {
		t.Errorf("reject/decline gave %d on %s, want 603 on in-3", r.status, r.key)
	}
	waitOutcome(t, h.store, "declined")
}

func TestSIPToXMPPRelayFull(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.relay.full = true
	h.svc.Invite(mapping.Invite{Key: "in-4", RequestURI: mapping.URI{Scheme: "sip", User: "alice", Host: "xmpp.example"},
		From: mapping.URI{Scheme: "sip", User: "bob", Host: "sip.example"}, SDP: []byte(phoneAnswer)})
	r := h.w.next("respond")
	if r.status != 503 || r.retry <= 0 {
		t.Errorf("full relay gave %d with Retry-After %v, want 503 with one", r.status, r.retry)
	}
}

func TestSIPToXMPPNoCommonCodec(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	g729 := strings.Replace(strings.Replace(phoneAnswer, "RTP/AVP 0 101", "RTP/AVP 18", 1), "a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000", 1)
	h.svc.Invite(mapping.Invite{Key: "in-5", RequestURI: mapping.URI{Scheme: "sip", User: "alice", Host: "xmpp.example"},
		From: mapping.URI{Scheme: "sip", User: "bob", Host: "sip.example"}, SDP: []byte(g729)})
	if r := h.w.next("respond"); r.status != 488 {
		t.Errorf("G.729-only offer gave %d, want 488", r.status)
	}
}

func TestMediaFailureEndsBothLegs(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	_ = h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: browserOffer("s6")})
	d := h.w.next("dial")
	h.svc.CallEvent(mapping.CallEvent{Key: d.key, Kind: mapping.CallAnswered, Status: 200, SDP: []byte(phoneAnswer)})
	h.w.next("jingle") // session-accept
	rc := <-h.relay.opened
	rc.fail(context.DeadlineExceeded)
	term := h.w.next("jingle")
	if term.jingle.Reason.Name() != "failed-transport" {
		t.Errorf("relay failure gave reason %q, want failed-transport", term.jingle.Reason.Name())
	}
	if hu := h.w.next("hangup"); hu.key != d.key {
		t.Errorf("hangup of %s, want %s", hu.key, d.key)
	}
}

func TestRecoverCallsLeftBehind(t *testing.T) {
	store := newRecords()
	_ = store.PutCall(context.Background(), mapping.CallRecord{ID: "old", Direction: mapping.XMPPToSIP, SID: "s-old",
		XMPPPeer: alice, Contact: bobPhone, Dialog: &mapping.DialogRecord{CallID: "cid-old"}})
	h := newHarness(t, Config{}, store)
	if b := h.w.next("bye-record"); b.key != "cid-old" {
		t.Errorf("BYE for %s, want cid-old", b.key)
	}
	term := h.w.next("jingle")
	if term.jingle.SID != "s-old" || term.to != alice {
		t.Errorf("session-terminate %s to %v, want s-old to alice", term.jingle.SID, term.to)
	}
	waitOutcome(t, store, "gateway-restart")
}

func codecNames(cs []mapping.Codec) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return strings.Join(out, " ")
}

func codecPTs(cs []mapping.Codec) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name+"/"+strconv.Itoa(int(c.PT)))
	}
	return strings.Join(out, " ")
}

// waitOutcome waits until a record with outcome was written.
func waitOutcome(t *testing.T, r *records, outcome string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		for _, o := range r.outcomes() {
			if o == outcome {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("outcomes %v, want %s", r.outcomes(), outcome)
}

// XEP-0167 §7.2 / RFC 6337 §5.3: hold from the XMPP side is a re-INVITE
// with a=sendonly, unhold one with a=sendrecv; both keep the o= session id
// of the first offer and raise its version (RFC 3264 §8).
func TestHoldFromXMPP(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	_ = h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: browserOffer("s7")})
	d := h.w.next("dial")
	h.svc.CallEvent(mapping.CallEvent{Key: d.key, Kind: mapping.CallAnswered, Status: 200, SDP: []byte(phoneAnswer)})
	h.w.next("jingle") // session-accept
	first, err := mapping.ParseSDP(d.sdp)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		info string
		want mapping.Direction
	}{{"hold", mapping.SendOnly}, {"unhold", mapping.SendRecv}} {
		j := mapping.Jingle{Action: mapping.ActSessionInfo, SID: "s7", Info: []mapping.JingleInfo{rtpInfo(c.info)}}
		if err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: j}); err != nil {
			t.Fatal(err)
		}
		re := h.w.next("reinvite")
		s, err := mapping.ParseSDP(re.sdp)
		if err != nil {
			t.Fatal(err)
		}
		if s.Media[0].Direction != c.want {
			t.Errorf("%s: re-INVITE says %s, want %s", c.info, s.Media[0].Direction, c.want)
		}
		if s.Origin.ID != first.Origin.ID || s.Origin.Version != first.Origin.Version+uint64(i)+1 {
			t.Errorf("%s: o= %d %d, want %d %d", c.info, s.Origin.ID, s.Origin.Version, first.Origin.ID, first.Origin.Version+uint64(i)+1)
		}
	}
}

// TestSIPToXMPPSDES: a phone offering RTP/SAVP with a=crypto (RFC 4568) is
// answered RTP/SAVP with the relay's own key on the chosen line's tag.
func TestSIPToXMPPSDES(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	offer := strings.Replace(phoneAnswer, "RTP/AVP 0 101", "RTP/SAVP 0 101", 1) +
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c3RveC10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGUh\r\n"
	inv := mapping.Invite{Key: "in-1", RequestURI: mapping.URI{Scheme: "sip", User: "alice", Host: "xmpp.example"},
		From: mapping.URI{Scheme: "sip", User: "bob", Host: "sip.example"}, SDP: []byte(offer)}
	h.svc.Invite(inv)
	p := h.w.next("jmi")
	h.svc.ReceiveJMI(mapping.JMI{From: alice, To: bobJID, Kind: "proceed", ID: p.jmi.ID})
	if si := h.w.next("jingle"); si.jingle.Action != mapping.ActSessionInitiate {
		t.Fatalf("proceed gave %s", si.jingle.Action)
	}
	accept := browserOffer(p.jmi.ID)
	accept.Action = mapping.ActSessionAccept
	if err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: accept}); err != nil {
		t.Fatal(err)
	}
	ok := h.w.next("respond")
	if ok.status != 200 || !strings.Contains(string(ok.sdp), "m=audio 20002 RTP/SAVP 0 101") ||
		!strings.Contains(string(ok.sdp), "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:cmVsYXkt") {
		t.Errorf("answer %d with SDP\n%s\nwant 200 RTP/SAVP with the relay's a=crypto", ok.status, ok.sdp)
	}
	rc := <-h.relay.opened
	rc.mu.Lock()
	if len(rc.remoteRTP.Crypto) != 1 || rc.remoteRTP.Profile != "RTP/SAVP" {
		t.Errorf("relay got %q with %d a=crypto lines", rc.remoteRTP.Profile, len(rc.remoteRTP.Crypto))
	}
	rc.mu.Unlock()
	h.svc.CallEvent(mapping.CallEvent{Key: "in-1", Kind: mapping.CallHungUp})
	h.w.next("jingle")
	h.w.quiet()
	waitOutcome(t, h.store, "answered")
}

// RFC 3264 §6: an offer whose only audio stream the relay cannot take (here
// DTLS-SRTP toward SIP) is refused with 488 before any device rings.
func TestSIPToXMPPRefusedProfile(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	dtls := strings.Replace(phoneAnswer, "RTP/AVP", "UDP/TLS/RTP/SAVPF", 1)
	h.svc.Invite(mapping.Invite{Key: "in-9", RequestURI: mapping.URI{Scheme: "sip", User: "alice", Host: "xmpp.example"},
		From: mapping.URI{Scheme: "sip", User: "bob", Host: "sip.example"}, SDP: []byte(dtls)})
	if r := h.w.next("respond"); r.status != 488 {
		t.Errorf("DTLS-SRTP offer gave %d, want 488", r.status)
	}
	h.w.quiet() // no propose
}

// The BYE for a call left behind waits until the SIP stack can send it.
func TestRecoverWaitsForSIP(t *testing.T) {
	store := newRecords()
	_ = store.PutCall(context.Background(), mapping.CallRecord{ID: "old", Direction: mapping.SIPToXMPP, SID: "s-old",
		XMPPPeer: alice, Contact: bobPhone, Dialog: &mapping.DialogRecord{CallID: "cid-old"}})
	ready := make(chan struct{})
	h := newHarness(t, Config{SIPReady: ready}, store)
	h.w.quiet()
	close(ready)
	if b := h.w.next("bye-record"); b.key != "cid-old" {
		t.Errorf("BYE for %s, want cid-old", b.key)
	}
}

// XEP-0166 §6.3.2: a session-initiate that finds the relay full is answered
// with resource-constraint, and nothing is sent toward SIP.
func TestXMPPToSIPRelayFull(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.relay.full = true
	err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: browserOffer("s8")})
	if err == nil || err.Condition != mapping.ResourceConstraint {
		t.Errorf("full relay answered %v, want resource-constraint", err)
	}
	h.w.quiet()
}

// XEP-0166 §7.1: a sid is unique per initiator only. Two users who pick
// the same sid each get their own call.
func TestSameSIDTwoUsers(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	carol := mapping.JID{Local: "carol", Domain: "xmpp.example", Resource: "x"}
	for _, from := range []mapping.JID{alice, carol} {
		if err := h.svc.ReceiveJingle(mapping.JingleIQ{From: from, To: bobPhone, Jingle: browserOffer("same")}); err != nil {
			t.Fatalf("session-initiate from %v: %v", from, err)
		}
		if d := h.w.next("dial"); d.dial.From.User != from.Local {
			t.Errorf("INVITE from %v, want %s", d.dial.From, from.Local)
		}
	}
	if n := h.svc.Active(); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}

// A client that floods a call with transport-info while the call waits on
// the XMPP server gets resource-constraint past inboxSize; the phone's BYE
// that comes after the flood is still taken, and alice's session ends.
func TestFloodDoesNotLoseHangup(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	if err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: browserOffer("s9")}); err != nil {
		t.Fatal(err)
	}
	d := h.w.next("dial")
	hold := make(chan struct{})
	var release sync.Once
	unhold := func() { release.Do(func() { close(hold) }) }
	t.Cleanup(unhold) // registered after the harness: runs before it stops
	h.w.mu.Lock()
	h.w.hold = hold
	h.w.mu.Unlock()
	// The 200 makes the call send session-accept and wait for its answer.
	h.svc.CallEvent(mapping.CallEvent{Key: d.key, Kind: mapping.CallAnswered, Status: 200, SDP: []byte(phoneAnswer)})
	if acc := h.w.next("jingle"); acc.jingle.Action != mapping.ActSessionAccept {
		t.Fatalf("200 gave %s, want session-accept", acc.jingle.Action)
	}
	ti := mapping.Jingle{Action: mapping.ActTransportInfo, SID: "s9",
		Contents: []mapping.JingleContent{mapping.TransportInfoContent("0", mapping.RoleInitiator, "K002", "xfsB1szefPItdRRoMDrmk/VY",
			[]mapping.Candidate{{Foundation: "1", Component: 1, Protocol: "udp", Priority: 1, IP: "127.0.0.1", Port: 40000, Type: "host"}}, false)}}
	accepted := 0
	for i := 0; i < 2*inboxSize; i++ {
		if err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: ti}); err != nil {
			if err.Condition != mapping.ResourceConstraint {
				t.Fatalf("transport-info %d: %v, want resource-constraint", i, err)
			}
			continue
		}
		accepted++
	}
	if accepted != inboxSize {
		t.Errorf("%d transport-infos queued, want inboxSize (%d)", accepted, inboxSize)
	}
	h.svc.CallEvent(mapping.CallEvent{Key: d.key, Kind: mapping.CallHungUp})
	unhold()
	if term := h.w.next("jingle"); term.jingle.Action != mapping.ActSessionTerminate || term.to != alice {
		t.Fatalf("after the flood the BYE gave %s to %v, want session-terminate to alice", term.jingle.Action, term.to)
	}
	waitOutcome(t, h.store, "answered")
}

// A phone may re-INVITE for hold as soon as it sent its 200, and the SIP
// stack may report that before the answer: alice learns of the hold once
// her session is accepted.
func TestHoldBeforeAnswerIsTold(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	if err := h.svc.ReceiveJingle(mapping.JingleIQ{From: alice, To: bobPhone, Jingle: browserOffer("s10")}); err != nil {
		t.Fatal(err)
	}
	d := h.w.next("dial")
	held := strings.Replace(phoneAnswer, "a=sendrecv", "a=sendonly", 1)
	h.svc.CallEvent(mapping.CallEvent{Key: d.key, Kind: mapping.CallReoffered, SDP: []byte(held)})
	h.svc.CallEvent(mapping.CallEvent{Key: d.key, Kind: mapping.CallAnswered, Status: 200, SDP: []byte(phoneAnswer)})
	if acc := h.w.next("jingle"); acc.jingle.Action != mapping.ActSessionAccept {
		t.Fatalf("200 gave %s, want session-accept", acc.jingle.Action)
	}
	info := h.w.next("jingle")
	if info.jingle.Action != mapping.ActSessionInfo || len(info.jingle.Info) != 1 || info.jingle.Info[0].XMLName.Local != "hold" {
		t.Fatalf("after the accept: %s %+v, want session-info hold", info.jingle.Action, info.jingle.Info)
	}
}
