package media

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"stox.dev/stox/mapping"
)

// answeredCall sets up a call answering a browser's offer; mutate may change
// the offer before stox sees it.
func answeredCall(t *testing.T, e *Engine, mutate func(*mapping.Media)) (*Call, *browser) {
	t.Helper()
	c, err := e.Open(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	if _, err := b.pc.AddTransceiverFromTrack(b.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
		t.Fatal(err)
	}
	o, err := b.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	offer := b.local(t, o)
	if mutate != nil {
		mutate(&offer)
	}
	ans, err := c.AnswerWebRTC(offer, webSet)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: webrtcSDP(ans)}); err != nil {
		t.Fatal(err)
	}
	return c, b
}

func waitDone(t *testing.T, c *Call) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the call did not end")
	}
}

func TestFingerprintMismatch(t *testing.T) {
	e := newEngine(t, Config{})
	c, _ := answeredCall(t, e, func(m *mapping.Media) {
		v := []byte(m.Fingerprint.Value)
		if v[0] == 'A' {
			v[0] = 'B'
		} else {
			v[0] = 'A'
		}
		m.Fingerprint.Value = string(v)
	})
	waitDone(t, c)
	if !errors.Is(c.Err(), ErrDTLSFailed) || strings.Contains(c.Err().Error(), "peer closed") {
		t.Errorf("Err = %v, want ErrDTLSFailed for the handshake", c.Err())
	}
	if e.InUse() != 0 {
		t.Errorf("%d ports in use after the call failed", e.InUse())
	}
}

func TestPeerClosesDTLS(t *testing.T) {
	e := newEngine(t, Config{})
	c, b := answeredCall(t, e, nil)
	select {
	case <-b.connected:
	case <-time.After(10 * time.Second):
		t.Fatal("browser never connected")
	}
	// Let stox's side finish its handshake before the browser leaves.
	waitFor(t, "stox connected", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.xl.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	_ = b.pc.Close() // sends close_notify
	waitDone(t, c)
	if !errors.Is(c.Err(), ErrDTLSFailed) || !strings.Contains(c.Err().Error(), "peer closed") {
		t.Errorf("Err = %v, want ErrDTLSFailed", c.Err())
	}
}

// TestNoGoroutineLeft checks that a call's goroutines end with it.
func TestNoGoroutineLeft(t *testing.T) {
	e := newEngine(t, Config{})
	c, b := answeredCall(t, e, nil)
	<-b.connected
	if _, err := c.LocalRTP(sipSet); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRemoteRTP(newPhone(t).media()); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	_ = e.Close()
	waitFor(t, "the call's goroutines to end", func() bool {
		buf := make([]byte, 1<<20)
		s := string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(s, "media.(*Call)")
	})
}

// TestICEFailed: an XMPP client that never completes its checks (here: none
// at all) fails ICE once pion's failed timeout passes.
func TestICEFailed(t *testing.T) {
	e := newEngine(t, Config{})
	e.iceFailed = 500 * time.Millisecond
	c, err := e.Open("ice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AnswerWebRTC(fakeOffer(), webSet); err != nil {
		t.Fatal(err)
	}
	waitDone(t, c)
	if !errors.Is(c.Err(), ErrICEFailed) {
		t.Errorf("Err = %v, want ErrICEFailed", c.Err())
	}
}
