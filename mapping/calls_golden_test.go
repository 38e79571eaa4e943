package mapping

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .golden files of testdata/calls")

// golden compares got with testdata/calls/name, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "calls", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func readJingle(t testing.TB, name string) Jingle {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "calls", name))
	if err != nil {
		t.Fatal(err)
	}
	var j Jingle
	if err := xml.Unmarshal(b, &j); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return j
}

// TestGoldenJingleToSDP: the session-initiates of StanzaJS and of a
// Conversations-style client become the SDP offers in the .golden files,
// and those offers read back to the same Session.
func TestGoldenJingleToSDP(t *testing.T) {
	for _, name := range []string{"stanzajs-initiate", "conversations-initiate"} {
		t.Run(name, func(t *testing.T) {
			j := readJingle(t, name+".xml")
			s, err := JingleToSession(j)
			if err != nil {
				t.Fatal(err)
			}
			b, err := MarshalSDP(s)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".sdp.golden", b)
			back, err := ParseSDP(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normal(back), normal(s)) {
				t.Errorf("SDP round trip:\n got %+v\nwant %+v", back, s)
			}
		})
	}
}

// TestGoldenSDPToJingle: baresip's offers (plain RTP, SDES, ICE+DTLS)
// become the Jingle contents in the .golden files, and the contents
// translate back to the same media.
func TestGoldenSDPToJingle(t *testing.T) {
	for _, name := range []string{"baresip-plain", "baresip-sdes", "baresip-ice-dtls"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "calls", name+".sdp"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := ParseSDP(b)
			if err != nil {
				t.Fatal(err)
			}
			j := Jingle{Action: ActSessionInitiate, SID: "golden"}
			j.Contents, j.Group = SessionToJingle(s, RoleInitiator, RoleInitiator)
			out, err := xml.MarshalIndent(j, "", " ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".xml.golden", append(out, '\n'))

			var again Jingle
			if err := xml.Unmarshal(out, &again); err != nil {
				t.Fatal(err)
			}
			back, err := JingleToSession(again)
			if err != nil {
				t.Fatal(err)
			}
			if len(back.Media) != len(s.Media) {
				t.Fatalf("%d media back, want %d", len(back.Media), len(s.Media))
			}
			for i := range s.Media {
				w, g := s.Media[i], back.Media[i]
				if !reflect.DeepEqual(w.Codecs, g.Codecs) || w.Direction != g.Direction || w.RTCPMux != g.RTCPMux ||
					w.SSRC != g.SSRC || w.CNAME != g.CNAME || w.ICEUfrag != g.ICEUfrag || w.ICEPwd != g.ICEPwd ||
					!reflect.DeepEqual(w.Fingerprint, g.Fingerprint) || !reflect.DeepEqual(w.Crypto, g.Crypto) ||
					len(w.Candidates) != len(g.Candidates) {
					t.Errorf("media %d changed through Jingle:\n got %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}

// normal clears what an SDP cannot carry or writes differently, for round
// trip comparisons: Jingle candidate ids, and the empty-vs-nil slices.
func normal(s Session) Session {
	out := s
	out.Media = nil
	for _, m := range s.Media {
		m.Candidates = append([]Candidate(nil), m.Candidates...)
		for i := range m.Candidates {
			m.Candidates[i].ID = ""
		}
		if len(m.Candidates) == 0 {
			m.Candidates = nil
		}
		m.Fmt = nil
		out.Media = append(out.Media, m)
	}
	out.Origin = Origin{}
	return out
}

// TestStanzaJSShapes asserts the decoded StanzaJS session-initiate field by
// field: what the gateway relies on must not hide in a golden file.
func TestStanzaJSShapes(t *testing.T) {
	s, err := JingleToSession(readJingle(t, "stanzajs-initiate.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Media) != 1 || !reflect.DeepEqual(s.Bundle, []string{"0"}) {
		t.Fatalf("media %d bundle %v, want 1 and [0]", len(s.Media), s.Bundle)
	}
	m := s.Media[0]
	if m.Mid != "0" || m.Kind != "audio" || m.Profile != "UDP/TLS/RTP/SAVPF" || m.Direction != SendRecv ||
		!m.RTCPMux || !m.RTCPRsize || m.SSRC != 1321869397 || m.CNAME != "1ZagI2ibfZaQhIBg" ||
		m.ICEUfrag != "K002" || m.ICEPwd != "xfsB1szefPItdRRoMDrmk/VY" || m.Port != 9 || m.Addr != "0.0.0.0" {
		t.Errorf("media %+v", m)
	}
	if fp := m.Fingerprint; fp == nil || fp.Hash != "sha-256" || fp.Setup != "actpass" || !strings.HasPrefix(fp.Value, "E9:A5:") {
		t.Errorf("fingerprint %+v", fp)
	}
	if len(m.Codecs) != 8 {
		t.Fatalf("%d codecs, want 8", len(m.Codecs))
	}
	opus := m.Codecs[0]
	if opus.PT != 111 || opus.Name != "opus" || opus.Clock != 48000 || opus.Channels != 2 ||
		opus.Fmtp != "minptime=10;useinbandfec=1" || !reflect.DeepEqual(opus.FB, []RTCPFB{{Type: "transport-cc"}}) {
		t.Errorf("opus %+v", opus)
	}
	if red := m.Codecs[1]; red.Fmtp != "111/111" {
		t.Errorf("red fmtp %q, want 111/111", red.Fmtp)
	}
	if len(m.HdrExts) != 4 || m.HdrExts[0] != (HdrExt{ID: 1, URI: "urn:ietf:params:rtp-hdrext:ssrc-audio-level"}) {
		t.Errorf("hdrexts %+v", m.HdrExts)
	}
}

func TestBaresipICEDTLSInheritance(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "calls", "baresip-ice-dtls.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSDP(b)
	if err != nil {
		t.Fatal(err)
	}
	m := s.Media[0]
	want := Fingerprint{Hash: "sha-256", Setup: "actpass",
		Value: "EE:18:3C:AF:0B:62:9D:11:45:E6:7A:2B:90:DC:31:8F:56:04:C7:A9:13:E2:5B:6D:80:F4:29:1A:B3:7E:F5:5E"}
	if m.Fingerprint == nil || *m.Fingerprint != want {
		t.Errorf("fingerprint %+v, want %+v (from session level)", m.Fingerprint, want)
	}
	if m.ICEUfrag != "npBzyJ1" || m.ICEPwd != "72Fw6HXyAsO7fikD1le0eoacLStG1Vx" {
		t.Errorf("ice %q/%q, want the session-level ones", m.ICEUfrag, m.ICEPwd)
	}
	if m.Addr != "198.18.0.1" || m.Port != 17100 || m.Mid != "" || m.EndOfCandidates {
		t.Errorf("addr %s:%d mid %q eoc %v", m.Addr, m.Port, m.Mid, m.EndOfCandidates)
	}
	wantC := Candidate{Foundation: "c6120001", Component: 1, Protocol: "udp", Priority: 2113929471, IP: "198.18.0.1", Port: 17100, Type: "host"}
	if len(m.Candidates) != 1 || m.Candidates[0] != wantC {
		t.Errorf("candidates %+v", m.Candidates)
	}
	if s.Origin != (Origin{User: "-", ID: 3082768976, Version: 722794824, Addr: "127.0.0.1"}) {
		t.Errorf("origin %+v", s.Origin)
	}
	if c := m.Codecs; len(c) != 3 || c[0].Fmtp != "stereo=1;sprop-stereo=1" || c[0].Ptime != 20 || c[1].Name != "PCMU" || c[2].Fmtp != "0-15" {
		t.Errorf("codecs %+v", c)
	}
	// baresip has no a=mid: the Jingle content is named by position,
	// as WebRTC names it.
	cs, g := SessionToJingle(s, RoleResponder, RoleResponder)
	if len(cs) != 1 || cs[0].Name != "0" || cs[0].Creator != "responder" || g != nil {
		t.Errorf("contents %+v group %+v", cs, g)
	}
}
