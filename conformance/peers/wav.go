package peers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"time"
)

// WAV files for call tests: WriteToneWAV makes the tone a peer sends,
// AnalyzeWAV measures what a peer received (level and frequency), so a
// test can tell that the far end's tone crossed the call.

// WriteToneWAV writes seconds of a sine of hz at amplitude 0.5 (RMS 0.354)
// as 16-bit PCM WAV with rate and channels (the same sample on every
// channel).
func WriteToneWAV(path string, hz float64, rate, channels, seconds int) error {
	if rate <= 0 || channels <= 0 || channels > 8 || seconds <= 0 {
		return fmt.Errorf("tone wav: bad format %d Hz × %d ch × %d s", rate, channels, seconds)
	}
	n := rate * seconds
	data := make([]byte, 2*n*channels)
	for i := 0; i < n; i++ {
		v := uint16(int16(math.Round(0.5 * 32767 * math.Sin(2*math.Pi*hz*float64(i)/float64(rate)))))
		for c := 0; c < channels; c++ {
			binary.LittleEndian.PutUint16(data[2*(i*channels+c):], v)
		}
	}
	return os.WriteFile(path, append(wavHeader(rate, channels, len(data)), data...), 0o644)
}

// wavHeader is the 44-byte RIFF/WAVE header of 16-bit PCM.
func wavHeader(rate, channels, dataLen int) []byte {
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+dataLen))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], uint16(channels))
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(rate*channels*2))
	binary.LittleEndian.PutUint16(h[32:], uint16(channels*2))
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(dataLen))
	return h
}

// WAVStats is what AnalyzeWAV measured on the first channel. Levels are
// relative to full scale (1.0).
type WAVStats struct {
	SampleRate int
	Channels   int
	Duration   time.Duration // whole file
	Active     time.Duration // 20 ms windows with RMS ≥ 0.02 (the rest is silence)
	RMS        float64       // over the active windows
	Peak       float64       // largest |sample|
	FreqHz     float64       // rising zero crossings per second over the active windows
}

// String is a one-line summary for test logs.
func (s WAVStats) String() string {
	return fmt.Sprintf("%d Hz × %d ch, %v (active %v), RMS %.3f, peak %.3f, %.1f Hz",
		s.SampleRate, s.Channels, s.Duration, s.Active, s.RMS, s.Peak, s.FreqHz)
}

// CheckTone reports whether the recording holds a tone of hz: at least
// 1 s of audio with RMS ≥ 0.1 and a frequency within ±5 % of hz. The
// tones the helpers send have RMS 0.354; G.711 and opus keep it within a
// few percent (docs/peers.md).
func (s WAVStats) CheckTone(hz float64) error {
	switch {
	case s.Active < time.Second:
		return fmt.Errorf("no tone: only %v of audio above silence (%s)", s.Active, s)
	case s.RMS < 0.1:
		return fmt.Errorf("tone too quiet: RMS %.3f < 0.1 (%s)", s.RMS, s)
	case math.Abs(s.FreqHz-hz) > 0.05*hz:
		return fmt.Errorf("tone at %.1f Hz, want %.0f Hz ± 5%% (%s)", s.FreqHz, hz, s)
	}
	return nil
}

// AnalyzeWAV reads a 16-bit PCM WAV file and measures its first channel.
func AnalyzeWAV(path string) (WAVStats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return WAVStats{}, err
	}
	s, err := analyzeWAV(b)
	if err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// parseWAV finds the format and the samples of a RIFF/WAVE file. It is
// lenient about sizes, because libsndfile (baresip's sndfile module) only
// writes the final RIFF and data sizes when it closes the file: a data
// chunk that claims more than the file holds is cut to what is there.
func parseWAV(b []byte) (rate, channels int, pcm []byte, err error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return 0, 0, nil, errors.New("not a RIFF/WAVE file")
	}
	fmtSeen := false
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int64(binary.LittleEndian.Uint32(b[off+4:]))
		body := b[off+8:]
		if size < int64(len(body)) {
			body = body[:size]
		}
		switch id {
		case "fmt ":
			if len(body) < 16 {
				return 0, 0, nil, errors.New("short fmt chunk")
			}
			format, bits := binary.LittleEndian.Uint16(body[0:]), binary.LittleEndian.Uint16(body[14:])
			channels, rate = int(binary.LittleEndian.Uint16(body[2:])), int(binary.LittleEndian.Uint32(body[4:]))
			// 0xFFFE is WAVE_FORMAT_EXTENSIBLE, which libsndfile may use.
			if (format != 1 && format != 0xFFFE) || bits != 16 {
				return 0, 0, nil, fmt.Errorf("format %d with %d bits: only 16-bit PCM is supported", format, bits)
			}
			if channels < 1 || rate < 1 {
				return 0, 0, nil, fmt.Errorf("bad format: %d channels at %d Hz", channels, rate)
			}
			fmtSeen = true
		case "data":
			if !fmtSeen {
				return 0, 0, nil, errors.New("data chunk before fmt chunk")
			}
			if size == 0 || size == 0xFFFFFFFF { // size not written yet
				body = b[off+8:]
			}
			return rate, channels, body, nil
		}
		off += 8 + int(size) + int(size&1) // chunks are word-aligned
		if size > int64(len(b)) {
			break
		}
	}
	return 0, 0, nil, errors.New("no data chunk")
}

func analyzeWAV(b []byte) (WAVStats, error) {
	rate, channels, pcm, err := parseWAV(b)
	if err != nil {
		return WAVStats{}, err
	}
	frame := 2 * channels
	n := len(pcm) / frame
	s := WAVStats{SampleRate: rate, Channels: channels,
		Duration: time.Duration(float64(n) / float64(rate) * float64(time.Second))}
	win := rate / 50 // 20 ms
	if win < 1 {
		win = 1
	}
	var sum2 float64
	var active, crossings int
	prev := 0.0
	for start := 0; start+win <= n; start += win {
		var w2 float64
		ups := 0
		for i := start; i < start+win; i++ {
			v := sample(pcm, i*frame)
			w2 += v * v
			s.Peak = math.Max(s.Peak, math.Abs(v))
			if prev < 0 && v >= 0 {
				ups++
			}
			prev = v
		}
		if math.Sqrt(w2/float64(win)) >= 0.02 {
			active += win
			sum2 += w2
			crossings += ups
		}
	}
	if active > 0 {
		s.Active = time.Duration(float64(active) / float64(rate) * float64(time.Second))
		s.RMS = math.Sqrt(sum2 / float64(active))
		s.FreqHz = float64(crossings) * float64(rate) / float64(active)
	}
	return s, nil
}

// sample is the 16-bit little-endian sample at byte offset off, scaled to
// [-1, 1).
func sample(pcm []byte, off int) float64 {
	return float64(int16(binary.LittleEndian.Uint16(pcm[off:]))) / 32768
}
