package media

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pion/rtp"
	"stox.dev/stox/mapping"
)

// FuzzParseRTP feeds the packet path's parser and rewriter with what
// arrives on the SIP leg's port: any datagram.
func FuzzParseRTP(f *testing.F) {
	f.Add(mkRTP(0, 1, 1))
	f.Add([]byte{0x90, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0, 1, 2})
	f.Add([]byte{0xa0, 0x65, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 2})
	f.Add([]byte{0x8f, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1})
	m := buildMap(refs(sipSet), refs(webSet))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := parseRTP(b)
		if !ok {
			return
		}
		if len(p.payload) > len(b)-12 || p.pt > 127 {
			t.Fatalf("payload %d of %d octets, PT %d", len(p.payload), len(b), p.pt)
		}
		var sm seqMap
		seq, ts, lost := sm.next(&p, m.clock[p.pt], 1)
		if seq != p.seq || ts != p.ts || lost != 0 {
			t.Fatalf("first packet rewritten to %d/%d lost %d", seq, ts, lost)
		}
		out := make([]byte, 12+len(p.payload))
		writeHeader(out, p.marker, p.pt, seq, ts, 7)
		copy(out[12:], p.payload)
		q, ok := parseRTP(out)
		if !ok || q.pt != p.pt || q.seq != seq || q.ssrc != 7 || !bytes.Equal(q.payload, p.payload) {
			t.Fatalf("rewritten packet does not parse back: %+v", q)
		}
	})
}

// FuzzParseWebRTC reads session descriptions as the WebRTC leg's
// description parser would.
func FuzzParseWebRTC(f *testing.F) {
	f.Add(webrtcSDP(fakeOffer()))
	o := fakeOffer()
	o.Candidates = []mapping.Candidate{{Foundation: "1", Component: 1, Protocol: "udp", Priority: 1, IP: "127.0.0.1", Port: 9, Type: "srflx", RelAddr: "10.0.0.1", RelPort: 5}}
	o.SSRC, o.HdrExts = 5, []mapping.HdrExt{{ID: 1, URI: "urn:ietf:params:rtp-hdrext:ssrc-audio-level"}}
	f.Add(webrtcSDP(o))
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0 x 300\r\na=rtpmap:0 PCMU\r\na=candidate:x\r\na=ssrc:zz\r\na=extmap:a/b c\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseWebRTC(s)
		if err != nil {
			return
		}
		for _, c := range m.Codecs {
			if c.PT > 127 || c.Name == "" {
				t.Fatalf("codec %+v", c)
			}
		}
	})
}

// FuzzCheckWebRTC: what checkWebRTC lets through cannot add an SDP line.
func FuzzCheckWebRTC(f *testing.F) {
	f.Add("abcd", "opus", "minptime=10", "0")
	f.Add("a\r\na=ice-lite", "PCMU", "", "audio")
	f.Fuzz(func(t *testing.T, ufrag, name, fmtp, mid string) {
		m := fakeOffer()
		m.ICEUfrag, m.Mid = ufrag, mid
		m.Codecs = []mapping.Codec{{PT: 96, Name: name, Clock: 48000, Fmtp: fmtp}}
		if checkWebRTC(m) != nil {
			return
		}
		want := strings.Count(webrtcSDP(fakeOfferOne(fmtp != "")), "\r\n")
		if got := strings.Count(webrtcSDP(m), "\r\n"); got != want || strings.Count(webrtcSDP(m), "\n") != want {
			t.Fatalf("%d lines, want %d:\n%s", got, want, webrtcSDP(m))
		}
	})
}

func fakeOfferOne(fmtp bool) mapping.Media {
	m := fakeOffer()
	m.Codecs = []mapping.Codec{{PT: 96, Name: "x", Clock: 48000}}
	if fmtp {
		m.Codecs[0].Fmtp = "y"
	}
	return m
}

