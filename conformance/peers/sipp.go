package peers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SippKeyDefaults are the -key values RunSipp and StartSippUAS add for every
// [key] a scenario uses that the caller did not pass with -key. (sipp
// refuses to run a scenario with an unset key.)
var SippKeyDefaults = map[string]string{
	"domain":       "localhost",       // register.xml: From/To domain of the AOR
	"expires":      "3600",            // register.xml
	"to_domain":    "localhost",       // message_uac.xml: R-URI/To domain (user: -s)
	"from_user":    "alice",           // message_uac.xml
	"from_domain":  "localhost",       // message_uac.xml
	"body":         "hello from sipp", // message_uac.xml
	"content_type": "text/plain",      // message_uac.xml
	"expect":       "200",             // message_uac.xml: required final status
	"status":       "200",             // message_uas_status.xml
	"note":         "at my desk",      // publish.xml
}

// SippResult is the outcome of RunSipp.
type SippResult struct {
	ExitCode int    // 0: every call passed; 1: some failed; 255/-1: error or killed
	Command  string // the command line that was run
	Stdout   string // sipp's screens
	Stderr   string
	Logs     string // the -trace_logs file (<log> actions, e.g. "FINAL STATUS 200 expected 200")
	Trace    string // the -trace_msg file (every SIP message sent and received)
	Errors   string // the -trace_err file (unexpected messages, timeouts)
}

// Check fails the test, showing the command, logs, errors and message
// trace, unless ExitCode is 0.
func (r SippResult) Check(t testing.TB) {
	t.Helper()
	if r.ExitCode != 0 {
		t.Fatalf("sipp exit code %d\ncommand: %s\nlogs:\n%s\nerrors:\n%s\ntrace:\n%s\nstderr:\n%s",
			r.ExitCode, r.Command, r.Logs, r.Errors, tail(r.Trace, 6000), r.Stderr)
	}
}

// SippScenario returns the path of a scenario: names without a "/" are
// taken from conformance/testdata/sipp.
func SippScenario(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	return filepath.Join(TestdataDir(), "sipp", name)
}

// sippArgs builds a sipp command line: scenario and remote first, then the
// common loopback flags (peers.md §7.1), then defaults for flags the caller
// did not give, then args. It returns the args and the SIP port.
func sippArgs(t testing.TB, dir, scenario, remote string, uac bool, args []string) ([]string, int) {
	t.Helper()
	has := func(flag string) (string, bool) { return flagValue(args, flag) }
	path := SippScenario(scenario)
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("sipp scenario: %v", err)
	}
	a := []string{"-sf", path}
	if remote != "" {
		a = append(a, remote)
	}
	port := 0
	if p, ok := has("-p"); ok {
		port, _ = strconv.Atoi(p)
	} else {
		port = FreePort(t, "udp+tcp")
		a = append(a, "-p", strconv.Itoa(port))
	}
	if _, ok := has("-cp"); !ok {
		a = append(a, "-cp", strconv.Itoa(FreePort(t, "udp")))
	}
	for _, f := range []string{"-i", "-mi", "-ci"} {
		if _, ok := has(f); !ok {
			a = append(a, f, "127.0.0.1")
		}
	}
	a = append(a, "-nostdin")
	if _, ok := has("-nd"); !ok {
		if _, ok := has("-default_behaviors"); !ok {
			a = append(a, "-default_behaviors", "all,-bye") // no BYE for a failed MESSAGE "call"
		}
	}
	if uac {
		if _, ok := has("-m"); !ok {
			a = append(a, "-m", "1")
		}
		if _, ok := has("-timeout"); !ok {
			a = append(a, "-timeout", "10s")
		}
		if _, ok := has("-timeout_error"); !ok {
			a = append(a, "-timeout_error")
		}
	}
	given := map[string]bool{}
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-key" {
			given[args[i+1]] = true
		}
	}
	for _, m := range regexp.MustCompile(`\[([a-z_]+)\]`).FindAllSubmatch(text, -1) {
		k := string(m[1])
		if given[k] {
			continue
		}
		v, ok := SippKeyDefaults[k]
		if k == "contact_host_port" {
			v, ok = fmt.Sprintf("127.0.0.1:%d", port), true
		}
		if ok {
			a = append(a, "-key", k, v)
			given[k] = true
		}
	}
	// message_uac.xml's digest answer must hash the Request-URI, not sipp's
	// default remote_ip:port.
	if _, ok := has("-au"); ok && bytes.Contains(text, []byte("MESSAGE sip:[service]@[to_domain]")) {
		if _, ok := has("-auth_uri"); !ok {
			user, ok := has("-s")
			if !ok {
				user = "service"
			}
			a = append(a, "-auth_uri", user+"@"+keyValue(args, "to_domain"))
		}
	}
	a = append(a,
		"-trace_logs", "-log_file", filepath.Join(dir, "logs.log"),
		"-trace_msg", "-message_file", filepath.Join(dir, "messages.log"),
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"))
	return append(a, args...), port
}

