package media

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
	"stox.dev/stox/mapping"
)

// Stats are a call's counters.
type Stats struct {
	Started  time.Time // when both legs were set up and relaying began; zero before
	ToWebRTC DirStats
	ToSIP    DirStats
}

// DirStats counts one direction of the relay.
type DirStats struct {
	Packets, Bytes uint64 // relayed (bytes of RTP payload and header as received)
	Dropped        uint64
	Lost           uint64 // gaps in the input sequence numbers
}

type dirCounters struct {
	packets, bytes, dropped, lost atomic.Uint64
}

func (d *dirCounters) load() DirStats {
	return DirStats{Packets: d.packets.Load(), Bytes: d.bytes.Load(), Dropped: d.dropped.Load(), Lost: d.lost.Load()}
}

// sipRemote is where the SIP side receives (its c=/m=, or the latched source).
type sipRemote struct {
	addr netip.AddrPort
	send bool // false when the SIP side does not receive (sendonly, inactive, c=0.0.0.0)
}

// binding is pion's writer for stox's track on the WebRTC leg.
type binding struct {
	w    webrtc.TrackLocalWriter
	ssrc uint32
}

// Call is the relay of one call.
type Call struct {
	e          *Engine
	id         string
	log        *zap.Logger
	met        Metrics
	rtp, rtcp  *net.UDPConn // SIP leg in RTP or SDES-SRTP
	xl         pcLeg        // the WebRTC leg toward XMPP
	ports      [3]int
	sipSSRC    uint32
	cname      string
	epoch      time.Time
	inactivity time.Duration

	// Read on the packet path.
	remote  atomic.Pointer[sipRemote]
	latched atomic.Bool
	// The SIP leg when the phone speaks ICE and DTLS-SRTP: then rtp and
	// rtcp carry nothing (docs/media.md "WebRTC-capable phones").
	sl      atomic.Pointer[pcLeg]
	toWeb   atomic.Pointer[ptMap] // SIP leg PT → WebRTC leg PT
	toSIP   atomic.Pointer[ptMap] // WebRTC leg PT → SIP leg PT
	last    atomic.Int64          // time of the last relayed packet, ns since epoch
	stats   [2]dirCounters
	started atomic.Int64            // unix ns; 0 before
	sdes    atomic.Pointer[sdesLeg] // SDES-SRTP on the SIP leg; nil for plain RTP

	toSIPMu    sync.Mutex // the WebRTC readers' turn on the SIP leg
	toSIPSeq   seqMap
	fromSIPMu  sync.Mutex // the readers of a WebRTC SIP leg's tracks
	fromSIPSeq seqMap

	mu         sync.Mutex
	stopping   bool
	offered    bool // stox made the WebRTC offer and waits for the answer
	sipOffered bool // stox made a WebRTC offer on the SIP leg and waits for the answer
	webReady   bool // the WebRTC leg has both descriptions
	sipReady   bool
	pending    []mapping.Candidate
	sipLocal   []mapping.Codec
	sipPeer    []mapping.Codec
	// The SIP leg as stox describes it: the profile LocalRTP writes
	// (RTP/AVP when empty), stox's a=crypto line and the key behind it
	// when SDES-SRTP is on, whether a description was handed out.
	sipProfile   string
	sipCrypto    *mapping.Crypto
	sipTxKey     sdesKey
	sipTx        *srtp.Context
	sipDescribed bool
	webIn        []mapping.Codec // PTs the WebRTC side sends to stox with
	webOut       []mapping.Codec // PTs stox sends to the WebRTC side with
	timer        *time.Timer

	wg       sync.WaitGroup
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	errMu    sync.Mutex
	err      error
}

