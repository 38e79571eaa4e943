package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// digestRegister is a small REGISTER client with MD5 digest (RFC 8760 /
// RFC 2617, qop=auth), used instead of sipp for the digest figure: sipp
// 3.6.1 mangles [authentication username=[field0] ...] (the first nested
// field is emitted before the keyword), so it cannot take a different
// digest user per call from an injection file. Users are prefix0..prefixN-1,
// password "pw"; it offers rate REGISTER/s with at most limit in flight, a
// transaction being REGISTER → 401 → REGISTER with Authorization → 200,
// each request retransmitted after 0.5, 1, 2 s (RFC 3261 Timer E) and
// abandoned after 8 s.
func digestRegister(ctx context.Context, registrar, prefix string, n, rate, limit int) (ok, failed int, elapsed time.Duration, err error) {
	raddr, err := net.ResolveUDPAddr("udp", registrar)
	if err != nil {
		return 0, 0, 0, err
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, 0, 0, err
	}
	defer conn.Close()
	_ = conn.SetReadBuffer(8 << 20)
	local := conn.LocalAddr().String()

	var mu sync.Mutex
	waiting := map[string]chan string{} // Call-ID → responses
	go func() {
		buf := make([]byte, 65536)
		for {
			k, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			msg := string(buf[:k])
			cid := header(msg, "Call-ID", "i")
			mu.Lock()
			ch := waiting[cid]
			mu.Unlock()
			if ch != nil {
				select {
				case ch <- msg:
				default:
				}
			}
		}
	}()

	var nOK, nFail atomic.Int64
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := 0; i < n; i++ {
		if due := begin.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second))); time.Until(due) > 0 {
			time.Sleep(time.Until(due))
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			user := prefix + strconv.Itoa(i)
			cid := fmt.Sprintf("reg-%d-%d@127.0.0.1", i, begin.UnixNano())
			ch := make(chan string, 8)
			mu.Lock()
			waiting[cid] = ch
			mu.Unlock()
			defer func() { mu.Lock(); delete(waiting, cid); mu.Unlock() }()
			ruri := "sip:" + registrar
			req := func(cseq int, auth string) string {
				var b strings.Builder
				fmt.Fprintf(&b, "REGISTER %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%d;rport\r\n", ruri, local, cid[:strings.IndexByte(cid, '@')], cseq)
				fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=t%d\r\nTo: <sip:%s@%s>\r\nCall-ID: %s\r\nCSeq: %d REGISTER\r\n", user, regRealm, i, user, regRealm, cid, cseq)
				fmt.Fprintf(&b, "Contact: <sip:%s@%s>\r\nExpires: 3600\r\nMax-Forwards: 70\r\n", user, local)
				if auth != "" {
					b.WriteString(auth + "\r\n")
				}
				b.WriteString("Content-Length: 0\r\n\r\n")
				return b.String()
			}
			// transact sends msg and returns the first final response to cseq.
			transact := func(msg string, cseq int) string {
				deadline := time.Now().Add(8 * time.Second)
				wait := 500 * time.Millisecond
				_, _ = conn.WriteToUDP([]byte(msg), raddr)
				for {
					t := time.NewTimer(min(wait, time.Until(deadline)))
					select {
					case resp := <-ch:
						t.Stop()
						code := statusCode(resp)
						if code >= 200 && strings.HasPrefix(strings.TrimSpace(header(resp, "CSeq", "")), strconv.Itoa(cseq)+" ") {
							return resp
						}
					case <-t.C:
						if time.Now().After(deadline) {
							return ""
						}
						_, _ = conn.WriteToUDP([]byte(msg), raddr)
						wait = min(2*wait, 4*time.Second)
					}
				}
			}
			resp := transact(req(1, ""), 1)
			if statusCode(resp) == 401 {
				auth := digestAuth(resp, user, "pw", ruri)
				resp = transact(req(2, auth), 2)
			}
			if statusCode(resp) == 200 {
				nOK.Add(1)
			} else {
				nFail.Add(1)
			}
		}(i)
	}
	wg.Wait()
	return int(nOK.Load()), int(nFail.Load()), time.Since(begin), nil
}

func statusCode(resp string) int {
	if !strings.HasPrefix(resp, "SIP/2.0 ") || len(resp) < 11 {
		return 0
	}
	c, _ := strconv.Atoi(resp[8:11])
	return c
}

// header is the first value of a header (by full or compact name).
func header(msg, name, compact string) string {
	for _, line := range strings.Split(msg, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if strings.EqualFold(k, name) || (compact != "" && strings.EqualFold(k, compact)) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// digestAuth answers the MD5 challenge of a 401 (the first
// WWW-Authenticate with algorithm MD5 or none).
func digestAuth(resp, user, pw, uri string) string {
	var chal string
	for _, line := range strings.Split(resp, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "WWW-Authenticate") {
			continue
		}
		alg := param(v, "algorithm")
		if alg == "" || strings.EqualFold(alg, "MD5") {
			chal = v
			break
		}
	}
	realm, nonce, opaque, qop := param(chal, "realm"), param(chal, "nonce"), param(chal, "opaque"), param(chal, "qop")
	h := func(s string) string { x := md5.Sum([]byte(s)); return hex.EncodeToString(x[:]) }
	ha1 := h(user + ":" + realm + ":" + pw)
	ha2 := h("REGISTER:" + uri)
	auth := fmt.Sprintf(`Authorization: Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=MD5`, user, realm, nonce, uri)
	if strings.Contains(qop, "auth") {
		cnonce, nc := "0a4f113b", "00000001"
		auth += fmt.Sprintf(`, qop=auth, nc=%s, cnonce="%s", response="%s"`, nc, cnonce, h(ha1+":"+nonce+":"+nc+":"+cnonce+":auth:"+ha2))
	} else {
		auth += fmt.Sprintf(`, response="%s"`, h(ha1+":"+nonce+":"+ha2))
	}
	if opaque != "" {
		auth += fmt.Sprintf(`, opaque="%s"`, opaque)
	}
	return auth
}

// param is a parameter of a Digest challenge (quoted or not).
func param(chal, name string) string {
	i := strings.Index(strings.ToLower(chal), strings.ToLower(name)+"=")
	for i > 0 && chal[i-1] != ' ' && chal[i-1] != ',' {
		j := strings.Index(strings.ToLower(chal[i+1:]), strings.ToLower(name)+"=")
		if j < 0 {
			return ""
		}
		i += 1 + j
	}
	if i < 0 {
		return ""
	}
	v := chal[i+len(name)+1:]
	if strings.HasPrefix(v, `"`) {
		v = v[1:]
		if j := strings.IndexByte(v, '"'); j >= 0 {
			return v[:j]
		}
		return v
	}
	if j := strings.IndexAny(v, ", "); j >= 0 {
		return v[:j]
	}
	return v
}
