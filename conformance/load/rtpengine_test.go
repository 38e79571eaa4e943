package main

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// What the harness sends to rtpengine, byte for byte (keys sorted, as
// bencoding requires), and that the reply reader gives it back.
func TestBencodeRoundTrip(t *testing.T) {
	req := map[string]any{"command": "offer", "call-id": "c1", "rtcp-mux": []any{"demux"}, "n": 3}
	var b bytes.Buffer
	if err := bencode(&b, req); err != nil {
		t.Fatal(err)
	}
	const want = "d7:call-id2:c17:command5:offer1:ni3e8:rtcp-muxl5:demuxee"
	if b.String() != want {
		t.Fatalf("bencode = %q, want %q", b.String(), want)
	}
	v, next, err := bdecode(b.Bytes(), 0)
	if err != nil || next != b.Len() {
		t.Fatalf("bdecode: %v at %d", err, next)
	}
	if !reflect.DeepEqual(v, req) {
		t.Fatalf("bdecode = %#v, want %#v", v, req)
	}
}

func TestBdecodeRefuses(t *testing.T) {
	for _, in := range []string{"", "d", "l", "i12", "5:abc", "-1:", "d1:ae", "di1e1:ae", "x", "99999999999999999999:a", string(bytes.Repeat([]byte("l"), 100))} {
		if _, _, err := bdecode([]byte(in), 0); !errors.Is(err, errBencode) {
			t.Errorf("bdecode(%q) err = %v, want errBencode", in, err)
		}
	}
}

// FuzzBdecode: rtpengine's replies are read with bdecode; no input may
// panic it, and what it reads is written back the same way.
func FuzzBdecode(f *testing.F) {
	f.Add([]byte("d6:result2:ok3:sdp5:v=0\r\ne"))
	f.Add([]byte("d6:result5:error12:error-reason4:nopee"))
	f.Add([]byte("li1eli-2eed0:0:ee"))
	f.Fuzz(func(t *testing.T, in []byte) {
		v, next, err := bdecode(in, 0)
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := bencode(&b, v); err != nil {
			t.Fatalf("bencode of a decoded value: %v", err)
		}
		v2, _, err := bdecode(b.Bytes(), 0)
		if err != nil || !reflect.DeepEqual(v, v2) {
			t.Fatalf("re-read %#v: %v (consumed %d of %q)", v2, err, next, in)
		}
	})
}
