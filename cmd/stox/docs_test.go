package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"stox.dev/stox/sip"
)

// The command's sip.max_inflight default is the SIP stack's, and the README's
// configuration table gives that value and names every request kind the
// limit bounds (sip.Stack.admit: MESSAGE, SUBSCRIBE, NOTIFY, PUBLISH).
func TestMaxInFlightDocumented(t *testing.T) {
	if got := defaults().SIP.MaxInFlight; got != sip.DefaultMaxInFlight {
		t.Errorf("sip.max_inflight default %d, the SIP stack's %d", got, sip.DefaultMaxInFlight)
	}
	row := readmeRow(t, "`sip.max_inflight`")
	if want := "| `" + strconv.Itoa(sip.DefaultMaxInFlight) + "` |"; !strings.Contains(row, want) {
		t.Errorf("README row %q: want default %s", row, want)
	}
	for _, m := range []string{"MESSAGE", "SUBSCRIBE", "NOTIFY", "PUBLISH"} {
		if !strings.Contains(row, m) {
			t.Errorf("README row %q does not say that the limit bounds %s", row, m)
		}
	}
}

// readmeRow returns the line of the README's configuration table for key.
func readmeRow(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "| "+key+" |") {
			return l
		}
	}
	t.Fatalf("README has no configuration row for %s", key)
	return ""
}
