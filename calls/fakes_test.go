package calls

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"stox.dev/stox/mapping"
)

// The fakes stand in for the stacks, the relay and the store; each records
// what the capability asked of it on a channel, so a test reads the calls in
// order and fails when one does not come.

type sent struct {
	what     string // "jingle", "jmi", "dial", "respond", "hangup", "reinvite", "bye-record"
	from, to mapping.JID
	jingle   mapping.Jingle
	jmi      mapping.JMI
	dial     mapping.Dial
	key      mapping.CallKey
	status   int
	cause    int
	sdp      []byte
	retry    time.Duration
}

type wire struct {
	t  *testing.T
	ch chan sent

	mu        sync.Mutex
	jingleErr error // returned by SendJingle
	up        bool
	// hold, when set, keeps SendJingle from returning until it is closed,
	// as a slow XMPP server would.
	hold chan struct{}
}

func newWire(t *testing.T) *wire { return &wire{t: t, ch: make(chan sent, 100), up: true} }

func (w *wire) Up() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.up }

func (w *wire) SendJingle(_ context.Context, from, to mapping.JID, j mapping.Jingle) error {
	w.ch <- sent{what: "jingle", from: from, to: to, jingle: j}
	w.mu.Lock()
	hold := w.hold
	w.mu.Unlock()
	if hold != nil {
		<-hold
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.jingleErr
}

func (w *wire) PostJingle(from, to mapping.JID, j mapping.Jingle) error {
	w.ch <- sent{what: "jingle", from: from, to: to, jingle: j}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.jingleErr
}

func (w *wire) SendJMI(m mapping.JMI) error {
	w.ch <- sent{what: "jmi", from: m.From, to: m.To, jmi: m}
	return nil
}

func (w *wire) Dial(_ context.Context, d mapping.Dial) (mapping.CallKey, error) {
	key := d.Key
	if key == "" {
		w.t.Error("Dial without a key: the call could miss its dialog's first events")
	}
	w.ch <- sent{what: "dial", dial: d, key: key, sdp: d.SDP}
	return key, nil
}

func (w *wire) Respond(key mapping.CallKey, status int, _ string, sdp []byte, retry time.Duration) error {
	w.ch <- sent{what: "respond", key: key, status: status, sdp: sdp, retry: retry}
	return nil
}

func (w *wire) Hangup(_ context.Context, key mapping.CallKey, status, cause int, _ string) error {
	w.ch <- sent{what: "hangup", key: key, status: status, cause: cause}
	return nil
}

func (w *wire) Reinvite(_ context.Context, key mapping.CallKey, sdp []byte) ([]byte, error) {
	w.ch <- sent{what: "reinvite", key: key, sdp: sdp}
	return nil, nil
}

func (w *wire) DialogRecord(key mapping.CallKey) (mapping.DialogRecord, bool) {
	return mapping.DialogRecord{CallID: string(key)}, true
}

func (w *wire) ByeRecord(_ context.Context, r mapping.DialogRecord, cause int, _ string) error {
	w.ch <- sent{what: "bye-record", key: mapping.CallKey(r.CallID), cause: cause}
	return nil
}

// next returns the next thing sent, failing the test after a while.
func (w *wire) next(what string) sent {
	w.t.Helper()
	select {
	case s := <-w.ch:
		if s.what != what {
			w.t.Fatalf("sent %s (%+v), want %s", s.what, s, what)
		}
		return s
	case <-time.After(5 * time.Second):
		w.t.Fatalf("nothing sent, want %s", what)
	}
	return sent{}
}

// quiet fails when anything else is sent within a short while.
func (w *wire) quiet() {
	w.t.Helper()
	select {
	case s := <-w.ch:
		w.t.Fatalf("unexpected %s: %+v", s.what, s)
	case <-time.After(100 * time.Millisecond):
	}
}

type locator struct{ bindings map[string][]mapping.Binding }

func (l locator) Bindings(aor string) []mapping.Binding { return l.bindings[aor] }
func (l locator) AccountExists(context.Context, string) (bool, error) {
	return false, nil
}

// relay is a fake Media: it answers with fixed descriptions and records
// the codecs it was given.
type relay struct {
	mu     sync.Mutex
	full   bool
	calls  []*relayCall
	opened chan *relayCall
}

func newRelay() *relay { return &relay{opened: make(chan *relayCall, 10)} }

func (r *relay) Open(id string) (MediaCall, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.full {
		return nil, ErrNoCapacity
	}
	c := &relayCall{done: make(chan struct{})}
	r.calls = append(r.calls, c)
	r.opened <- c
	return c, nil
}

type relayCall struct {
	mu           sync.Mutex
	done         chan struct{}
	err          error
	closed       bool
	webrtcCodecs []mapping.Codec
	rtpCodecs    []mapping.Codec
	remoteRTP    mapping.Media
	answer       mapping.Media
	cands        []mapping.Candidate
}

func (c *relayCall) webrtcLeg(codecs []mapping.Codec, setup string) mapping.Media {
	return mapping.Media{Mid: "0", Kind: "audio", Profile: "UDP/TLS/RTP/SAVPF", Port: 9, Codecs: codecs,
		Direction: mapping.SendRecv, RTCPMux: true, ICEUfrag: "stox", ICEPwd: "stoxstoxstoxstoxstoxst", ICELite: true,
		Candidates:  []mapping.Candidate{{Foundation: "1", Component: 1, Protocol: "udp", Priority: 1, IP: "127.0.0.1", Port: 20000, Type: "host"}},
		Fingerprint: &mapping.Fingerprint{Hash: "sha-256", Value: "AA:BB", Setup: setup}}
}

func (c *relayCall) AnswerWebRTC(offer mapping.Media, codecs []mapping.Codec) (mapping.Media, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.webrtcCodecs = codecs
	m := c.webrtcLeg(codecs, "active")
	m.Mid = offer.Mid
	return m, nil
}

func (c *relayCall) OfferWebRTC(codecs []mapping.Codec) (mapping.Media, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.webrtcCodecs = codecs
	return c.webrtcLeg(codecs, "actpass"), nil
}

func (c *relayCall) SetWebRTCAnswer(a mapping.Media) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answer = a
	return nil
}