// keyValue is the value of "-key name V" in args, else SippKeyDefaults[name].
func keyValue(args []string, name string) string {
	for i := 0; i+2 < len(args); i++ {
		if args[i] == "-key" && args[i+1] == name {
			return args[i+2]
		}
	}
	return SippKeyDefaults[name]
}

// RunSipp runs one sipp client to completion (killed after 60 s):
//
//	cd TMP && sipp -sf conformance/testdata/sipp/SCENARIO REMOTE -p FREE -cp FREE \
//	    -i 127.0.0.1 -mi 127.0.0.1 -ci 127.0.0.1 -nostdin -default_behaviors all,-bye \
//	    -m 1 -timeout 10s -timeout_error -key K V... \
//	    -trace_logs -log_file TMP/logs.log -trace_msg -message_file TMP/messages.log \
//	    -trace_err -error_file TMP/errors.log ARGS...
//
// Flags given in args replace the defaults -p, -cp, -i, -mi, -ci, -m,
// -timeout (so pass "-p", "5099" to send from a known port). -key values
// missing from args come from SippKeyDefaults (register.xml's
// contact_host_port becomes 127.0.0.1:PORT). remote is "127.0.0.1:PORT".
// With -au (digest auth) and message_uac.xml, RunSipp adds
// -auth_uri USER@TO_DOMAIN (from -s and the to_domain key) unless given, so
// the digest response covers the Request-URI as real UAs do (sipp's own
// default is remote_ip:port). register.xml's Request-URI is
// sip:REMOTE_IP:PORT, which matches sipp's default.
// It does not fail the test: call Check, or look at ExitCode.
//
// Examples:
//
//	peers.RunSipp(t, "register.xml", kam.Addr(), "-s", "bob").Check(t)
//	peers.RunSipp(t, "register.xml", stox, "-s", "bob", "-au", "bob", "-ap", "pw").Check(t)
//	peers.RunSipp(t, "message_uac.xml", kam.Addr(), "-s", "alice", "-key", "to_domain", "localhost",
//	    "-key", "from_user", "carol", "-key", "from_domain", "kam.localhost",
//	    "-key", "body", "hi", "-key", "expect", "404").Check(t)
func RunSipp(t testing.TB, scenario string, remote string, args ...string) SippResult {
	t.Helper()
	Require(t, "sipp")
	_, fixedPort := flagValue(args, "-p")
	for attempt := 1; ; attempt++ {
		r := runSipp(t, scenario, remote, args)
		// See StartSippUAS: a port FreePort found free may be gone by now.
		if !fixedPort && attempt < 5 && r.ExitCode != 0 && strings.Contains(r.Stdout+r.Stderr, "Unable to bind") {
			t.Logf("sipp: port taken, retrying with another")
			continue
		}
		return r
	}
}

func runSipp(t testing.TB, scenario, remote string, args []string) SippResult {
	t.Helper()
	dir := t.TempDir()
	a, _ := sippArgs(t, dir, scenario, remote, true, args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sipp", a...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := SippResult{
		Command: "sipp " + strings.Join(a, " "),
		Stdout:  stdout.String(), Stderr: stderr.String(),
		Logs:   readFileString(filepath.Join(dir, "logs.log")),
		Trace:  readFileString(filepath.Join(dir, "messages.log")),
		Errors: readFileString(filepath.Join(dir, "errors.log")),
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.ExitCode = ee.ExitCode()
	default:
		t.Fatalf("sipp: %v", err)
	}
	return r
}

