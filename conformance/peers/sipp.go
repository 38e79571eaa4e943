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

// SippResult is the outcome of RunSippIn (RunSipp in tests).
type SippResult struct {
	ExitCode int    // 0: every call passed; 1: some failed; 255/-1: error or killed
	Command  string // the command line that was run
	Stdout   string // sipp's screens
	Stderr   string
	Logs     string // the -trace_logs file (<log> actions, e.g. "FINAL STATUS 200 expected 200")
	Trace    string // the -trace_msg file (every SIP message sent and received)
	Errors   string // the -trace_err file (unexpected messages, timeouts)
}

// Err is nil when ExitCode is 0, else an error showing the command, logs,
// errors and message trace.
func (r SippResult) Err() error {
	if r.ExitCode == 0 {
		return nil
	}
	return fmt.Errorf("sipp exit code %d\ncommand: %s\nlogs:\n%s\nerrors:\n%s\ntrace:\n%s\nstderr:\n%s",
		r.ExitCode, r.Command, r.Logs, r.Errors, tail(r.Trace, 6000), r.Stderr)
}

// SippScenario returns the path of a scenario: names without a "/" are
// taken from conformance/testdata/sipp.
func SippScenario(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	return filepath.Join(TestdataDir(), "sipp", name)
}

// SippCommand is `sipp ARGS...` run from dir, with the flags every sipp on
// loopback needs added in front unless args has them: -cp FREE (the
// control port, else sipp takes 8888 and two sipps clash), -i, -mi and -ci
// 127.0.0.1 (signalling, media and control on loopback, not the host's
// address), -nostdin (no terminal), and -default_behaviors all,-bye (a
// MESSAGE "call" that failed is not followed by a BYE).
func SippCommand(dir string, args ...string) (*exec.Cmd, error) {
	var a []string
	if _, ok := flagValue(args, "-cp"); !ok {
		cp, err := PickPort("udp")
		if err != nil {
			return nil, err
		}
		a = append(a, "-cp", strconv.Itoa(cp))
	}
	for _, f := range []string{"-i", "-mi", "-ci"} {
		if _, ok := flagValue(args, f); !ok {
			a = append(a, f, "127.0.0.1")
		}
	}
	a = append(a, "-nostdin")
	_, nd := flagValue(args, "-nd")
	if _, ok := flagValue(args, "-default_behaviors"); !ok && !nd {
		a = append(a, "-default_behaviors", "all,-bye")
	}
	cmd := exec.Command("sipp", append(a, args...)...)
	cmd.Dir = dir
	return cmd, nil
}

