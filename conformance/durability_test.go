package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
	"stox.dev/stox/store/storetest"
)

// docs/architecture.md durability contract, XMPP→SIP: messages stox read
// off the XMPP stream are in the Postgres outbox; killed mid-queue (SIGKILL) and
// restarted, stox delivers every one of them, in order, to the binding it
// also recovered from Postgres.
func TestStoxKilledPostgresOutboxDrained(t *testing.T) {
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{DSN: storetest.NewDatabase(t), Accounts: map[string]string{"bob": "bobpw"}})
	uas := peers.StartSippUASRegistered(t, "message_uas_slow.xml", w.stox.SIPAddr(), "bob@"+sipDomain, "bobpw")
	const n = 20
	for i := range n {
		w.alice.Send(t, "bob@"+compDomain, fmt.Sprintf("durable %02d", i))
	}
	uas.WaitMessages(t, 3, 15*time.Second)
	w.stox.Kill(t)
	got := len(uas.Messages())
	if got >= n {
		t.Fatalf("all %d messages were delivered before the kill; the case proves nothing", got)
	}
	w.stox.Start(t)
	// At-least-once: the MESSAGE in flight at the kill may come twice, but
	// every body arrives and their first arrivals keep the order.
	var order []string
	for deadline := time.Now().Add(30 * time.Second); len(order) < n && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		seen := map[string]bool{}
		order = order[:0]
		for _, m := range uas.ParsedMessages() {
			if !seen[m.Body] {
				seen[m.Body] = true
				order = append(order, m.Body)
			}
		}
	}
	for i := range n {
		if want := fmt.Sprintf("durable %02d", i); i >= len(order) || order[i] != want {
			t.Fatalf("delivered %v; want durable 00..%02d in order (%d arrived before the kill)", order, n-1, got)
		}
	}
	for _, m := range w.alice.Pending() {
		if m.Type == "error" {
			t.Errorf("alice got an error although every message was delivered: %s", m)
		}
	}
}

// docs/architecture.md durability contract, SIP→XMPP across a restart of
// the XMPP server: every MESSAGE stox answered 2xx reached alice,
// once; while Prosody was down stox answered errors at once instead of
// accepting. Each MESSAGE carries its sipp call number in the body, so
// the case compares which messages were accepted with which arrived.
func TestProsodyRestartNothingAcceptedLost(t *testing.T) {
	peers.Require(t, "sipp")
	w := newWorld(t, StoxConfig{Accounts: map[string]string{"bob": "bobpw"}})
	scenario := numberedMessageScenario(t)
	var (
		mu       sync.Mutex
		received = map[string]int{} // body → arrivals at alice
	)
	collect := func(c *peers.XMPPClient, stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if s, ok := c.TryNext(100 * time.Millisecond); ok && s.Kind == "message" && s.Type != "error" {
				mu.Lock()
				received[s.Body]++
				mu.Unlock()
			}
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); collect(w.alice, stop) }()

	const total = 150
	done := make(chan peers.SippResult, 1)
	go func() {
		r, err := peers.RunSippIn(t.TempDir(), scenario, w.stox.SIPAddr(), "-s", "alice",
			"-key", "from_user", "bob", "-key", "from_domain", sipDomain, "-key", "body", "across a restart",
			"-key", "expect", "202", "-au", "bob", "-ap", "bobpw", "-auth_uri", "alice@localhost",
			"-m", fmt.Sprint(total), "-r", "50", "-timeout", "60s")
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	time.Sleep(1 * time.Second)
	w.xmpp.Stop(t)
	time.Sleep(500 * time.Millisecond)
	w.xmpp.Start(t)
	alice2 := w.client(t, "alice", "alicepw")
	wg.Add(1)
	go func() { defer wg.Done(); collect(alice2, stop) }()
	res := <-done
	time.Sleep(time.Second) // let the last stanzas land
	close(stop)
	wg.Wait()

	// "FINAL STATUS <code> expected 202 call <n>": the body of call n is
	// "across a restart #n".
	statuses := map[string]int{}
	var accepted []string
	for _, line := range strings.Split(res.Logs, "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || f[0] != "FINAL" || f[1] != "STATUS" || f[5] != "call" {
			continue
		}
		statuses[f[2]]++
		if f[2] == "202" {
			accepted = append(accepted, "across a restart #"+f[6])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	arrivals := 0
	for _, n := range received {
		arrivals += n
	}
	t.Logf("sipp final statuses %v; alice received %d messages, %d distinct", statuses, arrivals, len(received))
	if len(accepted) == 0 || statuses["480"] == 0 {
		t.Fatalf("want both accepted (202) and refused-while-down (480) MESSAGEs, got %v", statuses)
	}
	var missing []string
	for _, body := range accepted {
		if received[body] == 0 {
			missing = append(missing, body)
		}
	}
	if len(missing) > 0 {
		t.Errorf("stox accepted %d MESSAGEs; %d never reached alice: %q", len(accepted), len(missing), missing)
	}
	var dup []string
	for body, n := range received {
		if n > 1 {
			dup = append(dup, fmt.Sprintf("%q ×%d", body, n))
		}
	}
	if len(dup) > 0 {
		sort.Strings(dup)
		t.Errorf("alice received messages more than once: %s", strings.Join(dup, ", "))
	}
	for code := range statuses {
		if code != "202" && code != "480" && code != "403" {
			t.Errorf("unexpected final status %s (%d times)", code, statuses[code])
		}
	}
}

// numberedMessageScenario writes message_uac.xml with the sipp call
// number appended to the body ("BODY #N") and to the final status log line
// ("FINAL STATUS CODE expected EXPECT call N") and returns its path.
func numberedMessageScenario(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(peers.SippScenario("message_uac.xml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, r := range [][2]string{
		{"[body]]]></send>", "[body] #[call_number]]]></send>"},
		{`<log message="FINAL STATUS [$code] expected [$exp]"/>`, `<log message="FINAL STATUS [$code] expected [$exp] call [call_number]"/>`},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("message_uac.xml has no %q any more; update numberedMessageScenario", r[0])
		}
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	path := filepath.Join(t.TempDir(), "message_uac_numbered.xml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
