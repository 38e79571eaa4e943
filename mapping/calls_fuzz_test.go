package mapping

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func addCallSeeds(f *testing.F, ext string) {
	files, _ := filepath.Glob(filepath.Join("testdata", "calls", "*"+ext))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
}

// FuzzParseSDP: never panics; an SDP that parses marshals (or is refused
// with ErrSDP), and what stox writes reads back and writes the same again.
func FuzzParseSDP(f *testing.F) {
	addCallSeeds(f, ".sdp")
	addCallSeeds(f, ".sdp.golden")
	f.Add([]byte("v=0\nm=audio 0 RTP/AVP 0 foo\na=rtpmap:0 PCMU/8000/1\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSDP(b)
		if err != nil {
			if !errors.Is(err, ErrSDP) {
				t.Fatalf("error %v does not wrap ErrSDP", err)
			}
			return
		}
		out, err := MarshalSDP(s)
		if err != nil {
			if !errors.Is(err, ErrSDP) {
				t.Fatalf("marshal error %v does not wrap ErrSDP", err)
			}
			return
		}
		s2, err := ParseSDP(out)
		if err != nil {
			t.Fatalf("stox's own SDP does not parse: %v\n%s", err, out)
		}
		out2, err := MarshalSDP(s2)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("not stable:\n%s\n---\n%s", out, out2)
		}
	})
}

// FuzzJingleToSession: a decoded <jingle/> never makes the translators
// panic; errors wrap ErrJingle, and a session that translates writes an SDP
// that reads back with as many media.
func FuzzJingleToSession(f *testing.F) {
	addCallSeeds(f, ".xml")
	addCallSeeds(f, ".xml.golden")
	f.Fuzz(func(t *testing.T, b []byte) {
		var j Jingle
		if xml.Unmarshal(b, &j) != nil {
			return
		}
		if _, err := CandidatesFromTransportInfo(j); err != nil && !errors.Is(err, ErrJingle) {
			t.Fatalf("CandidatesFromTransportInfo error %v does not wrap ErrJingle", err)
		}
		s, err := JingleToSession(j)
		if err != nil {
			if !errors.Is(err, ErrJingle) {
				t.Fatalf("error %v does not wrap ErrJingle", err)
			}
			return
		}
		cs, _ := SessionToJingle(s, RoleInitiator, RoleResponder)
		if _, err := xml.Marshal(cs); err != nil {
			t.Fatalf("contents do not marshal: %v", err)
		}
		out, err := MarshalSDP(s)
		if err != nil {
			if !errors.Is(err, ErrSDP) {
				t.Fatalf("marshal error %v does not wrap ErrSDP", err)
			}
			return
		}
		back, err := ParseSDP(out)
		if err != nil || len(back.Media) != len(s.Media) {
			t.Fatalf("SDP from Jingle reads back %d media of %d: %v\n%s", len(back.Media), len(s.Media), err, out)
		}
	})
}

// FuzzParseReasonHeader: never panics; what parses has a token protocol,
// and what stox writes always parses back to its own cause.
func FuzzParseReasonHeader(f *testing.F) {
	for _, s := range []string{
		`Q.850;cause=16;text="Terminated"`, `SIP;cause=200;text="Call completed elsewhere"`,
		`SIP;text="a \"q\"; b, c";cause=487`, `Q.850;cause=16, SIP;cause=200`, "preemption", `Q.850;text="open`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		p, cause, _, err := ParseReasonHeader(v)
		if err != nil {
			if !errors.Is(err, ErrReason) {
				t.Fatalf("error %v does not wrap ErrReason", err)
			}
		} else if !sipToken(p) || cause < 0 || cause > 999 {
			t.Fatalf("ParseReasonHeader(%q) = %q, %d", v, p, cause)
		}
		h := ReasonHeaderForJingle("busy", v)
		if _, c, _, err := ParseReasonHeader(h); err != nil || c != 17 {
			t.Fatalf("own header %q reads as cause %d, %v", h, c, err)
		}
	})
}
