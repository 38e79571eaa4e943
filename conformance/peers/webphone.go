package peers

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"stox.dev/stox/internal/testenv"
)

// WebPhone is an XMPP softphone for call tests: StanzaJS (Jingle ICE-UDP,
// DTLS-SRTP, opus/PCMU, plus XEP-0353 JMI) in headless Chromium, logged in
// over a server's websocket (Prosody.WebSocketURL) and online with
// available presence. docs/peers.md ("web phone") explains the pieces:
//
//	node webphone/drive.mjs CONFIG    (puppeteer-core, Chromium over a pipe)
//	  -> file://…/webphone/phone.html (loopback.js, stanza.bundle.js, phone.js)
//
// drive.mjs prints the page's events as JSON lines on stdout; commands go
// to its stdin. The page console goes to Dir/webphone.log. Chromium sends
// the tone ToneHz from Dir/tone.wav as its microphone, and only ever
// signals and uses ICE candidates on 127.0.0.1.
type WebPhone struct {
	JID string // bare JID
	Dir string
	Log string // Dir/webphone.log

	p     *Proc
	stdin io.WriteCloser

	mu     sync.Mutex
	nextID int
	dialed map[int]chan CallResult
	acks   map[int]chan struct{}
	calls  chan CallResult
	ready  chan error
	dead   chan struct{} // closed when drive.mjs's stdout ends
}

// WebPhoneConfig says where and as whom a WebPhone logs in.
type WebPhoneConfig struct {
	WebSocketURL string // e.g. ws://127.0.0.1:PORT/xmpp-websocket
	JID          string // bare JID
	Password     string
	Resource     string // "" is "web"
	ToneHz       int    // the tone the phone sends; 0 is 440
}

// WebPhoneDir is the absolute path of conformance/peers/webphone (found
// from this source file).
func WebPhoneDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "webphone")
}

// LookWebPhone returns an error naming what the web phone lacks
// (chromium, node, the npm modules or the StanzaJS bundle that
// .ci/install-peers.sh installs and builds), or nil.
func LookWebPhone() error {
	if err := LookBins("chromium", "node"); err != nil {
		return err
	}
	d := WebPhoneDir()
	for _, f := range []string{"node_modules/puppeteer-core/package.json", "stanza.bundle.js"} {
		if _, err := os.Stat(filepath.Join(d, f)); err != nil {
			return fmt.Errorf("web phone not built: %w (run .ci/install-peers.sh)", err)
		}
	}
	return nil
}

// NewWebPhone starts a web phone in dir (profile, tone, log) and returns
// once it is logged in and has sent available presence (error after 60 s:
// Chromium takes 5–15 s to start on a loaded 2-core machine).
func NewWebPhone(dir string, cfg WebPhoneConfig) (*WebPhone, error) {
	if err := LookWebPhone(); err != nil {
		return nil, err
	}
	if cfg.ToneHz == 0 {
		cfg.ToneHz = 440
	}
	if cfg.Resource == "" {
		cfg.Resource = "web"
	}
	w := &WebPhone{JID: cfg.JID, Dir: dir, Log: filepath.Join(dir, "webphone.log"),
		dialed: map[int]chan CallResult{}, acks: map[int]chan struct{}{}, calls: make(chan CallResult, 16),
		ready: make(chan error, 1), dead: make(chan struct{})}
	tone := filepath.Join(dir, "tone.wav")
	// Chrome loops the file as the microphone (48 kHz mono is its native rate).
	if err := WriteToneWAV(tone, float64(cfg.ToneHz), 48000, 1, 10); err != nil {
		return nil, err
	}
	conf, _ := json.Marshal(map[string]string{
		"ws": cfg.WebSocketURL, "jid": cfg.JID, "password": cfg.Password, "resource": cfg.Resource,
		"toneWAV": tone, "profile": filepath.Join(dir, "profile"),
	})
	r, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("node", filepath.Join(WebPhoneDir(), "drive.mjs"), string(conf))
	cmd.Dir = dir
	cmd.Stdout = wr
	if w.stdin, err = cmd.StdinPipe(); err != nil {
		r.Close()
		wr.Close()
		return nil, err
	}
	w.p, err = StartProc("webphone", cmd, w.Log)
	wr.Close() // the child holds its copy
	if err != nil {
		r.Close()
		return nil, err
	}
	go w.read(r)
	select {
	case err = <-w.ready:
	case <-time.After(60 * time.Second):
		err = fmt.Errorf("not logged in after 60 s")
	}
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("web phone %s: %w\n%s", cfg.JID, err, LogTail(w.Log, 3000))
	}
	return w, nil
}