func (c *relayCall) AddRemoteCandidate(cand mapping.Candidate) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cands = append(c.cands, cand)
	return nil
}

func (c *relayCall) LocalRTP(codecs []mapping.Codec) (mapping.Media, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rtpCodecs = codecs
	return mapping.Media{Kind: "audio", Profile: "RTP/AVP", Addr: "127.0.0.1", Port: 20002, Codecs: codecs, Direction: mapping.SendRecv}, nil
}

func (c *relayCall) SetRemoteRTP(m mapping.Media) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remoteRTP = m
	return nil
}

// AnswerRTP answers as the relay does: the offer's profile, and for an
// SDES offer the first line's tag with a key of the relay.
func (c *relayCall) AnswerRTP(m mapping.Media, codecs []mapping.Codec) (mapping.Media, error) {
	c.mu.Lock()
	c.remoteRTP = m
	c.rtpCodecs = codecs
	c.mu.Unlock()
	local := mapping.Media{Kind: "audio", Profile: m.Profile, Addr: "127.0.0.1", Port: 20002, Codecs: codecs, Direction: mapping.SendRecv}
	if len(m.Crypto) > 0 {
		local.Crypto = []mapping.Crypto{{Tag: m.Crypto[0].Tag, Suite: m.Crypto[0].Suite, KeyParams: "inline:cmVsYXkta2V5LXJlbGF5LWtleS1yZWxheS1rZXkh"}}
	}
	return local, nil
}

func (c *relayCall) Done() <-chan struct{} { return c.done }
func (c *relayCall) Err() error            { c.mu.Lock(); defer c.mu.Unlock(); return c.err }
func (c *relayCall) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// fail ends the relay on its own, as an ICE failure or inactivity would.
func (c *relayCall) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	close(c.done)
}

type records struct {
	mu   sync.Mutex
	byID map[string]mapping.CallRecord
}

func newRecords() *records { return &records{byID: map[string]mapping.CallRecord{}} }

func (r *records) PutCall(_ context.Context, c mapping.CallRecord) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID[c.ID] = c
	return nil
}

func (r *records) OpenCalls(context.Context) ([]mapping.CallRecord, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []mapping.CallRecord
	for _, c := range r.byID {
		if c.Ended.IsZero() {
			out = append(out, c)
		}
	}
	return out, nil
}

// outcomes returns the outcome of every ended record.
func (r *records) outcomes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.byID {
		if !c.Ended.IsZero() {
			out = append(out, c.Outcome)
		}
	}
	return out
}

// CheckRTP refuses what the real relay refuses most often: a DTLS-SRTP
// stream toward SIP.
func (r *relay) CheckRTP(m mapping.Media) error {
	if strings.HasPrefix(m.Profile, "UDP/TLS") {
		return errors.New("DTLS-SRTP on the SIP leg")
	}
	return nil
}
