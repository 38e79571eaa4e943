package media

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"stox.dev/stox/mapping"
)

// sdesPhone is a SIP phone speaking SDES-SRTP (RFC 4568) on a UDP socket:
// it encrypts with its own key and decrypts with the key of stox's answer.
type sdesPhone struct {
	conn   *net.UDPConn
	key    sdesKey
	line   mapping.Crypto
	tx     *srtp.Context
	seq    uint16
	mu     sync.Mutex
	rx     *srtp.Context
	got    map[uint8]int
	ssrcs  map[uint32]bool
	failed int // packets that did not decrypt
}

func newSDESPhone(t *testing.T, suite string, tag int) *sdesPhone {
	t.Helper()
	k, err := newSDESKey(sdesSuites[suite])
	if err != nil {
		t.Fatal(err)
	}
	tx, err := newTxContext(k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &sdesPhone{conn: c, key: k, tx: tx, seq: 2000, got: map[uint8]int{}, ssrcs: map[uint32]bool{},
		line: mapping.Crypto{Tag: tag, Suite: suite, KeyParams: k.keyParams()}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1600)
		var h rtp.Header
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.rx == nil {
				p.failed++
			} else if d, err := p.rx.DecryptRTP(nil, buf[:n], &h); err != nil {
				p.failed++
			} else if r, ok := parseRTP(d); ok {
				p.got[r.pt]++
				p.ssrcs[r.ssrc] = true
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return p
}

// offer is the phone's RTP/SAVP offer; extra lines go before its own.
func (p *sdesPhone) offer(extra ...mapping.Crypto) mapping.Media {
	return mapping.Media{Kind: "audio", Profile: "RTP/SAVP", Addr: "127.0.0.1", Port: p.conn.LocalAddr().(*net.UDPAddr).Port,
		Codecs: sipSet, Direction: mapping.SendRecv, Crypto: append(extra, p.line)}
}

// takeAnswer keys the phone's receive side with stox's a=crypto line.
func (p *sdesPhone) takeAnswer(t *testing.T, ans mapping.Media) {
	t.Helper()
	if len(ans.Crypto) != 1 {
		t.Fatalf("answer has %d a=crypto lines, want 1", len(ans.Crypto))
	}
	k, err := parseCrypto(ans.Crypto[0])
	if err != nil {
		t.Fatalf("stox's a=crypto line: %v", err)
	}
	rx, err := newRxContext(k)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.rx = rx
	p.mu.Unlock()
}

func (p *sdesPhone) packet(t *testing.T, pt uint8) []byte {
	t.Helper()
	p.seq++
	b, err := p.tx.EncryptRTP(nil, mkRTP(pt, p.seq, 0x5678), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *sdesPhone) send(t *testing.T, to mapping.Media, b []byte) {
	t.Helper()
	if _, err := p.conn.WriteToUDP(b, &net.UDPAddr{IP: net.ParseIP(to.Addr), Port: to.Port}); err != nil {
		t.Fatal(err)
	}
}

func (p *sdesPhone) counts() (map[uint8]int, map[uint32]bool, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, s := map[uint8]int{}, map[uint32]bool{}
	for k, v := range p.got {
		g[k] = v
	}
	for k := range p.ssrcs {
		s[k] = true
	}
	return g, s, p.failed
}

// TestSDESAnswer: a phone offers RTP/SAVP (S→X); stox answers RTP/SAVP
// with the chosen line's tag and its own key, and audio and DTMF cross
// both ways, encrypted on the SIP leg.
func TestSDESAnswer(t *testing.T) {
	for _, suite := range []string{"AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM"} {
		t.Run(suite, func(t *testing.T) {
			e := newEngine(t, Config{})
			c, b := answeredCall(t, e, nil)
			ph := newSDESPhone(t, suite, 2)
			// A suite stox does not take comes first: the first usable
			// line is chosen (RFC 4568 §7.1.2).
			offer := ph.offer(mapping.Crypto{Tag: 1, Suite: "F8_128_HMAC_SHA1_80", KeyParams: "inline:" + strings.Repeat("A", 40)})
			local, err := c.AnswerRTP(offer, sipSet)
			if err != nil {
				t.Fatal(err)
			}
			if local.Profile != "RTP/SAVP" || len(local.Crypto) != 1 || local.Crypto[0].Tag != 2 || local.Crypto[0].Suite != suite ||
				local.Crypto[0].SessionParams != "" {
				t.Fatalf("answer profile %q crypto %d lines", local.Profile, len(local.Crypto))
			}
			if local.Crypto[0].KeyParams == ph.line.KeyParams {
				t.Error("stox answered with the phone's own key (RFC 4568 §6.1: each side its own)")
			}
			if again, err := c.LocalRTP(sipSet); err != nil || again.Profile != "RTP/SAVP" || again.Crypto[0] != local.Crypto[0] {
				t.Errorf("LocalRTP after AnswerRTP: %q %v", again.Profile, err)
			}
			ph.takeAnswer(t, local)
			sdesExchange(t, b, ph, local)
			// Plain RTP, or SRTP with a wrong key, from the phone's address
			// is dropped: it does not authenticate.
			before := c.Stats().ToWebRTC
			ph.send(t, local, mkRTP(0, 9000, 0x5678))
			forged := ph.packet(t, 0)
			forged[len(forged)-1] ^= 1
			ph.send(t, local, forged)
			waitFor(t, "unauthenticated packets dropped", func() bool { return c.Stats().ToWebRTC.Dropped >= before.Dropped+2 })
			if s := c.Stats().ToWebRTC; s.Packets != before.Packets {
				t.Errorf("unauthenticated packets were relayed: %d → %d", before.Packets, s.Packets)
			}
		})
	}
}

// TestSDESOfferer: stox's own offer on the SIP leg stays RTP/AVP (X→S), so
// an RTP/SAVP answer to it is refused (RFC 3264 §6.1), as is an SAVP offer
// after stox described plain RTP.
func TestSDESOfferer(t *testing.T) {
	e := newEngine(t, Config{})
	c, err := e.Open("offerer")
	if err != nil {
		t.Fatal(err)
	}
	local, err := c.LocalRTP(sipSet)
	if err != nil {
		t.Fatal(err)
	}
	if local.Profile != "RTP/AVP" || len(local.Crypto) != 0 {
		t.Errorf("stox's offer: %q with %d a=crypto", local.Profile, len(local.Crypto))
	}
	ph := newSDESPhone(t, "AES_CM_128_HMAC_SHA1_80", 1)
	if err := c.SetRemoteRTP(ph.offer()); !errors.Is(err, ErrProfile) {
		t.Errorf("SAVP answer to an AVP offer: %v", err)
	}
	// SetRemoteRTP before LocalRTP takes SDES: LocalRTP then describes it.
	c2, err := e.Open("setremote-first")
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.SetRemoteRTP(ph.offer()); err != nil {
		t.Fatal(err)
	}
	l2, err := c2.LocalRTP(sipSet)
	if err != nil || l2.Profile != "RTP/SAVP" || len(l2.Crypto) != 1 || l2.Crypto[0].Tag != 1 {
		t.Errorf("LocalRTP after an SDES remote: %q %d lines, %v", l2.Profile, len(l2.Crypto), err)
	}
	// A plain answer from AnswerRTP keeps the offer's profile.
	c3, err := e.Open("avpf")
	if err != nil {
		t.Fatal(err)
	}
	avpf := newPhone(t).media()
	avpf.Profile = "RTP/AVPF"
	if l3, err := c3.AnswerRTP(avpf, sipSet); err != nil || l3.Profile != "RTP/AVPF" || len(l3.Crypto) != 0 {
		t.Errorf("AnswerRTP to RTP/AVPF: %q, %v", l3.Profile, err)
	}
}

// TestSDESRefused: offers stox cannot key are refused with ErrProfile and
// the key never shows in the error.
func TestSDESRefused(t *testing.T) {
	e := newEngine(t, Config{})
	c, err := e.Open("refused")
	if err != nil {
		t.Fatal(err)
	}
	key := "inline:c3RveC10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGUh" // 30 bytes
	base := newPhone(t).media()
	base.Profile = "RTP/SAVP"
	cases := map[string][]mapping.Crypto{
		"no line":        nil,
		"unknown suite":  {{Tag: 1, Suite: "AES_192_CM_HMAC_SHA1_80", KeyParams: key}},
		"MKI":            {{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", KeyParams: key + "|2^20|1:4"}},
		"session params": {{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", KeyParams: key, SessionParams: "UNENCRYPTED_SRTP"}},
		"short key":      {{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", KeyParams: key[:30]}},
		"GCM key size":   {{Tag: 1, Suite: "AEAD_AES_128_GCM", KeyParams: key}},
		"two keys":       {{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", KeyParams: key + ";" + key}},
		"not inline":     {{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", KeyParams: "uri:" + key[7:]}},
	}
	for name, lines := range cases {
		m := base
		m.Crypto = lines
		_, err := c.AnswerRTP(m, sipSet)
		if !errors.Is(err, ErrProfile) {
			t.Errorf("%s: %v, want ErrProfile", name, err)
		} else if strings.Contains(err.Error(), key[7:20]) {
			t.Errorf("%s: the error shows the key: %v", name, err)
		}
	}
	// A lifetime is allowed.
	m := base
	m.Crypto = []mapping.Crypto{{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", KeyParams: key + "|2^31"}}
	if _, err := c.AnswerRTP(m, sipSet); err != nil {
		t.Errorf("lifetime: %v", err)
	}
	// DTLS-SRTP on the SIP leg is not spoken.
	m.Profile = "RTP/SAVPF"
	m.Fingerprint = &mapping.Fingerprint{Hash: "sha-256", Value: "AA", Setup: "actpass"}
	if _, err := c.AnswerRTP(m, sipSet); !errors.Is(err, ErrProfile) {
		t.Errorf("SAVPF with a fingerprint: %v", err)
	}
}

// TestSDESReinvite: a re-offer with the same tag and suite keeps stox's key
// (its SRTP stream goes on); another suite gets a fresh key.
func TestSDESReinvite(t *testing.T) {
	e := newEngine(t, Config{})
	c, err := e.Open("reinvite")
	if err != nil {
		t.Fatal(err)
	}
	ph := newSDESPhone(t, "AES_CM_128_HMAC_SHA1_80", 1)
	a1, err := c.AnswerRTP(ph.offer(), sipSet)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := c.AnswerRTP(ph.offer(), sipSet)
	if err != nil {
		t.Fatal(err)
	}
	if a1.Crypto[0] != a2.Crypto[0] {
		t.Error("stox changed its key on a re-offer with the same tag and suite")
	}
	ph32 := newSDESPhone(t, "AES_CM_128_HMAC_SHA1_32", 1)
	a3, err := c.AnswerRTP(ph32.offer(), sipSet)
	if err != nil {
		t.Fatal(err)
	}
	if a3.Crypto[0].KeyParams == a1.Crypto[0].KeyParams || a3.Crypto[0].Suite != "AES_CM_128_HMAC_SHA1_32" {
		t.Error("stox kept its key across a suite change")
	}
	// Back to plain RTP.
	a4, err := c.AnswerRTP(newPhone(t).media(), sipSet)
	if err != nil || a4.Profile != "RTP/AVP" || len(a4.Crypto) != 0 || c.sdes.Load() != nil {
		t.Errorf("plain re-offer: %q %d lines, %v", a4.Profile, len(a4.Crypto), err)
	}
}

// TestSDESLatch: with latching, only a packet that authenticates may move
// the SIP leg to a new source.
func TestSDESLatch(t *testing.T) {
	c, fw, peer := packetPath(t, Config{Latch: true})
	ph := newSDESPhone(t, "AES_CM_128_HMAC_SHA1_80", 1)
	offer := ph.offer()
	offer.Port = int(peer.Port())
	if _, err := c.AnswerRTP(offer, sipSet); err != nil {
		t.Fatal(err)
	}
	var sm seqMap
	var h rtp.Header
	nat := netip.MustParseAddrPort("127.0.0.1:40002")
	c.fromSIP(mkRTP(0, 1, 1), netip.MustParseAddrPort("127.0.0.1:40003"), &sm, &h)
	if fw.n != 0 || c.latched.Load() {
		t.Fatalf("a plain packet latched: relayed %d, latched %v", fw.n, c.latched.Load())
	}
	c.fromSIP(ph.packet(t, 0), nat, &sm, &h)
	if fw.n != 1 || c.remote.Load().addr != nat || fw.last.PayloadType != 0 {
		t.Errorf("an authenticated packet: relayed %d, remote %v", fw.n, c.remote.Load().addr)
	}
}

// sdesExchange sends PCMU and DTMF each way between the SDES phone and the
// browser and checks what arrives.
func sdesExchange(t *testing.T, b *browser, ph *sdesPhone, local mapping.Media) {
	t.Helper()
	select {
	case <-b.connected:
	case <-time.After(10 * time.Second):
		t.Fatal("browser never connected")
	}
	waitFor(t, "browser track bound", func() bool { return b.track.w.Load() != nil })
	for i := 0; i < 20; i++ {
		ph.send(t, local, ph.packet(t, 0))
		if i%4 == 0 {
			ph.send(t, local, ph.packet(t, 101))
		}
		b.track.send(t, 0)
		if i%4 == 0 {
			b.track.send(t, 126)
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitFor(t, "packets in the browser", func() bool { g, _ := b.counts(); return g[0] >= 15 && g[126] >= 3 })
	waitFor(t, "packets in the phone", func() bool { g, _, _ := ph.counts(); return g[0] >= 15 && g[101] >= 3 })
	g, ss, failed := ph.counts()
	if len(g) != 2 || len(ss) != 1 || !ss[local.SSRC] || failed != 0 {
		t.Errorf("phone got PTs %v SSRCs %v, %d undecryptable; want 0 and 101 on stox's SSRC %d", g, ss, failed, local.SSRC)
	}
}

// TestSDESOffer: with Config.OfferSDES, stox's own offer (X→S) is RTP/SAVP
// with one AES_CM_128_HMAC_SHA1_80 line, tag 1; the phone's answer on that
// tag keys the leg, and audio crosses both ways.
func TestSDESOffer(t *testing.T) {
	e := newEngine(t, Config{OfferSDES: true})
	c, b := answeredCall(t, e, nil)
	local, err := c.LocalRTP(sipSet)
	if err != nil {
		t.Fatal(err)
	}
	if local.Profile != "RTP/SAVP" || len(local.Crypto) != 1 || local.Crypto[0].Tag != 1 || local.Crypto[0].Suite != offerSuite {
		t.Fatalf("stox's offer: %q with %d a=crypto lines", local.Profile, len(local.Crypto))
	}
	ph := newSDESPhone(t, offerSuite, 1)
	ph.takeAnswer(t, local)
	wrongTag := ph.offer()
	wrongTag.Crypto[0].Tag = 7
	if err := c.SetRemoteRTP(wrongTag); !errors.Is(err, ErrProfile) {
		t.Errorf("answer on a tag stox did not offer: %v", err)
	}
	plain := ph.offer()
	plain.Profile, plain.Crypto = "RTP/AVP", nil
	if err := c.SetRemoteRTP(plain); !errors.Is(err, ErrProfile) {
		t.Errorf("RTP/AVP answer to an RTP/SAVP offer: %v", err)
	}
	if err := c.SetRemoteRTP(ph.offer()); err != nil {
		t.Fatal(err)
	}
	sdesExchange(t, b, ph, local)
}

func TestCheckRTP(t *testing.T) {
	key := "inline:" + strings.Repeat("A", 40)
	for _, c := range []struct {
		name string
		m    mapping.Media
		ok   bool
	}{
		{"avp", mapping.Media{Profile: "RTP/AVP", Addr: "127.0.0.1", Port: 4000}, true},
		{"sdes", mapping.Media{Profile: "RTP/SAVP", Addr: "127.0.0.1", Port: 4000,
			Crypto: []mapping.Crypto{{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", KeyParams: key}}}, true},
		{"sdes unknown suite", mapping.Media{Profile: "RTP/SAVP", Addr: "127.0.0.1", Port: 4000,
			Crypto: []mapping.Crypto{{Tag: 1, Suite: "F8_128_HMAC_SHA1_80", KeyParams: key}}}, false},
		{"sdes no crypto", mapping.Media{Profile: "RTP/SAVP", Addr: "127.0.0.1", Port: 4000}, false},
		{"dtls", mapping.Media{Profile: "UDP/TLS/RTP/SAVPF", Addr: "127.0.0.1", Port: 4000,
			Fingerprint: &mapping.Fingerprint{Hash: "sha-256", Value: "AA", Setup: "actpass"}}, false},
	} {
		err := CheckRTP(c.m)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrProfile) {
			t.Errorf("%s: %v, want ok=%v (errors wrap ErrProfile)", c.name, err, c.ok)
		}
		if err != nil && strings.Contains(err.Error(), strings.Repeat("A", 40)) {
			t.Errorf("%s: the error holds the key: %v", c.name, err)
		}
	}
}