// read owns drive.mjs's stdout until it ends (Close ends the process).
func (w *WebPhone) read(r *os.File) {
	defer close(w.dead)
	defer r.Close()
	logf, _ := os.OpenFile(w.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if logf != nil {
		defer logf.Close()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var m struct {
			Type   string     `json:"type"`
			ID     int        `json:"id"`
			Text   string     `json:"text"`
			Err    string     `json:"err"`
			Result CallResult `json:"result"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			m.Type, m.Text = "log", sc.Text()
		}
		switch m.Type {
		case "log":
			if logf != nil {
				fmt.Fprintln(logf, m.Text)
			}
			continue
		case "ready":
			w.signalReady(nil)
		case "fatal":
			w.signalReady(fmt.Errorf("%s", m.Err))
		case "dialed":
			w.mu.Lock()
			ch := w.dialed[m.ID]
			delete(w.dialed, m.ID)
			w.mu.Unlock()
			if ch != nil {
				ch <- m.Result
			}
		case "ack":
			w.mu.Lock()
			if ch := w.acks[m.ID]; ch != nil {
				close(ch)
				delete(w.acks, m.ID)
			}
			w.mu.Unlock()
		case "call":
			select {
			case w.calls <- m.Result:
			default: // nobody has asked for 16 calls: drop
			}
		}
		if logf != nil {
			fmt.Fprintln(logf, "EVENT", sc.Text())
		}
	}
	w.signalReady(fmt.Errorf("drive.mjs exited"))
}

func (w *WebPhone) signalReady(err error) {
	select {
	case w.ready <- err:
	default:
	}
}

// send writes one command line to drive.mjs.
func (w *WebPhone) send(cmd map[string]any) error {
	b, _ := json.Marshal(cmd)
	if _, err := w.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("web phone %s: %w", w.JID, err)
	}
	return nil
}

// command sends cmd and waits until the page has taken it, so that what a
// test does next (e.g. a call to the phone) sees its effect.
func (w *WebPhone) command(cmd map[string]any) error {
	w.mu.Lock()
	w.nextID++
	id := w.nextID
	ch := make(chan struct{})
	w.acks[id] = ch
	w.mu.Unlock()
	cmd["ack"] = id
	if err := w.send(cmd); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-w.dead:
		return fmt.Errorf("web phone %s exited", w.JID)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("web phone %s: %v not taken within 10 s", w.JID, cmd["op"])
	}
}

// Close closes the browser (a call in progress ends without
// session-terminate) and stops node, SIGKILL after 5 s.
func (w *WebPhone) Close() error {
	w.stdin.Close() // drive.mjs closes Chromium and exits on EOF
	select {
	case <-w.p.Done():
	case <-time.After(5 * time.Second):
	}
	w.p.Stop(time.Second)
	return nil
}

// CallOptions say how Dial calls.
type CallOptions struct {
	JMI         bool          // XEP-0353 propose to the bare JID first; else session-initiate to the full JID
	Codec       string        // "" (Chrome's list, opus first), "PCMU", "opus": offer only that codec
	HangupAfter time.Duration // after ICE connects; 0: wait for the peer to hang up (or Timeout)
	Timeout     time.Duration // the whole call; 0 is 30 s. At the timeout the phone hangs up (or cancels)
	Reason      string        // session-terminate reason when hanging up; "" is "success"
}

// AnswerMode says how the phone treats an incoming call.
type AnswerMode int

const (
	AnswerAccept  AnswerMode = iota // JMI: ringing, then proceed; Jingle: session-accept
	AnswerBusy                      // JMI: reject; Jingle: session-terminate busy
	AnswerDecline                   // JMI: reject; Jingle: session-terminate decline
	AnswerRing                      // JMI: ringing; Jingle: session-info ringing; never answers
	AnswerIgnore                    // sends nothing at all (only the IQ result)
)

func (m AnswerMode) String() string {
	switch m {
	case AnswerBusy:
		return "busy"
	case AnswerDecline:
		return "decline"
	case AnswerRing:
		return "ring"
	case AnswerIgnore:
		return "ignore"
	}
	return "accept"
}

// AnswerOptions say how the phone treats incoming calls from now on.
type AnswerOptions struct {
	Mode        AnswerMode
	Delay       time.Duration // ring this long before proceed/session-accept
	Codec       string        // accept only this codec ("" any)
	HangupAfter time.Duration // after ICE connects; 0: wait for the caller
	Timeout     time.Duration // give up on the call (report it with Err "timeout"); 0 is 60 s
}

// CallResult is what the web phone saw of one call.
type CallResult struct {
	Connected       bool     `json:"connected"`       // ICE and DTLS up
	TerminateReason string   `json:"terminateReason"` // Jingle reason (ours or theirs), or JMI "reject"/"retract"
	Codec           string   `json:"codec"`           // e.g. "opus", "PCMU"
	PacketsReceived int      `json:"packetsReceived"` // inbound-rtp
	PacketsSent     int      `json:"packetsSent"`     // outbound-rtp
	AudioLevel      float64  `json:"audioLevel"`      // RMS of the received audio (WebAudio), over the non-silent part
	FreqHz          float64  `json:"freqHz"`          // frequency of the received audio, by zero crossings
	JMI             []string `json:"jmi"`             // JMI kinds sent and received, in order
	Transcript      []string `json:"transcript"`      // ">>> " sent and "<<< " received stanzas about this call
	Err             string   `json:"err"`             // e.g. "timeout"
}

// CheckAudio reports whether the received audio was a tone of hz: at least
// 50 packets (1 s), RMS ≥ 0.1 (the tones have 0.354) and a frequency
// within ±5 %.
func (r CallResult) CheckAudio(hz float64) error {
	switch {
	case r.PacketsReceived < 50:
		return fmt.Errorf("only %d RTP packets received (codec %q, connected %v)", r.PacketsReceived, r.Codec, r.Connected)
	case r.AudioLevel < 0.1:
		return fmt.Errorf("received audio too quiet: RMS %.3f < 0.1 (%d packets)", r.AudioLevel, r.PacketsReceived)
	case math.Abs(r.FreqHz-hz) > 0.05*hz:
		return fmt.Errorf("received tone at %.1f Hz, want %.0f Hz ± 5%%", r.FreqHz, hz)
	}
	return nil
}

// Dial calls to (a bare JID with JMI, a full JID without) and returns when
// the call has ended. An error to start it is in Err; the test is not
// failed here, so it can assert on failures too.
func (w *WebPhone) Dial(t TB, to string, o CallOptions) CallResult {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	w.mu.Lock()
	w.nextID++
	id := w.nextID
	ch := make(chan CallResult, 1)
	w.dialed[id] = ch
	w.mu.Unlock()
	err := w.send(map[string]any{"op": "dial", "id": id, "to": to, "jmi": o.JMI, "codec": o.Codec,
		"hangupAfterMs": o.HangupAfter.Milliseconds(), "timeoutMs": o.Timeout.Milliseconds(), "reason": o.Reason})
	if err != nil {
		return CallResult{Err: err.Error()}
	}
	select {
	case r := <-ch:
		t.Logf("web phone %s dialed %s: %s", w.JID, to, r)
		return r
	case <-w.dead:
		return CallResult{Err: "web phone exited\n" + LogTail(w.Log, 3000)}
	case <-time.After(o.Timeout + 10*time.Second):
		return CallResult{Err: fmt.Sprintf("no result %v after the call's timeout", 10*time.Second)}
	}
}

// Answer sets how the phone treats the next incoming calls (JMI or direct);
// it returns once the page has taken the setting.
func (w *WebPhone) Answer(t TB, o AnswerOptions) {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	check(t, w.command(map[string]any{"op": "answer", "mode": o.Mode.String(), "delayMs": o.Delay.Milliseconds(),
		"codec": o.Codec, "hangupAfterMs": o.HangupAfter.Milliseconds(), "timeoutMs": o.Timeout.Milliseconds()}))
}

// NextCall waits for the next incoming call to end and returns it; it fails
// the test after timeout.
func (w *WebPhone) NextCall(t TB, timeout time.Duration) CallResult {
	t.Helper()
	select {
	case r := <-w.calls:
		t.Logf("web phone %s answered: %s", w.JID, r)
		return r
	case <-w.dead:
		t.Fatalf("web phone %s exited\n%s", w.JID, LogTail(w.Log, 3000))
	case <-time.After(timeout):
		t.Fatalf("web phone %s: no incoming call ended within %v", w.JID, timeout)
	}
	return CallResult{}
}

// String is a one-line summary for test logs (no transcript).
func (r CallResult) String() string {
	return fmt.Sprintf("connected=%v reason=%q codec=%s rx=%d tx=%d rms=%.3f hz=%.1f jmi=%v err=%q",
		r.Connected, r.TerminateReason, r.Codec, r.PacketsReceived, r.PacketsSent, r.AudioLevel, r.FreqHz, r.JMI, r.Err)
}

// StartWebPhone is NewWebPhone in a temp dir; cleanup closes it. A missing
// chromium, node or web phone build skips the test (fails it when CI=true).
func StartWebPhone(t TB, cfg WebPhoneConfig) *WebPhone {
	t.Helper()
	if err := LookWebPhone(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	dir := shortTempDir(t, "webphone")
	logOnFailure(t, "web phone "+cfg.JID, filepath.Join(dir, "webphone.log"))
	w := must(NewWebPhone(dir, cfg)).orFail(t)
	t.Cleanup(func() { w.Close() })
	return w
}

// Hold puts the call in progress on hold (on) or takes it off hold: a
// Jingle session-info <hold/> or <active/> (XEP-0167 §7). The command is
// fire and forget; the page logs when there is no call.
func (w *WebPhone) Hold(t TB, on bool) {
	t.Helper()
	check(t, w.command(map[string]any{"op": "hold", "on": on}))
}

// SendDTMF sends tones (0-9, *, #, A-D) on the call in progress as RFC 4733
// telephone-events through Chrome's RTCDTMFSender, 100 ms each.
func (w *WebPhone) SendDTMF(t TB, tones string) {
	t.Helper()
	check(t, w.command(map[string]any{"op": "dtmf", "tones": tones}))
}