// SippUAS is a sipp server running in the background until the test ends.
type SippUAS struct {
	Dir string
	Log string // the -trace_logs file with the "GOT MESSAGE ..." entries

	port int
	args []string
	p    *proc
}

// StartSippUAS starts a sipp server in the background:
//
//	cd TMP && sipp -sf conformance/testdata/sipp/SCENARIO -p FREE -cp FREE \
//	    -i 127.0.0.1 -mi 127.0.0.1 -ci 127.0.0.1 -nostdin -default_behaviors all,-bye \
//	    -key K V... -trace_logs -log_file TMP/logs.log -trace_msg ... -trace_err ... ARGS...
//
// with stdout+stderr in TMP/sipp.out, listening on 127.0.0.1:Port() (UDP;
// pass "-t", "t1" for TCP). Scenario is usually "message_uas.xml" (200 OK)
// or "message_uas_status.xml" with "-key", "status", "486". It is ready when
// its port is bound (UDP) or accepts (TCP). Cleanup stops it.
func StartSippUAS(t testing.TB, scenario string, args ...string) *SippUAS {
	t.Helper()
	Require(t, "sipp")
	_, fixedPort := flagValue(args, "-p")
	for attempt := 1; ; attempt++ {
		dir := t.TempDir()
		a, port := sippArgs(t, dir, scenario, "", false, args)
		u := &SippUAS{Dir: dir, Log: filepath.Join(dir, "logs.log"), port: port, args: a}
		err := u.start(t)
		if err == nil {
			dumpOnFailure(t, "sipp uas", filepath.Join(dir, "sipp.out"), filepath.Join(dir, "errors.log"), filepath.Join(dir, "messages.log"))
			t.Cleanup(u.Stop)
			return u
		}
		u.Stop()
		// FreePort's port can be taken by another process (a parallel test
		// binary, an ephemeral client port) before sipp binds it; a fresh
		// pair of ports is the cure, unless the caller chose the port.
		if !fixedPort && attempt < 5 && strings.Contains(logTail(filepath.Join(dir, "sipp.out"), 3000), "Unable to bind") {
			t.Logf("sipp UAS: port %d taken, retrying with another", port)
			continue
		}
		t.Fatalf("%v\n%s", err, logTail(filepath.Join(dir, "sipp.out"), 3000))
	}
}

