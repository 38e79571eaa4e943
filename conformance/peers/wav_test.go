package peers

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestToneWAVRoundTrip(t *testing.T) {
	for _, c := range []struct {
		hz             float64
		rate, channels int
	}{{440, 8000, 1}, {1000, 8000, 1}, {600, 48000, 2}} {
		p := filepath.Join(t.TempDir(), "t.wav")
		if err := WriteToneWAV(p, c.hz, c.rate, c.channels, 2); err != nil {
			t.Fatal(err)
		}
		s, err := AnalyzeWAV(p)
		if err != nil {
			t.Fatal(err)
		}
		if s.SampleRate != c.rate || s.Channels != c.channels || s.Duration != 2*time.Second {
			t.Errorf("%v: format %s", c, s)
		}
		if s.RMS < 0.35 || s.RMS > 0.36 {
			t.Errorf("%v: RMS %.4f, want 0.354", c, s.RMS)
		}
		if err := s.CheckTone(c.hz); err != nil {
			t.Errorf("%v: %v", c, err)
		}
		if err := s.CheckTone(c.hz * 1.2); err == nil {
			t.Errorf("%v: CheckTone(%v) accepted %s", c, c.hz*1.2, s)
		}
	}
}

// A recording still being written by libsndfile has data size 0 and
// silence before the call is answered: both must not hide the tone.
func TestAnalyzeWAVUnfinishedWithSilence(t *testing.T) {
	p := filepath.Join(t.TempDir(), "t.wav")
	if err := WriteToneWAV(p, 800, 8000, 1, 2); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	silence := make([]byte, 16000) // 1 s
	b = append(append(append([]byte{}, b[:44]...), silence...), b[44:]...)
	binary.LittleEndian.PutUint32(b[4:], 0)
	binary.LittleEndian.PutUint32(b[40:], 0)
	s, err := analyzeWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.Duration != 3*time.Second || s.Active != 2*time.Second {
		t.Errorf("got %s, want 3 s with 2 s active", s)
	}
	if err := s.CheckTone(800); err != nil {
		t.Error(err)
	}
}

func TestCheckToneSilence(t *testing.T) {
	b := append(wavHeader(8000, 1, 16000), make([]byte, 16000)...)
	s, err := analyzeWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckTone(440); err == nil || !strings.Contains(err.Error(), "no tone") {
		t.Errorf("silence: CheckTone = %v", err)
	}
}

func TestParseWAVErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":   nil,
		"not wav": []byte("RIFF\x00\x00\x00\x00AVI LIST"),
		"no fmt":  append([]byte("RIFF\x00\x00\x00\x00WAVEdata\x02\x00\x00\x00"), 0, 0),
		"8-bit": func() []byte {
			h := wavHeader(8000, 1, 0)
			h[34] = 8
			return h
		}(),
	} {
		if _, err := analyzeWAV(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// FuzzAnalyzeWAV: recordings come from a peer; no input may panic, and a
// parsed file has a sane format.
func FuzzAnalyzeWAV(f *testing.F) {
	f.Add(append(wavHeader(8000, 1, 8), 1, 2, 3, 4, 5, 6, 7, 8))
	f.Add(wavHeader(48000, 2, 0))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := analyzeWAV(b)
		if err == nil && (s.SampleRate < 1 || s.Channels < 1 || s.RMS < 0 || s.RMS > 1.01) {
			t.Fatalf("bad stats %s", s)
		}
	})
}