func newCall(e *Engine, id string, rtpc, rtcpc, web *net.UDPConn) *Call {
	var b [12]byte
	_, _ = rand.Read(b[:])
	c := &Call{
		e: e, id: id, log: e.log.With(zap.String("call", id)), met: e.met,
		rtp: rtpc, rtcp: rtcpc, xl: pcLeg{conn: web, port: e.port(web)},
		ports:      [3]int{e.port(rtpc), e.port(rtcpc), e.port(web)},
		sipSSRC:    binary.BigEndian.Uint32(b[:4]),
		cname:      hex.EncodeToString(b[4:]),
		epoch:      time.Now(),
		inactivity: e.cfg.Inactivity,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	c.wg.Add(2)
	go c.readSIP()
	go c.drainRTCP()
	go c.supervise()
	return c
}

// Done is closed when the relay has ended and its ports are free.
func (c *Call) Done() <-chan struct{} { return c.done }

// Err says why the relay ended: ErrInactive, ErrICEFailed, ErrDTLSFailed
// (also when the peer closed DTLS), ErrClosed after Close; nil while it runs.
func (c *Call) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Close ends the relay and waits until its ports are free.
func (c *Call) Close() error {
	c.fail(ErrClosed)
	<-c.done
	return nil
}

// Stats returns the call's counters.
func (c *Call) Stats() Stats {
	s := Stats{ToWebRTC: c.stats[ToWebRTC].load(), ToSIP: c.stats[ToSIP].load()}
	if ns := c.started.Load(); ns != 0 {
		s.Started = time.Unix(0, ns)
	}
	return s
}

// fail ends the call with err, once; the first reason wins.
func (c *Call) fail(err error) {
	c.stopOnce.Do(func() {
		c.errMu.Lock()
		c.err = err
		c.errMu.Unlock()
		close(c.stop)
	})
}

// supervise tears the call down once it is stopped. It runs on its own
// goroutine so that fail may be called from pion's callbacks and from the
// readers, which teardown waits for.
func (c *Call) supervise() {
	<-c.stop
	c.mu.Lock()
	c.stopping = true
	timer := c.timer
	c.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	// No one sets up a leg once stopping is set.
	c.xl.close()
	ports := c.ports[:]
	if l := c.sl.Load(); l != nil {
		l.close()
		ports = append(ports, l.port)
	}
	_ = c.rtp.Close()
	_ = c.rtcp.Close()
	c.wg.Wait()
	c.e.release(c, ports...)
	err := c.Err()
	c.met.CallEnded(err)
	if !errors.Is(err, ErrClosed) {
		c.log.Info("media relay ended", zap.Error(err), zap.Any("stats", c.Stats()))
	}
	close(c.done)
}

// LocalRTP describes the SIP leg: RTP/AVP on the advertised address, an even
// port with RTCP on the next (RFC 3550 §11), the given codecs with their PTs:
// the SIP side sends to stox with these. After an SDES-SRTP remote
// (SetRemoteRTP or AnswerRTP) it is RTP/SAVP (or RTP/SAVPF, as the remote
// said) with stox's a=crypto line. With Config.OfferWebRTC it is instead
// stox's ICE + DTLS-SRTP offer on a leg of its own (sipwebrtc.go).
func (c *Call) LocalRTP(codecs []mapping.Codec) (mapping.Media, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return mapping.Media{}, ErrClosed
	}
	if len(codecs) == 0 {
		return mapping.Media{}, fmt.Errorf("local RTP: %w: no codec", ErrProfile)
	}
	if c.e.cfg.OfferWebRTC && !c.sipReady {
		m, err := c.offerSIPWebRTCLocked(codecs)
		if err != nil {
			return mapping.Media{}, fmt.Errorf("local RTP: %w", err)
		}
		return m, nil
	}
	if c.e.cfg.OfferSDES && !c.sipReady && c.sipCrypto == nil {
		// stox offers: one line, tag 1, the suite every SDES phone has
		// (RFC 4568 §6.2.1).
		k, err := newSDESKey(sdesSuites[offerSuite])
		if err != nil {
			return mapping.Media{}, fmt.Errorf("local RTP: SRTP key: %w", err)
		}
		tx, err := newTxContext(k)
		if err != nil {
			return mapping.Media{}, fmt.Errorf("local RTP: SRTP context: %w", err)
		}
		c.sipTxKey, c.sipTx, c.sipProfile = k, tx, "RTP/SAVP"
		c.sipCrypto = &mapping.Crypto{Tag: 1, Suite: offerSuite, KeyParams: k.keyParams()}
	}
	return c.localRTPLocked(codecs), nil
}