// start runs sipp and waits until its port is bound (UDP) or accepts (TCP).
func (u *SippUAS) start(t testing.TB) error {
	t.Helper()
	cmd := exec.Command("sipp", u.args...)
	cmd.Dir = u.Dir
	u.p = startProc(t, "sipp", cmd, filepath.Join(u.Dir, "sipp.out"))
	if v, _ := flagValue(u.args, "-t"); strings.HasPrefix(v, "t") {
		if err := waitTCP(u.Addr(), 5*time.Second); err != nil {
			return fmt.Errorf("sipp UAS did not start: %v", err)
		}
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for !udpBound(u.port) {
		if u.p.exited() || time.Now().After(deadline) {
			return fmt.Errorf("sipp UAS did not start (%v): sipp %s", u.p.err, strings.Join(u.args, " "))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The port may be bound by someone else while sipp fails to bind it.
	select {
	case <-u.p.done:
		return fmt.Errorf("sipp UAS exited at start (%v): sipp %s", u.p.err, strings.Join(u.args, " "))
	case <-time.After(50 * time.Millisecond):
	}
	return nil
}

// flagValue is the value following flag in args, and whether flag is there.
func flagValue(args []string, flag string) (string, bool) {
	for i, a := range args {
		if a == flag {
			if i+1 < len(args) {
				return args[i+1], true
			}
			return "", true
		}
	}
	return "", false
}

// StartSippUASRegistered first registers user (with password, if the
// registrar challenges; "" for none) at registrar ("127.0.0.1:PORT") from
// the port the UAS will use, with register.xml, then starts the UAS there
// (see StartSippUAS): stox, like a NAT-aware registrar, sends to the
// REGISTER's source address. user may be "user@domain" to set the AOR domain
// (default "localhost"). The Contact is sip:USER@127.0.0.1:PORT.
// The flags -au, -ap, -auth_uri and -t in args also apply to the REGISTER
// (e.g. "-au", "authuser" when the auth user differs from the AOR user).
func StartSippUASRegistered(t testing.TB, scenario, registrar, user, password string, args ...string) *SippUAS {
	t.Helper()
	port := FreePort(t, "udp+tcp")
	reg := []string{"-p", strconv.Itoa(port)}
	if u, d, ok := strings.Cut(user, "@"); ok {
		user = u
		reg = append(reg, "-key", "domain", d)
	}
	reg = append(reg, "-s", user)
	over := map[string]string{}
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-au", "-ap", "-auth_uri", "-t":
			over[args[i]] = args[i+1]
		}
	}
	if password != "" {
		if _, ok := over["-au"]; !ok {
			over["-au"] = user
		}
		if _, ok := over["-ap"]; !ok {
			over["-ap"] = password
		}
	}
	for _, f := range []string{"-au", "-ap", "-auth_uri", "-t"} {
		if v, ok := over[f]; ok {
			reg = append(reg, f, v)
		}
	}
	RunSipp(t, "register.xml", registrar, reg...).Check(t)
	return StartSippUAS(t, scenario, append([]string{"-p", strconv.Itoa(port)}, args...)...)
}

// Port is the UAS's SIP port on 127.0.0.1.
func (u *SippUAS) Port() int { return u.port }

// Addr is "127.0.0.1:Port()".
func (u *SippUAS) Addr() string { return fmt.Sprintf("127.0.0.1:%d", u.port) }

// Stop stops sipp (SIGTERM, then SIGKILL after 3 s).
func (u *SippUAS) Stop() { u.p.stop(3 * time.Second) }

// Messages returns the "GOT MESSAGE ..." log entries so far, without the
// "GOT MESSAGE " prefix, e.g. "ruri=sip:bob@localhost from= <sip:alice@localhost>;tag=1
// to= <sip:bob@localhost> callid= 1-2@127.0.0.1 ctype= text/plain body=hello".
func (u *SippUAS) Messages() []string {
	text := readFileString(u.Log)
	var out []string
	for _, e := range strings.Split(text, "GOT MESSAGE ")[1:] {
		out = append(out, strings.TrimRight(e, "\n"))
	}
	return out
}

// SippMessage is one MESSAGE a sipp UAS received (header values trimmed).
type SippMessage struct {
	RURI, From, To, CallID, ContentType, Body string
}

var sippMsgRE = regexp.MustCompile(`(?s)^ruri=(.*?) from=(.*?) to=(.*?) callid=(.*?) ctype=(.*?) body=(.*)$`)

// ParsedMessages is Messages split into fields.
func (u *SippUAS) ParsedMessages() []SippMessage {
	var out []SippMessage
	for _, e := range u.Messages() {
		m := sippMsgRE.FindStringSubmatch(e)
		if m == nil {
			out = append(out, SippMessage{Body: e})
			continue
		}
		out = append(out, SippMessage{RURI: m[1], From: strings.TrimSpace(m[2]), To: strings.TrimSpace(m[3]),
			CallID: strings.TrimSpace(m[4]), ContentType: strings.TrimSpace(m[5]), Body: m[6]})
	}
	return out
}

// WaitMessages waits until the UAS has logged at least n MESSAGEs and
// returns them all (Fatal on timeout).
func (u *SippUAS) WaitMessages(t testing.TB, n int, timeout time.Duration) []SippMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ms := u.ParsedMessages()
		if len(ms) >= n {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("sipp UAS: %d of %d MESSAGEs after %v: %v\nerrors:\n%s", len(ms), n, timeout, ms,
				readFileString(filepath.Join(u.Dir, "errors.log")))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Trace returns the -trace_msg file (every SIP message sent and received).
func (u *SippUAS) Trace() string { return readFileString(filepath.Join(u.Dir, "messages.log")) }

func tail(s string, n int) string {
	if len(s) > n {
		return "...\n" + s[len(s)-n:]
	}
	return s
}
