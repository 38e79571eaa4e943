package mapping

import "testing"

// XEP-0106 §6.1 examples table: user input ⇄ escaped localpart.
var xep0106Examples = []struct{ raw, escaped string }{
	{"space cadet", `space\20cadet`},
	{`call me "ishmael"`, `call\20me\20\22ishmael\22`},
	{"at&t guy", `at\26t\20guy`},
	{"d'artagnan", `d\27artagnan`},
	{"/.fanboy", `\2f.fanboy`},
	{"::foo::", `\3a\3afoo\3a\3a`},
	{"<foo>", `\3cfoo\3e`},
	{"user@host", `user\40host`},
	{`c:\net`, `c\3a\net`},
	{`c:\\net`, `c\3a\\net`},
	{`c:\cool stuff`, `c\3a\cool\20stuff`},
	{`c:\5commas`, `c\3a\5c5commas`},
	// XEP-0106 §5.2 step 3: the Wireless Village address.
	{`\3and\2is\5cool`, `\5c3and\2is\5c5cool`},
	// XEP-0106 §6.2 e-mail example.
	{"here's_a_wild_&_/cr%zy/_address", `here\27s_a_wild_\26_\2fcr%zy\2f_address`},
	// RFC 7247 §6.4 and §6.5.
	{"o'malley", `o\27malley`},
	{"m&m", `m\26m`},
	{"fü", "fü"},
	{"tschüss", "tschüss"},
	{`\27`, `\5c27`},
	{"", ""},
}

func TestEscapeLocal(t *testing.T) {
	for _, tc := range xep0106Examples {
		if got := EscapeLocal(tc.raw); got != tc.escaped {
			t.Errorf("EscapeLocal(%q) = %q, want %q", tc.raw, got, tc.escaped)
		}
	}
}

func TestUnescapeLocal(t *testing.T) {
	for _, tc := range xep0106Examples {
		if got := UnescapeLocal(tc.escaped); got != tc.raw {
			t.Errorf("UnescapeLocal(%q) = %q, want %q", tc.escaped, got, tc.raw)
		}
	}
}

// XEP-0106 §5.3: partial and unknown sequences are left alone, both ways.
// ab\40x and abc\20x crash or corrupt mellium's jid.Unescape (docs/libraries.md).
func TestEscapeLeavesPartialSequences(t *testing.T) {
	for _, s := range []string{`\2plus\2is\4`, `foo\bar`, `foob\41r`, `\`, `a\`, `a\2`, `\2F`, `\5C`, `\zz`} {
		if got := UnescapeLocal(s); got != s {
			t.Errorf("UnescapeLocal(%q) = %q, want it unchanged", s, got)
		}
		if got := EscapeLocal(s); got != s {
			t.Errorf("EscapeLocal(%q) = %q, want it unchanged", s, got)
		}
	}
	for in, want := range map[string]string{
		`ab\40x`:  "ab@x",
		`abc\20x`: "abc x",
		`x\5c`:    `x\`,
		`\40`:     "@",
		`\2f\2f`:  "//",
		`\5c40`:   `\40`,
	} {
		if got := UnescapeLocal(in); got != want {
			t.Errorf("UnescapeLocal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, s := range []string{"o'malley", "fü", "m&m", "a/b", "with space", `\5c`, `a\27b\`, `"<>:@\/&'`} {
		if got := UnescapeLocal(EscapeLocal(s)); got != s {
			t.Errorf("UnescapeLocal(EscapeLocal(%q)) = %q", s, got)
		}
	}
}

func TestEscapeNoAllocWhenClean(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_ = EscapeLocal("alice")
		_ = UnescapeLocal("alice")
	})
	if allocs != 0 {
		t.Errorf("clean localparts allocate %v times, want 0", allocs)
	}
}
