package peers

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Call mode of the baresip helper (docs/peers.md, "baresip calls"): the
// options below choose the media security, the codec, the tone baresip
// sends and whether it answers by itself; Dial, Accept, Reject and Hangup
// drive a call over ctrl_tcp, NextEvent follows it, and Recordings lists
// the WAVs of what baresip received (check them with AnalyzeWAV).

// BaresipMediaMode is how baresip protects and connects its audio.
type BaresipMediaMode int

const (
	// BaresipPlainRTP offers RTP/AVP (no mediaenc, no medianat).
	BaresipPlainRTP BaresipMediaMode = iota
	// BaresipSDES offers RTP/SAVP with a=crypto (mediaenc=srtp-mand; RFC 4568).
	BaresipSDES
	// BaresipDTLS offers UDP/TLS/RTP/SAVPF with a=fingerprint and
	// a=setup:actpass, no ICE (mediaenc=dtls_srtp; RFC 5763).
	BaresipDTLS
	// BaresipICEDTLS is BaresipDTLS with ICE (medianat=ice) and rtcp-mux,
	// what a WebRTC-capable SIP phone offers. baresip's ICE module skips
	// loopback addresses, so this mode needs a non-loopback address on the
	// machine (docs/peers.md).
	BaresipICEDTLS
)

// toneSeconds is the length of the tone WAV: baresip's aufile source stops
// at the end of the file, so it must outlast every test call.
const toneSeconds = 60

type baresipCallOpts struct {
	media  BaresipMediaMode
	codec  string // "" or "PCMU": pcmu; "opus": opus/48000/2
	toneHz int
	manual bool
	record bool
	trace  bool
}

// BaresipSIPTrace runs baresip with -s: every SIP message it sends and
// receives, SDP included, goes to its log (LogText).
func BaresipSIPTrace() BaresipOption { return func(o *baresipOpts) { o.call.trace = true } }

// BaresipMedia sets the media mode (default BaresipPlainRTP).
func BaresipMedia(m BaresipMediaMode) BaresipOption {
	return func(o *baresipOpts) { o.call.media = m }
}

// BaresipCodec limits the audio codecs baresip offers and accepts:
// "PCMU" (the default) or "opus" (opus/48000/2).
func BaresipCodec(name string) BaresipOption {
	return func(o *baresipOpts) { o.call.codec = name }
}

// BaresipTone makes baresip send a sine of hz (amplitude 0.5, RMS 0.354)
// from a WAV that matches the codec's rate and channels (aufile refuses a
// mismatch: 8 kHz mono for PCMU, 48 kHz stereo for opus). It also turns on
// BaresipRecord.
func BaresipTone(hz int) BaresipOption {
	return func(o *baresipOpts) { o.call.toneHz, o.call.record = hz, true }
}

// BaresipManualAnswer makes incoming calls ring until Accept or Reject
// (answermode=manual); the default answers at once.
func BaresipManualAnswer() BaresipOption { return func(o *baresipOpts) { o.call.manual = true } }

// BaresipRecord records each call's received audio to Dir/rec/*-dec.wav
// (and what it sent to *-enc.wav) with the sndfile module; see Recordings.
func BaresipRecord() BaresipOption { return func(o *baresipOpts) { o.call.record = true } }

func (c baresipCallOpts) wavFormat() (rate, channels int) {
	if strings.EqualFold(c.codec, "opus") {
		return 48000, 2
	}
	return 8000, 1
}

func (c baresipCallOpts) answermode() string {
	if c.manual {
		return "manual"
	}
	return "auto"
}

// accountParams are the account line's media parameters.
func (c baresipCallOpts) accountParams() string {
	var s string
	switch strings.ToLower(c.codec) {
	case "opus":
		s = ";audio_codecs=opus/48000/2"
	case "", "pcmu":
		s = ";audio_codecs=pcmu"
	default:
		s = ";audio_codecs=" + strings.ToLower(c.codec)
	}
	switch c.media {
	case BaresipSDES:
		s += ";mediaenc=srtp-mand"
	case BaresipDTLS:
		s += ";mediaenc=dtls_srtp"
	case BaresipICEDTLS:
		s += ";medianat=ice;mediaenc=dtls_srtp"
	}
	return s
}

