// Package media relays the audio of a call between its two legs (docs/media.md):
// a WebRTC leg toward XMPP (ICE-lite, DTLS-SRTP, rtcp-mux; pion/webrtc does
// ICE, DTLS and SRTP) and a plain RTP leg toward SIP (RTP/AVP, RTCP on
// port+1). Packets cross without transcoding: payload type numbers are
// mapped by codec and each leg carries stox's own SSRC.
package media

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// Errors of the engine and of a call (Call.Err).
var (
	ErrTooManyCalls = errors.New("media: too many calls")
	ErrNoPorts      = errors.New("media: no free UDP ports")
	ErrInactive     = errors.New("media: no RTP for the inactivity timeout")
	ErrICEFailed    = errors.New("media: ICE failed")
	ErrDTLSFailed   = errors.New("media: DTLS failed")
	ErrClosed       = errors.New("media: closed")
	ErrProfile      = errors.New("media: unsupported media description")
)

// Config configures an Engine.
type Config struct {
	Listen           string        // IP to bind, e.g. "127.0.0.1"
	Advertise        string        // IP written in SDP/candidates (1:1 NAT); Listen when empty
	PortMin, PortMax int           // UDP port range (inclusive), e.g. 20000–29999
	MaxCalls         int           // 0: only the port range limits
	Inactivity       time.Duration // no RTP from either side for this long ⇒ the call ends with ErrInactive; 0 disables
	Latch            bool          // RFC 4961 symmetric-RTP latching on the SIP leg (opt-in)
	// OfferSDES makes stox's own offers on the SIP leg RTP/SAVP with an
	// AES_CM_128_HMAC_SHA1_80 key (RFC 4568) instead of RTP/AVP. Off by
	// default: a phone without SRTP refuses such an offer.
	OfferSDES bool
	// OfferWebRTC makes stox's own offers on the SIP leg what a WebRTC
	// phone expects: UDP/TLS/RTP/SAVPF with ICE, DTLS-SRTP and rtcp-mux
	// (RFC 8827), on a fourth port. Off by default: only WebRTC-capable
	// phones accept it. It wins over OfferSDES.
	OfferWebRTC bool
	Logger      *zap.Logger // may be nil
	Metrics     Metrics     // may be nil
}

// Dir is the direction a packet is relayed in.
type Dir int

// The two directions of the relay.
const (
	ToWebRTC Dir = iota // from the SIP leg to the WebRTC leg
	ToSIP               // from the WebRTC leg to the SIP leg
)

func (d Dir) String() string {
	if d == ToWebRTC {
		return "to_webrtc"
	}
	return "to_sip"
}

// Drop says why a packet was not relayed.
type Drop int

// Reasons for dropping a packet.
const (
	DropSource    Drop = iota // from an address that was not negotiated
	DropMalformed             // not an RTP packet
	DropPT                    // payload type not negotiated on both legs
	DropNotReady              // the other leg is not set up yet
	DropSend                  // the write failed
	DropSRTP                  // SRTP authentication or decryption failed (or encryption)
)

func (d Drop) String() string {
	switch d {
	case DropSource:
		return "source"
	case DropMalformed:
		return "malformed"
	case DropPT:
		return "payload_type"
	case DropNotReady:
		return "not_ready"
	case DropSRTP:
		return "srtp"
	default:
		return "send"
	}
}

// Metrics receives the relay's counters. Methods are called on the packet
// path, so they must be cheap and must not block.
type Metrics interface {
	Relayed(d Dir, bytes int) // one packet relayed
	Dropped(d Dir, why Drop)  // one packet dropped
	Lost(d Dir, packets int)  // a gap in the input sequence numbers
	CallEnded(err error)      // a call's relay ended (ErrClosed when closed by its owner)
}

type noMetrics struct{}

func (noMetrics) Relayed(Dir, int)  {}
func (noMetrics) Dropped(Dir, Drop) {}
func (noMetrics) Lost(Dir, int)     {}
func (noMetrics) CallEnded(error)   {}

// Engine opens relayed calls within one UDP port range.
type Engine struct {
	cfg    Config
	listen netip.Addr
	adv    netip.Addr
	log    *zap.Logger
	met    Metrics

	// iceFailed overrides pion's ICE failed timeout (tests).
	iceFailed time.Duration

	// What every PeerConnection shares, made once (docs/media.md "Cost"):
	// the DTLS certificate (RFC 8827 §6.5 lets an endpoint keep one; its
	// fingerprint is all a peer checks) and pion's view of the interfaces,
	// which it would otherwise read from the kernel for each call.
	cert webrtc.Certificate
	net  *stdnet.Net

	mu     sync.Mutex
	used   []bool // port−PortMin in use
	next   int    // where the next search starts, so freed ports rest a while
	calls  map[*Call]struct{}
	closed bool
}

// PortsPerCall is how many UDP ports a call holds: an even RTP port and the
// RTCP port above it for the SIP leg (RFC 3550 §11), one port for the WebRTC
// leg (ICE, DTLS, SRTP and SRTCP multiplexed on it: RFC 8445, RFC 5764,
// RFC 5761).
const PortsPerCall = 3

