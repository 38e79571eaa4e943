package sip

import (
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unique"

	"github.com/emiago/sipgo/sip"

	"stox.dev/stox/mapping"
)

const benchUsers = 1000

// authRegister builds a REGISTER for user with a precomputed MD5 digest
// answer to nonce (the nonce stays valid for the benchmark's duration).
func authRegister(user, dest, nonce string, cseq uint32, nc int) *sip.Request {
	req := registerReq(user, dest, []string{"<sip:" + user + "@127.0.0.1:5999>"}, "600")
	cid := sip.CallIDHeader("bench-" + user)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.REGISTER})
	c := digestCreds{Username: user, Realm: testDomain, Nonce: nonce, URI: "sip:" + testDomain,
		Algorithm: "MD5", Qop: "auth", Nc: fmt.Sprintf("%08x", nc), Cnonce: "bench"}
	c.Response = digestResponse(&c, "REGISTER", HA1("MD5", user, testDomain, "secret"))
	req.AppendHeader(sip.NewHeader("Authorization", `Digest username="`+user+`", realm="`+testDomain+
		`", nonce="`+nonce+`", uri="sip:`+testDomain+`", response="`+c.Response+`", algorithm=MD5, qop=auth, nc=`+c.Nc+`, cnonce="bench"`))
	return req
}

func benchEnv(b *testing.B) (*testEnv, string) {
	env := startStack(b, nil, nil)
	for i := 0; i < benchUsers; i++ {
		u := "u" + strconv.Itoa(i)
		env.store.accounts[u] = mapping.Account{User: u, Realm: testDomain,
			HA1MD5: HA1("MD5", u, testDomain, "secret"), HA1SHA256: HA1("SHA-256", u, testDomain, "secret")}
	}
	return env, env.stack.nonces.issue(time.Now(), testDomain)
}

// BenchmarkRegister measures digest-authenticated REGISTER → 200 round trips
// over UDP loopback (client and stack in one process, in-memory Store).
func BenchmarkRegister(b *testing.B) {
	env, nonce := benchEnv(b)
	c := newClient(b)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u := "u" + strconv.Itoa(i%benchUsers)
		res, err := c.Do(ctx, authRegister(u, env.udp, nonce, uint32(i+1), i+1))
		if err != nil {
			b.Fatal(err)
		}
		if res.StatusCode != 200 {
			b.Fatalf("status %d %s", res.StatusCode, res.Reason)
		}
	}
}

// BenchmarkRegisterParallel is BenchmarkRegister with concurrent clients.
func BenchmarkRegisterParallel(b *testing.B) {
	env, nonce := benchEnv(b)
	c := newClient(b)
	ctx := b.Context()
	var seq atomic.Uint32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			u := "u" + strconv.Itoa(int(i)%benchUsers)
			res, err := c.Do(ctx, authRegister(u, env.udp, nonce, i, int(i)))
			if err != nil {
				b.Error(err)
				return
			}
			if res.StatusCode != 200 && res.StatusCode != 500 { // 500: CSeq reordering between goroutines
				b.Errorf("status %d %s", res.StatusCode, res.Reason)
				return
			}
		}
	})
}

// BenchmarkDigestVerify measures parsing and verifying one Authorization
// value (SHA-256) including the nonce check.
func BenchmarkDigestVerify(b *testing.B) {
	n := nonces{secret: []byte("0123456789abcdef"), lifetime: 5 * time.Minute}
	now := time.Now()
	nonce := n.issue(now, testDomain)
	ha1 := HA1("SHA-256", "bob", testDomain, "secret")
	c := digestCreds{Username: "bob", Realm: testDomain, Nonce: nonce, URI: "sip:" + testDomain,
		Algorithm: "SHA-256", Qop: "auth", Nc: "00000001", Cnonce: "xyz"}
	c.Response = digestResponse(&c, "REGISTER", ha1)
	hdr := `Digest username="bob", realm="` + testDomain + `", nonce="` + nonce + `", uri="sip:` + testDomain +
		`", response="` + c.Response + `", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="xyz"`
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cred, err := parseDigest(hdr)
		if err != nil {
			b.Fatal(err)
		}
		if n.check(cred.Nonce, now, testDomain) != nonceValid || !verifyDigest(&cred, "REGISTER", ha1) {
			b.Fatal("did not verify")
		}
	}
}

// BenchmarkBindingMemory reports the heap bytes one cached binding costs
// (realistic AOR, Contact, Source, Call-ID and User-Agent lengths).
func BenchmarkBindingMemory(b *testing.B) {
	const n = 100_000
	for i := 0; i < b.N; i++ {
		r := &registrar{m: make(map[string][]binding)}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		exp := time.Now().Add(time.Hour).Unix()
		for j := 0; j < n; j++ {
			aor := fmt.Sprintf("sip:user%07d@%s", j, testDomain)
			nb := newBinding(fmt.Sprintf("sip:user%07d@192.0.2.%d:%d;transport=udp", j, j%250, 5060+j%1000),
				fmt.Sprintf("udp:192.0.2.%d:%d", j%250, 5060+j%1000))
			nb.callID = fnv64(fmt.Sprintf("%032x@192.0.2.1", j))
			nb.ua = unique.Make("Linphone/5.2.0 (belle-sip/5.2.0)")
			nb.expires, nb.cseq = exp, 1
			r.m[aor] = append(r.m[aor], nb)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/binding")
		// What the sweeper leaves once the burst is over: everything packed.
		r.compact()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "packed-B/binding")
		runtime.KeepAlive(r)
	}
}

// BenchmarkCompact is the time the sweeper holds the registrar's lock to
// pack 100,000 bindings.
func BenchmarkCompact(b *testing.B) {
	const n = 100_000
	r := &registrar{m: make(map[string][]binding)}
	exp := time.Now().Add(time.Hour).Unix()
	for j := 0; j < n; j++ {
		nb := newBinding(fmt.Sprintf("sip:user%07d@192.0.2.%d:%d;transport=udp", j, j%250, 5060+j%1000),
			fmt.Sprintf("udp:192.0.2.%d:%d", j%250, 5060+j%1000))
		nb.expires, nb.cseq = exp, 1
		aor := fmt.Sprintf("sip:user%07d@%s", j, testDomain)
		r.m[aor] = append(r.m[aor], nb)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.compact()
	}
}

// BenchmarkOptions is the baseline: an OPTIONS → 200 round trip through the
// same stack and client, no auth and no registrar work.
func BenchmarkOptions(b *testing.B) {
	env := startStack(b, nil, nil)
	c := newClient(b)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: testDomain})
		req.SetDestination(env.udp)
		res, err := c.Do(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if res.StatusCode != 200 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}
