package sip

import (
	"hash/fnv"
	"testing"
	"unique"
)

// TestFnv64 pins fnv64 to hash/fnv's FNV-1a: Call-ID hashes are written to
// the store ("fnv64:…") and compared after a restart.
func TestFnv64(t *testing.T) {
	for _, s := range []string{"", "a", "a84b4c76e66710@pc33.atlanta.com", "sip:alice@example.com"} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got, want := fnv64(s), h.Sum64(); got != want {
			t.Errorf("fnv64(%q) = %x, want %x", s, got, want)
		}
	}
}

func TestBindingStrings(t *testing.T) {
	b := newBinding("sip:alice@192.0.2.1:5060;transport=udp", "udp:192.0.2.1:5060")
	b.ua = unique.Make("")
	if b.contact() != "sip:alice@192.0.2.1:5060;transport=udp" || b.source() != "udp:192.0.2.1:5060" {
		t.Errorf("contact %q source %q", b.contact(), b.source())
	}
	m := b.toMapping("sip:alice@example.com")
	if m.Contact != b.contact() || m.Source != b.source() {
		t.Errorf("toMapping: %+v", m)
	}
}