// New checks cfg and returns an engine.
func New(cfg Config) (*Engine, error) {
	listen, err := netip.ParseAddr(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("media: listen address %q: %w", cfg.Listen, err)
	}
	adv := listen
	if cfg.Advertise != "" {
		if adv, err = netip.ParseAddr(cfg.Advertise); err != nil {
			return nil, fmt.Errorf("media: advertised address %q: %w", cfg.Advertise, err)
		}
	}
	if adv.IsUnspecified() {
		return nil, fmt.Errorf("media: advertised address %s is unspecified; set Advertise", adv)
	}
	if cfg.PortMin <= 0 || cfg.PortMax > 65535 || cfg.PortMax-cfg.PortMin+1 < PortsPerCall {
		return nil, fmt.Errorf("media: port range %d–%d holds no call (%d ports each)", cfg.PortMin, cfg.PortMax, PortsPerCall)
	}
	if cfg.MaxCalls < 0 || cfg.Inactivity < 0 {
		return nil, fmt.Errorf("media: negative MaxCalls or Inactivity")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("media: DTLS key: %w", err)
	}
	cert, err := webrtc.GenerateCertificate(key)
	if err != nil {
		return nil, fmt.Errorf("media: DTLS certificate: %w", err)
	}
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("media: interfaces: %w", err)
	}
	e := &Engine{cfg: cfg, listen: listen.Unmap(), adv: adv.Unmap(), log: cfg.Logger, met: cfg.Metrics,
		cert: *cert, net: n, used: make([]bool, cfg.PortMax-cfg.PortMin+1), calls: map[*Call]struct{}{}}
	if e.log == nil {
		e.log = zap.NewNop()
	}
	if e.met == nil {
		e.met = noMetrics{}
	}
	return e, nil
}

// Open allocates the ports of a call and starts its SIP leg's readers. id
// names the call in logs.
func (e *Engine) Open(id string) (*Call, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	if e.cfg.MaxCalls > 0 && len(e.calls) >= e.cfg.MaxCalls {
		return nil, fmt.Errorf("open %s: %w (%d)", id, ErrTooManyCalls, e.cfg.MaxCalls)
	}
	rtp, rtcp, err := e.bindPairLocked()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", id, err)
	}
	web, err := e.bindOneLocked()
	if err != nil {
		e.releaseLocked(rtp, rtcp)
		return nil, fmt.Errorf("open %s: %w", id, err)
	}
	c := newCall(e, id, rtp, rtcp, web)
	e.calls[c] = struct{}{}
	return c, nil
}

// Close ends every call (their Err is ErrClosed) and refuses new ones.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	calls := make([]*Call, 0, len(e.calls))
	for c := range e.calls {
		calls = append(calls, c)
	}
	e.mu.Unlock()
	for _, c := range calls {
		_ = c.Close()
	}
	return nil
}

// InUse reports how many ports are allocated (for tests and metrics).
func (e *Engine) InUse() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, u := range e.used {
		if u {
			n++
		}
	}
	return n
}

func (e *Engine) port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

// bindPairLocked binds an even port and the one above it (RFC 3550 §11: RTP
// on an even port, RTCP on the next). A port some other process holds is
// skipped.
func (e *Engine) bindPairLocked() (*net.UDPConn, *net.UDPConn, error) {
	n := len(e.used)
	for i := 0; i < n; i++ {
		off := (e.next + i) % n
		p := e.cfg.PortMin + off
		if p%2 != 0 || p+1 > e.cfg.PortMax || e.used[off] || e.used[off+1] {
			continue
		}
		a, err := e.bind(p)
		if err != nil {
			continue
		}
		b, err := e.bind(p + 1)
		if err != nil {
			a.Close()
			continue
		}
		e.used[off], e.used[off+1] = true, true
		e.next = (off + 2) % n
		return a, b, nil
	}
	return nil, nil, ErrNoPorts
}

// openExtra binds the port of a WebRTC SIP leg, released with its call.
func (e *Engine) openExtra() (*net.UDPConn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	return e.bindOneLocked()
}

func (e *Engine) bindOneLocked() (*net.UDPConn, error) {
	n := len(e.used)
	for i := 0; i < n; i++ {
		off := (e.next + i) % n
		if e.used[off] {
			continue
		}
		c, err := e.bind(e.cfg.PortMin + off)
		if err != nil {
			continue
		}
		e.used[off] = true
		e.next = (off + 1) % n
		return c, nil
	}
	return nil, ErrNoPorts
}

func (e *Engine) bind(port int) (*net.UDPConn, error) {
	return net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(e.listen, uint16(port))))
}

func (e *Engine) releaseLocked(conns ...*net.UDPConn) {
	for _, c := range conns {
		p := e.port(c)
		c.Close()
		e.used[p-e.cfg.PortMin] = false
	}
}

// release frees the ports of a call whose sockets are closed.
func (e *Engine) release(c *Call, ports ...int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range ports {
		e.used[p-e.cfg.PortMin] = false
	}
	delete(e.calls, c)
}