// sippCmd builds the sipp command of RunSippIn and NewSippUAS: scenario
// and remote, -p FREE unless given, the UAC defaults, defaults for the
// scenario's keys, traces in dir, then args (see SippCommand for the
// loopback flags). It returns the command and the SIP port.
func sippCmd(dir, scenario, remote string, uac bool, args []string) (*exec.Cmd, int, error) {
	has := func(flag string) (string, bool) { return flagValue(args, flag) }
	path := SippScenario(scenario)
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("sipp scenario: %w", err)
	}
	a := []string{"-sf", path}
	if remote != "" {
		a = append(a, remote)
	}
	port := 0
	if p, ok := has("-p"); ok {
		port, _ = strconv.Atoi(p)
	} else {
		if port, err = PickPort("udp+tcp"); err != nil {
			return nil, 0, err
		}
		a = append(a, "-p", strconv.Itoa(port))
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
	cmd, err := SippCommand(dir, append(a, args...)...)
	return cmd, port, err
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

// RunSippIn (RunSipp in tests) runs one sipp client to completion
// (killed after 60 s), in a new directory under dir:
//
//	cd DIR/sipp-N && sipp -cp FREE -i 127.0.0.1 -mi 127.0.0.1 -ci 127.0.0.1 \
//	    -nostdin -default_behaviors all,-bye \
//	    -sf conformance/testdata/sipp/SCENARIO REMOTE -p FREE \
//	    -m 1 -timeout 10s -timeout_error -key K V... \
//	    -trace_logs -log_file logs.log -trace_msg -message_file messages.log \
//	    -trace_err -error_file errors.log ARGS...
//
// Flags given in args replace the defaults -p, -cp, -i, -mi, -ci, -m,
// -timeout (so pass "-p", "5099" to send from a known port). -key values
// missing from args come from SippKeyDefaults (register.xml's
// contact_host_port becomes 127.0.0.1:PORT). remote is "127.0.0.1:PORT".
// With -au (digest auth) and message_uac.xml, it adds
// -auth_uri USER@TO_DOMAIN (from -s and the to_domain key) unless given, so
// the digest response covers the Request-URI as real UAs do (sipp's own
// default is remote_ip:port). register.xml's Request-URI is
// sip:REMOTE_IP:PORT, which matches sipp's default.
// A call that fails is not an error: look at ExitCode, or Err. The error
// is for a sipp that could not be run.
//
// Examples (test layer):
//
//	peers.RunSipp(t, "register.xml", kam.Addr(), "-s", "bob").Check(t)
//	peers.RunSipp(t, "register.xml", stox, "-s", "bob", "-au", "bob", "-ap", "pw").Check(t)
//	peers.RunSipp(t, "message_uac.xml", kam.Addr(), "-s", "alice", "-key", "to_domain", "localhost",
//	    "-key", "from_user", "carol", "-key", "from_domain", "kam.localhost",
//	    "-key", "body", "hi", "-key", "expect", "404").Check(t)
func RunSippIn(dir, scenario, remote string, args ...string) (SippResult, error) {
	_, fixedPort := flagValue(args, "-p")
	for attempt := 1; ; attempt++ {
		r, err := runSipp(dir, scenario, remote, args)
		// See NewSippUAS: a port PickPort found free may be gone by now.
		if err == nil && !fixedPort && attempt < 5 && r.ExitCode != 0 && strings.Contains(r.Stdout+r.Stderr, "Unable to bind") {
			continue
		}
		return r, err
	}
}

func runSipp(parent, scenario, remote string, args []string) (SippResult, error) {
	dir, err := os.MkdirTemp(parent, "sipp-")
	if err != nil {
		return SippResult{}, err
	}
	cmd, _, err := sippCmd(dir, scenario, remote, true, args)
	if err != nil {
		return SippResult{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := SippResult{
		Command: "sipp " + strings.Join(cmd.Args[1:], " "),
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
		return r, fmt.Errorf("sipp: %w", err)
	}
	return r, nil
}

// SippUAS is a sipp server running in the background.
type SippUAS struct {
	Dir string
	Log string // the -trace_logs file with the "GOT MESSAGE ..." entries

	port int
	args []string
	p    *Proc
}

// NewSippUAS (StartSippUAS in tests) starts a sipp server in the
// background, in a new directory under dir:
//
//	cd DIR/uas-N && sipp -cp FREE -i 127.0.0.1 -mi 127.0.0.1 -ci 127.0.0.1 \
//	    -nostdin -default_behaviors all,-bye -sf conformance/testdata/sipp/SCENARIO \
//	    -p FREE -key K V... -trace_logs -log_file logs.log -trace_msg ... -trace_err ... ARGS...
//
// with stdout+stderr in sipp.out, listening on 127.0.0.1:Port() (UDP;
// pass "-t", "t1" for TCP). Scenario is usually "message_uas.xml" (200 OK)
// or "message_uas_status.xml" with "-key", "status", "486". It returns
// once its port is bound (UDP) or accepts (TCP). Stop ends it.
func NewSippUAS(dir, scenario string, args ...string) (*SippUAS, error) {
	_, fixedPort := flagValue(args, "-p")
	for attempt := 1; ; attempt++ {
		udir, err := os.MkdirTemp(dir, "uas-")
		if err != nil {
			return nil, err
		}
		cmd, port, err := sippCmd(udir, scenario, "", false, args)
		if err != nil {
			return nil, err
		}
		u := &SippUAS{Dir: udir, Log: filepath.Join(udir, "logs.log"), port: port, args: cmd.Args[1:]}
		err = u.start(cmd)
		if err == nil {
			return u, nil
		}
		u.Stop()
		// PickPort's port can be taken by another process (a parallel test
		// binary, an ephemeral client port) before sipp binds it; a fresh
		// pair of ports is the cure, unless the caller chose the port.
		out := LogTail(filepath.Join(udir, "sipp.out"), 3000)
		if !fixedPort && attempt < 5 && strings.Contains(out, "Unable to bind") {
			continue
		}
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
}

// start runs sipp and waits until its port is bound (UDP) or accepts (TCP).
func (u *SippUAS) start(cmd *exec.Cmd) error {
	var err error
	if u.p, err = StartProc("sipp uas", cmd, filepath.Join(u.Dir, "sipp.out")); err != nil {
		return err
	}
	if v, _ := flagValue(u.args, "-t"); strings.HasPrefix(v, "t") {
		if err := WaitTCP(u.Addr(), 5*time.Second); err != nil {
			return fmt.Errorf("sipp UAS did not start: %w", err)
		}
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for !udpBound(u.port) {
		if u.p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("sipp UAS did not start (%v): sipp %s", u.p.Err(), strings.Join(u.args, " "))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The port may be bound by someone else while sipp fails to bind it.
	select {
	case <-u.p.Done():
		return fmt.Errorf("sipp UAS exited at start (%v): sipp %s", u.p.Err(), strings.Join(u.args, " "))
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

// NewSippUASRegistered (StartSippUASRegistered in tests) first registers
// user (with password, if the registrar challenges; "" for none) at
// registrar ("127.0.0.1:PORT") from the port the UAS will use, with
// register.xml, then starts the UAS there (see NewSippUAS): stox, like a
// NAT-aware registrar, sends to the REGISTER's source address. user may be
// "user@domain" to set the AOR domain (default "localhost"). The Contact
// is sip:USER@127.0.0.1:PORT. The flags -au, -ap, -auth_uri and -t in args
// also apply to the REGISTER (e.g. "-au", "authuser" when the auth user
// differs from the AOR user).
func NewSippUASRegistered(dir, scenario, registrar, user, password string, args ...string) (*SippUAS, error) {
	var reg []string
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
	// The REGISTER is sent from the UAS's own port (registrars target the
	// source address), so that port is fixed for both sipp runs and can be
	// taken by someone else in between: then unregister it and start over
	// on a fresh port.
	for attempt := 1; ; attempt++ {
		port, err := PickPort("udp+tcp")
		if err != nil {
			return nil, err
		}
		r, err := RunSippIn(dir, "register.xml", registrar, append([]string{"-p", strconv.Itoa(port)}, reg...)...)
		if err == nil {
			err = r.Err()
		}
		if err != nil && attempt < 5 && strings.Contains(r.Stdout+r.Stderr, "Unable to bind") {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("register %s: %w", user, err)
		}
		u, err := NewSippUAS(dir, scenario, append([]string{"-p", strconv.Itoa(port)}, args...)...)
		if err != nil && attempt < 5 && strings.Contains(err.Error(), "Unable to bind") {
			unreg := append([]string{"-key", "expires", "0", "-key", "contact_host_port", "127.0.0.1:" + strconv.Itoa(port)}, reg...)
			if r, err := RunSippIn(dir, "register.xml", registrar, unreg...); err != nil || r.Err() != nil {
				return nil, fmt.Errorf("unregister %s after a lost port: %w", user, firstError(err, r.Err()))
			}
			continue
		}
		return u, err
	}
}

// Port is the UAS's SIP port on 127.0.0.1.
func (u *SippUAS) Port() int { return u.port }

// Addr is "127.0.0.1:Port()".
func (u *SippUAS) Addr() string { return fmt.Sprintf("127.0.0.1:%d", u.port) }

// Stop stops sipp (SIGTERM, then SIGKILL after 3 s).
func (u *SippUAS) Stop() { u.p.Stop(3 * time.Second) }

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

// AwaitMessages waits until the UAS has logged at least n MESSAGEs and
// returns them all.
func (u *SippUAS) AwaitMessages(n int, timeout time.Duration) ([]SippMessage, error) {
	deadline := time.Now().Add(timeout)
	for {
		ms := u.ParsedMessages()
		if len(ms) >= n {
			return ms, nil
		}
		if time.Now().After(deadline) {
			return ms, fmt.Errorf("sipp UAS: %d of %d MESSAGEs after %v: %v\nerrors:\n%s", len(ms), n, timeout, ms,
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

// firstError returns the first non-nil error.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