// offerSuite is the crypto suite of stox's SDES offer (Config.OfferSDES).
const offerSuite = "AES_CM_128_HMAC_SHA1_80"

func (c *Call) localRTPLocked(codecs []mapping.Codec) mapping.Media {
	c.sipLocal = append([]mapping.Codec(nil), codecs...)
	c.sipDescribed = true
	c.updateMapsLocked()
	m := mapping.Media{
		Kind: "audio", Profile: "RTP/AVP", Addr: c.e.adv.String(), Port: c.ports[0],
		Codecs: append([]mapping.Codec(nil), codecs...), Direction: mapping.SendRecv,
		SSRC: c.sipSSRC, CNAME: c.cname,
	}
	if c.sipProfile != "" {
		m.Profile = c.sipProfile
	}
	if c.sipCrypto != nil {
		m.Crypto = []mapping.Crypto{*c.sipCrypto}
	}
	return m
}

// SetRemoteRTP says where the SIP side receives and with which PTs (its
// SDP, RFC 3264 §5.1: stox sends it each codec with the PT it listed).
// An SDES-SRTP remote (RTP/SAVP with a=crypto, RFC 4568) is accepted only
// before LocalRTP described plain RTP: an RTP/AVP offer cannot be answered
// with RTP/SAVP (RFC 3264 §6.1), nor the reverse; AnswerRTP does both
// steps in the right order.
func (c *Call) SetRemoteRTP(remote mapping.Media) error {
	if isWebRTC(remote) {
		if err := checkSIPWebRTC(remote); err != nil {
			return fmt.Errorf("remote RTP: %w", err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.stopping {
			return ErrClosed
		}
		if err := c.setSIPWebRTCAnswerLocked(remote); err != nil {
			return fmt.Errorf("remote RTP: %w", err)
		}
		return nil
	}
	r, err := checkRemoteRTP(remote)
	if err != nil {
		return fmt.Errorf("remote RTP: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return ErrClosed
	}
	if c.sl.Load() != nil {
		return fmt.Errorf("remote RTP: %w: %s remote, but stox offered ICE and DTLS-SRTP (RFC 3264 §6.1)", ErrProfile, remote.Profile)
	}
	if err := c.setRemoteLocked(remote, r, false); err != nil {
		return fmt.Errorf("remote RTP: %w", err)
	}
	return nil
}

// AnswerRTP answers the SIP side's offer in one step: it takes the remote
// as SetRemoteRTP does and describes stox's side as LocalRTP does, with
// the offer's profile (RFC 3264 §6.1). For an SDES offer it picks the
// first a=crypto line with a supported suite and answers with the same tag
// and a fresh key of stox (RFC 4568 §6.1, §7.1.2); ErrProfile when none is
// usable. A WebRTC-capable phone's offer (ICE, DTLS-SRTP, rtcp-mux) is
// answered ICE-lite with setup=active on a leg of its own (sipwebrtc.go).
func (c *Call) AnswerRTP(remote mapping.Media, codecs []mapping.Codec) (mapping.Media, error) {
	if len(codecs) == 0 {
		return mapping.Media{}, fmt.Errorf("answer RTP: %w: no codec", ErrProfile)
	}
	if isWebRTC(remote) {
		if err := checkSIPWebRTC(remote); err != nil {
			return mapping.Media{}, fmt.Errorf("answer RTP: %w", err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		m, err := c.answerSIPWebRTCLocked(remote, codecs)
		if err != nil {
			return mapping.Media{}, fmt.Errorf("answer RTP: %w", err)
		}
		return m, nil
	}
	r, err := checkRemoteRTP(remote)
	if err != nil {
		return mapping.Media{}, fmt.Errorf("answer RTP: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return mapping.Media{}, ErrClosed
	}
	if err := c.setRemoteLocked(remote, r, true); err != nil {
		return mapping.Media{}, fmt.Errorf("answer RTP: %w", err)
	}
	return c.localRTPLocked(codecs), nil
}

// CheckRTP reports whether remote can be the SIP leg of a call, without a
// call: the checks AnswerRTP and SetRemoteRTP make (profile, address, a
// usable a=crypto line, ICE with rtcp-mux for DTLS-SRTP), so a refused offer gets its 488 before anything
// is set up. The error wraps ErrProfile and never holds a key.
func CheckRTP(remote mapping.Media) error {
	if isWebRTC(remote) {
		return checkSIPWebRTC(remote)
	}
	if _, err := checkRemoteRTP(remote); err != nil {
		return err
	}
	if isSDES(remote) {
		if _, _, err := pickCrypto(remote.Crypto); err != nil {
			return fmt.Errorf("%w: %w", ErrProfile, err)
		}
	}
	return nil
}

// checkRemoteRTP checks what the SIP leg can use: RTP/AVP(F), or SDES-SRTP
// (DTLS-SRTP and ICE are not spoken on the SIP leg).
func checkRemoteRTP(remote mapping.Media) (*sipRemote, error) {
	if remote.Profile != "RTP/AVP" && remote.Profile != "RTP/AVPF" && !isSDES(remote) {
		return nil, fmt.Errorf("%w: profile %q (stox relays RTP or SDES-SRTP on the SIP leg)", ErrProfile, remote.Profile)
	}
	if remote.Port <= 0 || remote.Port > 65535 {
		return nil, fmt.Errorf("%w: port %d", ErrProfile, remote.Port)
	}
	ip, err := netip.ParseAddr(remote.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: address %q", ErrProfile, remote.Addr)
	}
	return &sipRemote{addr: netip.AddrPortFrom(ip.Unmap(), uint16(remote.Port)),
		send: !ip.IsUnspecified() && remote.Direction != mapping.SendOnly && remote.Direction != mapping.Inactive}, nil
}

// setRemoteLocked applies the SIP side's description. answering says the
// caller describes stox's side next (AnswerRTP), so the profile may change.
func (c *Call) setRemoteLocked(remote mapping.Media, r *sipRemote, answering bool) error {
	var leg *sdesLeg
	switch {
	case isSDES(remote):
		if !answering && c.sipDescribed && c.sipCrypto == nil {
			return fmt.Errorf("%w: %s remote, but stox described plain RTP (RFC 3264 §6.1)", ErrProfile, remote.Profile)
		}
		cr, k, err := pickCrypto(remote.Crypto)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrProfile, err)
		}
		if !answering && c.sipDescribed && (cr.Tag != c.sipCrypto.Tag || cr.Suite != c.sipCrypto.Suite) {
			// RFC 4568 §7.1.3: the answer must pick a line stox offered.
			return fmt.Errorf("%w: answer's a=crypto tag %d %s was not offered", ErrProfile, cr.Tag, cr.Suite)
		}
		rx, err := newRxContext(k)
		if err != nil {
			return fmt.Errorf("%w: SRTP context: %w", ErrProfile, err)
		}
		// stox keeps its key while the remote keeps the tag and suite
		// (a re-INVITE), so its SRTP stream's rollover counter goes on.
		if c.sipCrypto == nil || c.sipCrypto.Tag != cr.Tag || c.sipTxKey.profile != k.profile {
			tk, err := newSDESKey(k.profile)
			if err != nil {
				return fmt.Errorf("SRTP key: %w", err)
			}
			tx, err := newTxContext(tk)
			if err != nil {
				return fmt.Errorf("SRTP context: %w", err)
			}
			c.sipTxKey, c.sipTx = tk, tx
			c.sipCrypto = &mapping.Crypto{Tag: cr.Tag, Suite: cr.Suite, KeyParams: tk.keyParams()}
		}
		c.sipProfile = remote.Profile
		leg = &sdesLeg{rx: rx, tx: c.sipTx, rxBuf: make([]byte, 1500), txBuf: make([]byte, 1600)}
	default:
		if !answering && c.sipDescribed && c.sipCrypto != nil {
			return fmt.Errorf("%w: %s remote, but stox described SDES-SRTP (RFC 3264 §6.1)", ErrProfile, remote.Profile)
		}
		c.sipCrypto, c.sipTx, c.sipTxKey = nil, nil, sdesKey{}
		if answering {
			c.sipProfile = remote.Profile
		}
	}
	c.sipPeer = append([]mapping.Codec(nil), remote.Codecs...)
	c.sdes.Store(leg)
	c.remote.Store(r)
	c.latched.Store(false)
	c.sipReady = true
	c.updateMapsLocked()
	c.armLocked()
	return nil
}

// AnswerWebRTC answers the XMPP side's offer: ICE-lite with stox's host
// candidate, DTLS setup=active (RFC 5763 §5), rtcp-mux, the given codecs
// (a subset of the offer, with the offer's PTs), the offer's mid.
func (c *Call) AnswerWebRTC(offer mapping.Media, codecs []mapping.Codec) (mapping.Media, error) {
	if err := checkWebRTC(offer); err != nil {
		return mapping.Media{}, fmt.Errorf("answer WebRTC: %w", err)
	}
	if len(codecs) == 0 {
		return mapping.Media{}, fmt.Errorf("answer WebRTC: %w: no codec", ErrProfile)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.newPCLocked(&c.xl, codecs, true, c.readWebRTC); err != nil {
		return mapping.Media{}, fmt.Errorf("answer WebRTC: %w", err)
	}
	local, err := c.answerPCLocked(&c.xl, offer)
	if err != nil {
		return mapping.Media{}, fmt.Errorf("answer WebRTC: %w", err)
	}
	c.webIn = local.Codecs
	c.webOut = local.Codecs // RFC 3264 §6.1: the answerer sends what both list, with the offer's PTs
	c.webReady = true
	c.updateMapsLocked()
	c.addPendingLocked()
	c.armLocked()
	return local, nil
}

// OfferWebRTC makes stox's offer toward XMPP: ICE-lite, setup=actpass,
// rtcp-mux, the given codecs with their PTs.
func (c *Call) OfferWebRTC(codecs []mapping.Codec) (mapping.Media, error) {
	if len(codecs) == 0 {
		return mapping.Media{}, fmt.Errorf("offer WebRTC: %w: no codec", ErrProfile)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A full ICE agent, controlling as the offerer (RFC 8445 §6.1.1):
	// Jingle cannot say that an offerer is lite (XEP-0176 has no
	// ice-lite), so a client answering a lite stox would also take the
	// controlled role and neither side would nominate a pair.
	if _, err := c.newPCLocked(&c.xl, codecs, false, c.readWebRTC); err != nil {
		return mapping.Media{}, fmt.Errorf("offer WebRTC: %w", err)
	}
	local, err := c.offerPCLocked(&c.xl)
	if err != nil {
		return mapping.Media{}, fmt.Errorf("offer WebRTC: %w", err)
	}
	c.webIn = local.Codecs
	c.offered = true
	return local, nil
}

// SetWebRTCAnswer takes the XMPP side's answer to OfferWebRTC.
func (c *Call) SetWebRTCAnswer(answer mapping.Media) error {
	if err := checkWebRTC(answer); err != nil {
		return fmt.Errorf("WebRTC answer: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return ErrClosed
	}
	if !c.offered || c.xl.pc == nil {
		return errors.New("WebRTC answer: no offer outstanding")
	}
	if err := setAnswerPCLocked(&c.xl, answer); err != nil {
		return fmt.Errorf("WebRTC answer: %w", err)
	}
	c.offered = false
	c.webOut = answer.Codecs
	c.webReady = true
	c.updateMapsLocked()
	c.addPendingLocked()
	c.armLocked()
	return nil
}

// AddRemoteCandidate adds a trickled candidate of the XMPP side (RFC 8838).
// Candidates that arrive before the remote description are kept until it.
// stox is ICE-lite, so it needs them only to recognise the checks' sources.
func (c *Call) AddRemoteCandidate(cand mapping.Candidate) error {
	if _, ok := candidateAttr(cand); !ok {
		return fmt.Errorf("remote candidate %s %s:%d: %w: unusable", cand.Protocol, cand.IP, cand.Port, ErrProfile)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return ErrClosed
	}
	if !c.webReady {
		c.pending = append(c.pending, cand)
		return nil
	}
	return addCandidateLocked(&c.xl, cand)
}

func (c *Call) addPendingLocked() {
	for _, cand := range c.pending {
		if err := addCandidateLocked(&c.xl, cand); err != nil {
			c.log.Debug("trickled candidate refused", zap.Error(err))
		}
	}
	c.pending = nil
}

// checkWebRTC refuses what the WebRTC leg cannot use: no DTLS fingerprint
// (SDES-only, plain RTP), no ICE credentials, and any text that would break
// the SDP line it is written on.
func checkWebRTC(m mapping.Media) error {
	if m.Fingerprint == nil || m.ICEUfrag == "" || m.ICEPwd == "" {
		return fmt.Errorf("%w: the WebRTC leg needs ICE and DTLS-SRTP (RFC 8827)", ErrProfile)
	}
	if m.Profile != "" && !strings.Contains(m.Profile, "SAVP") {
		return fmt.Errorf("%w: profile %q", ErrProfile, m.Profile)
	}
	s := m.Mid + m.Kind + m.Profile + m.Addr + m.CNAME + m.ICEUfrag + m.ICEPwd + string(m.Direction) +
		m.Fingerprint.Hash + m.Fingerprint.Value + m.Fingerprint.Setup
	for _, cd := range m.Codecs {
		s += cd.Name + cd.Fmtp
		for _, fb := range cd.FB {
			s += fb.Type + fb.Subtype
		}
	}
	if strings.ContainsAny(s, "\r\n\x00") || strings.ContainsAny(m.Mid+m.ICEUfrag+m.ICEPwd+m.Fingerprint.Value, " \t") {
		return fmt.Errorf("%w: control characters or spaces in the description", ErrProfile)
	}
	return nil
}

// updateMapsLocked recomputes the PT maps from what each leg negotiated.
func (c *Call) updateMapsLocked() {
	c.toWeb.Store(buildMap(refs(c.sipLocal), refs(c.webOut)))
	c.toSIP.Store(buildMap(refs(c.webIn), refs(c.sipPeer)))
}

func refs(cs []mapping.Codec) []codecRef {
	r := make([]codecRef, 0, len(cs))
	for _, c := range cs {
		r = append(r, codecRef{pt: c.PT, clock: c.Clock, key: codecKey(c.Name, c.Clock, c.Channels)})
	}
	return r
}

// armLocked starts the inactivity timer once both legs are set up: before
// that a call may ring for long without media.
func (c *Call) armLocked() {
	if !c.webReady || !c.sipReady || c.started.Load() != 0 {
		return
	}
	now := time.Now()
	c.started.Store(now.UnixNano())
	c.last.Store(int64(time.Since(c.epoch)))
	if c.inactivity > 0 {
		c.timer = time.AfterFunc(c.inactivity, c.checkIdle)
	}
}

func (c *Call) checkIdle() {
	idle := time.Since(c.epoch) - time.Duration(c.last.Load())
	if idle >= c.inactivity {
		c.fail(ErrInactive)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopping {
		c.timer.Reset(c.inactivity - idle)
	}
}

// readSIP relays what arrives on the SIP leg's RTP port.
func (c *Call) readSIP() {
	defer c.wg.Done()
	buf := make([]byte, 1500)
	var sm seqMap
	var h rtp.Header
	for {
		n, from, err := c.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		c.fromSIP(buf[:n], from, &sm, &h)
	}
}

// fromSIP relays one packet from the SIP leg to the WebRTC leg. It must not
// allocate (BenchmarkFromSIP).
func (c *Call) fromSIP(b []byte, from netip.AddrPort, sm *seqMap, h *rtp.Header) {
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if c.sl.Load() != nil {
		// The phone's media comes through ICE on the WebRTC SIP leg.
		c.drop(ToWebRTC, DropSource)
		return
	}
	r := c.remote.Load()
	known := r != nil && r.addr == from
	// RFC 4961 §4: with latching, the first source seen becomes the SIP
	// side's address; without, only the negotiated one is heard.
	if !known && (r == nil || !c.e.cfg.Latch || c.latched.Load()) {
		c.drop(ToWebRTC, DropSource)
		return
	}
	if s := c.sdes.Load(); s != nil {
		// Decrypted before latching: only a packet with the phone's key
		// may move the leg to a new source (RFC 3711 §3.3 authentication).
		d, err := s.rx.DecryptRTP(s.rxBuf[:0], b, nil)
		if err != nil {
			c.drop(ToWebRTC, DropSRTP)
			return
		}
		b = d
	}
	if known {
		if c.e.cfg.Latch && !c.latched.Load() {
			c.latched.Store(true) // the negotiated source spoke first: keep it
		}
	} else {
		if !c.latched.CompareAndSwap(false, true) {
			c.drop(ToWebRTC, DropSource)
			return
		}
		c.remote.Store(&sipRemote{addr: from, send: r.send})
	}
	c.relayToWeb(b, sm, h)
}

// relayToWeb relays one RTP packet of the SIP side, plain (from the RTP
// port, or decrypted from SDES-SRTP or DTLS-SRTP), to the WebRTC leg. It
// must not allocate (BenchmarkFromSIP).
func (c *Call) relayToWeb(b []byte, sm *seqMap, h *rtp.Header) {
	st := &c.stats[ToWebRTC]
	p, ok := parseRTP(b)
	if !ok {
		c.drop(ToWebRTC, DropMalformed)
		return
	}
	m := c.toWeb.Load()
	if m == nil || m.out[p.pt] == 0 {
		c.drop(ToWebRTC, DropPT)
		return
	}
	w := c.xl.out.Load()
	if w == nil {
		c.drop(ToWebRTC, DropNotReady)
		return
	}
	now := int64(time.Since(c.epoch))
	c.last.Store(now)
	seq, ts, lost := sm.next(&p, m.clock[p.pt], now)
	if lost > 0 {
		st.lost.Add(uint64(lost))
		c.met.Lost(ToWebRTC, lost)
	}
	*h = rtp.Header{Version: 2, Marker: p.marker, PayloadType: m.out[p.pt] - 1, SequenceNumber: seq, Timestamp: ts, SSRC: w.ssrc}
	n, err := w.w.WriteRTP(h, p.payload)
	switch {
	case err != nil:
		c.drop(ToWebRTC, DropSend)
		return
	case n == 0: // pion discards what comes before SRTP keys exist
		c.drop(ToWebRTC, DropNotReady)
		return
	}
	st.packets.Add(1)
	st.bytes.Add(uint64(len(b)))
	c.met.Relayed(ToWebRTC, len(b))
}

// readWebRTC relays what pion decrypted from the WebRTC leg. A new track
// (the client changed SSRC) continues the SIP leg's one stream: the readers
// share its sequence map.
func (c *Call) readWebRTC(t *webrtc.TrackRemote) {
	out := make([]byte, 1500)
	var h rtp.Header
	c.readTrack(t, ToSIP, func(b []byte) {
		c.toSIPMu.Lock()
		c.toSIPLeg(b, out, &c.toSIPSeq, &h)
		c.toSIPMu.Unlock()
	})
}

// readSIPTrack relays what pion decrypted from a WebRTC SIP leg.
func (c *Call) readSIPTrack(t *webrtc.TrackRemote) {
	var h rtp.Header
	c.readTrack(t, ToWebRTC, func(b []byte) {
		c.fromSIPMu.Lock()
		c.relayToWeb(b, &c.fromSIPSeq, &h)
		c.fromSIPMu.Unlock()
	})
}

// readTrack hands relay each packet of a remote track of a pcLeg, until
// the call stops or pion ends the track.
func (c *Call) readTrack(t *webrtc.TrackRemote, d Dir, relay func([]byte)) {
	defer c.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			select {
			case <-c.stop:
				return
			default:
			}
			if n == 0 && isEOF(err) {
				return
			}
			// pion refuses a PT it did not negotiate; that packet is lost.
			c.drop(d, DropPT)
			continue
		}
		relay(buf[:n])
	}
}

// toSIPLeg relays one packet from the WebRTC leg to the SIP leg, rewritten
// into out (or into h for a WebRTC SIP leg). It must not allocate
// (BenchmarkToSIP).
func (c *Call) toSIPLeg(b, out []byte, sm *seqMap, h *rtp.Header) {
	st := &c.stats[ToSIP]
	p, ok := parseRTP(b)
	if !ok {
		c.drop(ToSIP, DropMalformed)
		return
	}
	m := c.toSIP.Load()
	if m == nil || m.out[p.pt] == 0 {
		c.drop(ToSIP, DropPT)
		return
	}
	r := c.remote.Load()
	if r == nil || !r.send {
		c.drop(ToSIP, DropNotReady)
		return
	}
	if 12+len(p.payload) > len(out) {
		c.drop(ToSIP, DropMalformed)
		return
	}
	now := int64(time.Since(c.epoch))
	c.last.Store(now)
	seq, ts, lost := sm.next(&p, m.clock[p.pt], now)
	if lost > 0 {
		st.lost.Add(uint64(lost))
		c.met.Lost(ToSIP, lost)
	}
	if l := c.sl.Load(); l != nil {
		w := l.out.Load()
		if w == nil {
			c.drop(ToSIP, DropNotReady)
			return
		}
		*h = rtp.Header{Version: 2, Marker: p.marker, PayloadType: m.out[p.pt] - 1, SequenceNumber: seq, Timestamp: ts, SSRC: w.ssrc}
		n, err := w.w.WriteRTP(h, p.payload)
		switch {
		case err != nil:
			c.drop(ToSIP, DropSend)
			return
		case n == 0: // before the SRTP keys exist
			c.drop(ToSIP, DropNotReady)
			return
		}
		st.packets.Add(1)
		st.bytes.Add(uint64(12 + len(p.payload)))
		c.met.Relayed(ToSIP, 12+len(p.payload))
		return
	}
	writeHeader(out, p.marker, m.out[p.pt]-1, seq, ts, c.sipSSRC)
	n := 12 + copy(out[12:], p.payload)
	pkt := out[:n]
	if s := c.sdes.Load(); s != nil {
		e, err := s.tx.EncryptRTP(s.txBuf[:0], pkt, nil)
		if err != nil {
			c.drop(ToSIP, DropSRTP)
			return
		}
		pkt = e
	}
	if _, err := c.rtp.WriteToUDPAddrPort(pkt, r.addr); err != nil {
		c.drop(ToSIP, DropSend)
		return
	}
	st.packets.Add(1)
	st.bytes.Add(uint64(n))
	c.met.Relayed(ToSIP, n)
}

func (c *Call) drop(d Dir, why Drop) {
	c.stats[d].dropped.Add(1)
	c.met.Dropped(d, why)
}

// drainRTCP reads and drops the SIP leg's RTCP (RTCP is terminated per leg;
// pion reports on the WebRTC leg).
func (c *Call) drainRTCP() {
	defer c.wg.Done()
	buf := make([]byte, 1500)
	for {
		if _, _, err := c.rtcp.ReadFromUDPAddrPort(buf); errors.Is(err, net.ErrClosed) {
			return
		}
	}
}