// configLines are the config lines the call options add (modules first
// loaded by "module", so they are there before the account is read).
func (c baresipCallOpts) configLines() string {
	var s string
	if strings.EqualFold(c.codec, "opus") {
		s += "module opus.so\n"
	}
	if c.record {
		s += "module aubridge.so\nmodule sndfile.so\n"
	}
	switch c.media {
	case BaresipSDES:
		s += "module srtp.so\n"
	case BaresipDTLS:
		s += "module dtls_srtp.so\n"
	case BaresipICEDTLS:
		s += "module ice.so\nmodule dtls_srtp.so\nrtcp_mux yes\n"
	}
	return s
}

// URI is the address to dial this baresip at directly:
// sip:USER@127.0.0.1:SIPPort.
func (b *Baresip) URI() string {
	user, _, _ := strings.Cut(strings.TrimPrefix(b.AOR, "sip:"), "@")
	return fmt.Sprintf("sip:%s@127.0.0.1:%d", user, b.SIPPort)
}

// ok runs a ctrl_tcp command and turns a response with ok=false into an
// error.
func (b *Baresip) ok(cmd, params string) error {
	r, err := b.Do(cmd, params)
	if err != nil {
		return err
	}
	if r["ok"] != true {
		return fmt.Errorf("baresip %s %q: %v", cmd, params, r["data"])
	}
	return nil
}

// Dial calls uri (e.g. sip:bob@127.0.0.1:5062, or an AOR through the
// registrar). It returns once baresip has sent the INVITE; follow the call
// with NextEvent.
func (b *Baresip) Dial(uri string) error { return b.ok("dial", uri) }

// Hangup ends the current call (BYE, or CANCEL while it rings out).
func (b *Baresip) Hangup() error { return b.ok("hangup", "") }

// Accept answers the ringing incoming call (with BaresipManualAnswer).
func (b *Baresip) Accept() error { return b.ok("accept", "") }

// Reject declines the ringing incoming call: baresip 1.0.0 has no reject
// command, and its hangup of an unanswered incoming call sends
// 486 Busy Here.
func (b *Baresip) Reject() error { return b.ok("hangup", "") }

// NextEvent waits for the next ctrl_tcp event of type typ (CALL_INCOMING,
// CALL_RINGING, CALL_ESTABLISHED, CALL_CLOSED, ...) that no earlier
// NextEvent returned, so a test can follow several calls in a row. A
// CALL_CLOSED event's "param" is the reason (e.g. "Connection reset by
// user", "486 Busy Here"); EventParam reads it.
func (b *Baresip) NextEvent(typ string, timeout time.Duration) (map[string]any, error) {
	deadline := time.Now().Add(timeout)
	for {
		b.mu.Lock()
		if b.seen == nil {
			b.seen = map[string]int{}
		}
		for i := b.seen[typ]; i < len(b.events); i++ {
			if b.events[i]["type"] == typ {
				b.seen[typ] = i + 1
				e := b.events[i]
				b.mu.Unlock()
				return e, nil
			}
		}
		b.mu.Unlock()
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("baresip: no new %s event after %v; events: %v\n%s", typ, timeout, b.Events(), LogTail(b.Log, 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// EventParam is an event's "param" string ("" when absent).
func EventParam(e map[string]any) string { s, _ := e["param"].(string); return s }

// Recordings returns the WAVs of received audio so far (Dir/rec/*-dec.wav,
// one per call, oldest first; only with BaresipRecord or BaresipTone).
// sndfile writes the header's sizes when the call ends, and AnalyzeWAV
// copes with a file still being written.
func (b *Baresip) Recordings() []string {
	m, _ := filepath.Glob(filepath.Join(b.Dir, "rec", "*-dec.wav"))
	sort.Strings(m)
	return m
}

// Hold puts the current call on hold: a re-INVITE with a=sendonly
// (RFC 3264 §8.4).
func (b *Baresip) Hold() error { return b.ok("hold", "") }

// Resume takes the current call off hold (a re-INVITE with a=sendrecv).
func (b *Baresip) Resume() error { return b.ok("resume", "") }

// SendDTMF sends one digit on the current call as an RFC 4733
// telephone-event (menu's sndcode).
func (b *Baresip) SendDTMF(digit string) error { return b.ok("sndcode", digit) }
