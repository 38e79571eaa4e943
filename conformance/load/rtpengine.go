package main

// The reference relay: rtpengine (userspace forwarding, --table=-1)
// driven over its ng control protocol (bencoded dictionaries over UDP,
// each datagram "<cookie> <bencode>"), in place of stox. The callers'
// offer goes to rtpengine's "offer" turned into plain RTP/AVP for the echo,
// the echo's answer to "answer" turned back into ICE + DTLS-SRTP for the
// caller: the same conversion stox does.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"stox.dev/stox/conformance/peers"
)

// startRTPEngine runs rtpengine in the foreground on 127.0.0.1 with the
// relay range the stox runs get, and returns its ng address.
func (e *callEnv) startRTPEngine(co callOptions) (string, error) {
	bin, err := exec.LookPath("rtpengine")
	if err != nil {
		return "", fmt.Errorf("rtpengine not installed (Debian rtpengine-daemon): %w", err)
	}
	ng, err := peers.PickPort("udp")
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "--foreground", "--log-stderr", "--log-level=4", "--table=-1",
		"--interface=127.0.0.1", "--listen-ng=127.0.0.1:"+strconv.Itoa(ng),
		"--port-min="+strconv.Itoa(relayPortMin), "--port-max="+strconv.Itoa(maxPort(co)),
		"--pidfile="+filepath.Join(e.dir, "rtpengine.pid"), "--no-fallback")
	if e.rtpe, err = start("rtpengine", cmd, filepath.Join(e.dir, "rtpengine.log")); err != nil {
		return "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ng)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := ngDo(addr, map[string]any{"command": "ping"}); err == nil {
			return addr, nil
		} else if time.Now().After(deadline) || e.rtpe.Exited() {
			return "", fmt.Errorf("rtpengine not answering ping: %v\n%s", err, peers.LogTail(e.rtpe.Log, 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rtpengineCall sets up lc through rtpengine: offer (WebRTC → RTP/AVP),
// the echo's answer, answer (RTP/AVP → WebRTC) applied to the caller.
func (e *callEnv) rtpengineCall(lc *lcall) error {
	lc.sid = rand.Text()
	res, err := ngDo(e.ngAddr, map[string]any{
		"command": "offer", "call-id": lc.sid, "from-tag": "caller",
		"sdp":                lc.pc.LocalDescription().SDP,
		"transport-protocol": "RTP/AVP",
		"ICE":                "remove",
		"rtcp-mux":           []any{"demux"},
		"replace":            []any{"origin", "session-connection"},
	})
	if err != nil {
		return fmt.Errorf("rtpengine offer: %w", err)
	}
	if _, ok := res["sdp"].(string); !ok {
		return errors.New("rtpengine offer: no sdp")
	}
	echoSDP := fmt.Sprintf("v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n", e.echoPort)
	res, err = ngDo(e.ngAddr, map[string]any{
		"command": "answer", "call-id": lc.sid, "from-tag": "caller", "to-tag": "echo",
		"sdp":                echoSDP,
		"transport-protocol": "UDP/TLS/RTP/SAVPF",
		"ICE":                "force",
		"rtcp-mux":           []any{"offer", "accept"},
	})
	if err != nil {
		return fmt.Errorf("rtpengine answer: %w", err)
	}
	sdp, ok := res["sdp"].(string)
	if !ok {
		return errors.New("rtpengine answer: no sdp")
	}
	lc.ng = e.ngAddr
	if err := lc.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return fmt.Errorf("rtpengine's answer: %w\n%s", err, sdp)
	}
	return nil
}

// ngDo sends one ng command and returns the reply dictionary; a result
// other than "ok" is an error with rtpengine's error-reason.
func ngDo(addr string, req map[string]any) (map[string]any, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cookie := rand.Text()[:12]
	var b bytes.Buffer
	b.WriteString(cookie + " ")
	if err := bencode(&b, req); err != nil {
		return nil, err
	}
	if _, err := conn.Write(b.Bytes()); err != nil {
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	if err != nil {
		return nil, err
	}
	rest, ok := bytes.CutPrefix(buf[:n], []byte(cookie+" "))
	if !ok {
		return nil, errors.New("ng reply with another cookie")
	}
	v, _, err := bdecode(rest, 0)
	if err != nil {
		return nil, fmt.Errorf("ng reply: %w", err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("ng reply is not a dictionary")
	}
	if r, _ := d["result"].(string); r != "ok" && r != "pong" {
		reason, _ := d["error-reason"].(string)
		return d, fmt.Errorf("ng %v: %s %s", req["command"], r, reason)
	}
	return d, nil
}

// bencode writes v (string, int, []any, map[string]any) in bencoding,
// dictionary keys sorted as the format requires.
func bencode(b *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case string:
		b.WriteString(strconv.Itoa(len(v)) + ":" + v)
	case int:
		b.WriteString("i" + strconv.Itoa(v) + "e")
	case []any:
		b.WriteByte('l')
		for _, x := range v {
			if err := bencode(b, x); err != nil {
				return err
			}
		}
		b.WriteByte('e')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('d')
		for _, k := range keys {
			b.WriteString(strconv.Itoa(len(k)) + ":" + k)
			if err := bencode(b, v[k]); err != nil {
				return err
			}
		}
		b.WriteByte('e')
	default:
		return fmt.Errorf("bencode: %T", v)
	}
	return nil
}

var errBencode = errors.New("bad bencoding")

// bdecode reads one value at b[i:] and returns it with the index after
// it. Nesting is limited so that a hostile reply cannot exhaust the stack.
func bdecode(b []byte, i int) (any, int, error) { return bdecodeDepth(b, i, 0) }

func bdecodeDepth(b []byte, i, depth int) (any, int, error) {
	if depth > 32 {
		return nil, 0, fmt.Errorf("%w: nested too deep", errBencode)
	}
	if i >= len(b) {
		return nil, 0, fmt.Errorf("%w: truncated", errBencode)
	}
	switch c := b[i]; {
	case c == 'i':
		end := bytes.IndexByte(b[i:], 'e')
		if end < 0 {
			return nil, 0, fmt.Errorf("%w: integer without end", errBencode)
		}
		n, err := strconv.Atoi(string(b[i+1 : i+end]))
		if err != nil {
			return nil, 0, fmt.Errorf("%w: integer: %v", errBencode, err)
		}
		return n, i + end + 1, nil
	case c == 'l':
		var out []any
		i++
		for {
			if i >= len(b) {
				return nil, 0, fmt.Errorf("%w: list without end", errBencode)
			}
			if b[i] == 'e' {
				return out, i + 1, nil
			}
			v, next, err := bdecodeDepth(b, i, depth+1)
			if err != nil {
				return nil, 0, err
			}
			out, i = append(out, v), next
		}
	case c == 'd':
		out := map[string]any{}
		i++
		for {
			if i >= len(b) {
				return nil, 0, fmt.Errorf("%w: dictionary without end", errBencode)
			}
			if b[i] == 'e' {
				return out, i + 1, nil
			}
			k, next, err := bdecodeDepth(b, i, depth+1)
			if err != nil {
				return nil, 0, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, 0, fmt.Errorf("%w: dictionary key is not a string", errBencode)
			}
			v, next2, err := bdecodeDepth(b, next, depth+1)
			if err != nil {
				return nil, 0, err
			}
			out[ks], i = v, next2
		}
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(b[i:], ':')
		if colon < 0 {
			return nil, 0, fmt.Errorf("%w: string without length", errBencode)
		}
		n, err := strconv.Atoi(string(b[i : i+colon]))
		start := i + colon + 1
		if err != nil || n < 0 || n > len(b)-start {
			return nil, 0, fmt.Errorf("%w: string length", errBencode)
		}
		return string(b[start : start+n]), start + n, nil
	default:
		return nil, 0, fmt.Errorf("%w: unexpected %q", errBencode, strings.TrimSpace(string(c)))
	}
}