// FuzzCandidateAttr: a candidate that arrives in Jingle (XEP-0176) becomes
// one well-formed candidate attribute, or is refused.
func FuzzCandidateAttr(f *testing.F) {
	f.Add("1", 1, "udp", uint32(2130706431), "127.0.0.1", 5000, "host", "", 0)
	f.Add("x y", 1, "UDP", uint32(1), "fe80::1", 1, "srflx", "10.0.0.1", 9)
	f.Add("1", 1, "udp", uint32(1), "foo.local", 1, "host", "", 0)
	f.Fuzz(func(t *testing.T, found string, comp int, proto string, prio uint32, ip string, port int, typ, raddr string, rport int) {
		c := mapping.Candidate{Foundation: found, Component: comp, Protocol: proto, Priority: prio, IP: ip, Port: port,
			Type: typ, RelAddr: raddr, RelPort: rport}
		s, ok := candidateAttr(c)
		if !ok {
			return
		}
		if strings.ContainsAny(s, "\r\n") {
			t.Fatalf("line break in %q", s)
		}
		back, ok := parseCandidate(s)
		if !ok || back.IP != ip || back.Port != port || back.Priority != prio {
			t.Fatalf("%q parses back as %+v", s, back)
		}
	})
}

// FuzzParseCrypto reads a=crypto lines as an SDES offer brings them (RFC
// 4568 §9.1); a line that parses must give a key and salt of the suite's
// size that write back to the same key parameters.
func FuzzParseCrypto(f *testing.F) {
	f.Add(1, "AES_CM_128_HMAC_SHA1_80", "inline:c3RveC10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGUh", "")
	f.Add(2, "AES_CM_128_HMAC_SHA1_32", "inline:c3RveC10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGUh|2^20|1:4", "")
	f.Add(3, "AEAD_AES_128_GCM", "inline:c3RveC10ZXN0LWtleS0wMTIzNDU2Nzg5YWI=", "KDR=1")
	f.Fuzz(func(t *testing.T, tag int, suite, keyParams, sessionParams string) {
		k, err := parseCrypto(mapping.Crypto{Tag: tag, Suite: suite, KeyParams: keyParams, SessionParams: sessionParams})
		if err != nil {
			if strings.Contains(err.Error(), keyParams) && len(keyParams) > 12 {
				t.Fatalf("the error shows the key parameters: %v", err)
			}
			return
		}
		kl, _ := k.profile.KeyLen()
		sl, _ := k.profile.SaltLen()
		if len(k.key) != kl || len(k.salt) != sl {
			t.Fatalf("key %d salt %d for %s", len(k.key), len(k.salt), suite)
		}
		back, err := parseCrypto(mapping.Crypto{Tag: tag, Suite: suite, KeyParams: k.keyParams()})
		if err != nil || !bytes.Equal(back.key, k.key) || !bytes.Equal(back.salt, k.salt) {
			t.Fatalf("written back: %v", err)
		}
	})
}

// FuzzSRTPFromSIP feeds the SIP leg's SRTP receive path with any datagram
// from the phone's address: it must drop or relay, never panic.
func FuzzSRTPFromSIP(f *testing.F) {
	k, err := parseCrypto(mapping.Crypto{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", KeyParams: "inline:c3RveC10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGUh"})
	if err != nil {
		f.Fatal(err)
	}
	tx, err := newTxContext(k)
	if err != nil {
		f.Fatal(err)
	}
	good, err := tx.EncryptRTP(nil, mkRTP(0, 1, 1), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(mkRTP(0, 2, 1))
	f.Add([]byte{0x90, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0, 1, 2})
	c, fw, peer := packetPath(f, Config{})
	rx, err := newRxContext(k)
	if err != nil {
		f.Fatal(err)
	}
	c.sdes.Store(&sdesLeg{rx: rx, rxBuf: make([]byte, 1500)})
	var sm seqMap
	var h rtp.Header
	f.Fuzz(func(t *testing.T, b []byte) {
		n := fw.n
		c.fromSIP(b, peer, &sm, &h)
		if fw.n > n+1 {
			t.Fatalf("one datagram relayed %d times", fw.n-n)
		}
	})
}
