package peers

import (
	"os"
	"path/filepath"
	"time"

	"stox.dev/stox/internal/testenv"
)

// The test layer: each function here takes the running test, calls the
// plain function of the same peer with a temp dir of the test, registers
// the peer's stop with t.Cleanup, prints the tail of the peer's logs when
// the test has failed, and ends the test on error. A missing binary skips
// the test locally and fails it when CI=true (internal/testenv).

// TB is the part of testing.TB the test layer uses; *testing.T and
// *testing.B satisfy it. It is an interface of this package so that the
// package does not import testing.
type TB interface {
	Helper()
	Cleanup(func())
	Failed() bool
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Skip(args ...any)
	TempDir() string
}

// Require checks that every named binary is on PATH (or is an absolute path
// that exists). A missing one makes the test skip with "NAME not installed:
// ..." or, when the environment variable CI is "true", fail: CI must have
// run .ci/install-peers.sh.
func Require(t TB, bins ...string) {
	t.Helper()
	testenv.RequireBins(t, bins...)
}

// requirePython checks /usr/bin/python3 and the slixmpp module.
func requirePython(t TB) {
	t.Helper()
	if err := lookPython(); err != nil {
		testenv.Missing(t, "%v", err)
	}
}

// FreePort is PickPort, failing the test on error.
func FreePort(t TB, network string) int {
	t.Helper()
	return must(PickPort(network)).orFail(t)
}

// must holds a plain function's results until orFail gets the test:
// must(f(...)).orFail(t) is f's value, or the end of the test when f
// returned an error.
func must[V any](v V, err error) result[V] { return result[V]{v, err} }

type result[V any] struct {
	v   V
	err error
}

func (r result[V]) orFail(t TB) V {
	t.Helper()
	check(t, r.err)
	return r.v
}

// check ends the test when err is not nil.
func check(t TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// logOnFailure registers a cleanup that logs the tail of the given log
// files when the test failed. Register it before the stop cleanup so that it
// runs after it (cleanups run last-in first-out).
func logOnFailure(t TB, name string, paths ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range paths {
			t.Logf("--- %s log %s ---\n%s", name, p, LogTail(p, 6000))
		}
	})
}

// shortTempDir makes a temp dir with a short path (unix socket paths are
// limited to 108 bytes; t.TempDir's carry the test name) that is removed
// at cleanup.
func shortTempDir(t TB, prefix string) string {
	t.Helper()
	d := must(os.MkdirTemp("/tmp", prefix)).orFail(t)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// ---- Prosody ----

// StartProsody is NewProsody in a temp dir; cleanup stops Prosody.
func StartProsody(t TB, componentDomain, secret string, opts ...ProsodyOption) *Prosody {
	t.Helper()
	Require(t, "prosody", "prosodyctl")
	p := must(NewProsody(t.TempDir(), componentDomain, secret, opts...)).orFail(t)
	logOnFailure(t, "prosody", p.Log)
	t.Cleanup(func() { p.Close() })
	return p
}

// StartProsodyTLS is StartProsody with ProsodyTLS: STARTTLS offered on
// c2s, as go-sendxmpp needs.
func StartProsodyTLS(t TB, componentDomain, secret string, opts ...ProsodyOption) *Prosody {
	t.Helper()
	return StartProsody(t, componentDomain, secret, append(opts, ProsodyTLS())...)
}

// Start is Boot, failing the test on error.
func (p *Prosody) Start(t TB) { t.Helper(); check(t, p.Boot()) }

// Stop is Close.
func (p *Prosody) Stop(t TB) { t.Helper(); p.Close() }

// Register is AddUser, failing the test on error.
func (p *Prosody) Register(t TB, user, password string) {
	t.Helper()
	check(t, p.AddUser(user, password))
}

// WaitLog is AwaitLog, failing the test on timeout.
func (p *Prosody) WaitLog(t TB, substr string, timeout time.Duration) {
	t.Helper()
	check(t, p.AwaitLog(substr, timeout))
}

// ---- ejabberd ----

// StartEjabberd is NewEjabberd in a short temp dir; cleanup stops ejabberd.
func StartEjabberd(t TB, componentDomain, secret string) *Ejabberd {
	t.Helper()
	Require(t, "ejabberdctl", "erl")
	dir := shortTempDir(t, "stox-ejab-")
	logOnFailure(t, "ejabberd", filepath.Join(dir, "console.log"), filepath.Join(dir, "logs", "ejabberd.log"))
	e := must(NewEjabberd(dir, componentDomain, secret)).orFail(t)
	t.Cleanup(func() { e.Close() })
	return e
}

// Start is Boot, failing the test on error.
func (e *Ejabberd) Start(t TB) { t.Helper(); check(t, e.Boot()) }

// Stop is Close.
func (e *Ejabberd) Stop(t TB) { t.Helper(); e.Close() }

// Register is AddUser, failing the test on error.
func (e *Ejabberd) Register(t TB, user, password string) {
	t.Helper()
	check(t, e.AddUser(user, password))
}

// WaitLog is AwaitLog, failing the test on timeout.
func (e *Ejabberd) WaitLog(t TB, substr string, timeout time.Duration) {
	t.Helper()
	check(t, e.AwaitLog(substr, timeout))
}

// ---- Kamailio ----

// StartKamailio is NewKamailio in a short temp dir; cleanup stops Kamailio.
func StartKamailio(t TB, sipDomain string, xmppDomains []string, stoxAddr string, opts ...KamailioOption) *Kamailio {
	t.Helper()
	Require(t, "kamailio", "kamcmd")
	dir := shortTempDir(t, "kam")
	logOnFailure(t, "kamailio", filepath.Join(dir, "kamailio.log"))
	k := must(NewKamailio(dir, sipDomain, xmppDomains, stoxAddr, opts...)).orFail(t)
	t.Cleanup(k.Stop)
	return k
}

// Start is Boot, failing the test on error.
func (k *Kamailio) Start(t TB) { t.Helper(); check(t, k.Boot()) }

// Cmd is Kamcmd, failing the test on error.
func (k *Kamailio) Cmd(t TB, args ...string) string {
	t.Helper()
	return must(k.Kamcmd(args...)).orFail(t)
}

// ULDump is Cmd("ul.dump"): the location table.
func (k *Kamailio) ULDump(t TB) string {
	t.Helper()
	return k.Cmd(t, "ul.dump")
}

// WaitRegistered is AwaitRegistered, failing the test on timeout.
func (k *Kamailio) WaitRegistered(t TB, user string, timeout time.Duration) string {
	t.Helper()
	return must(k.AwaitRegistered(user, timeout)).orFail(t)
}

// WaitLog is AwaitLog, failing the test on timeout.
func (k *Kamailio) WaitLog(t TB, substr string, timeout time.Duration) {
	t.Helper()
	check(t, k.AwaitLog(substr, timeout))
}

// ---- sipp ----

// RunSipp is RunSippIn with a temp dir. It fails the test only when sipp
// cannot be run: call Check, or look at ExitCode.
func RunSipp(t TB, scenario string, remote string, args ...string) SippResult {
	t.Helper()
	Require(t, "sipp")
	return must(RunSippIn(t.TempDir(), scenario, remote, args...)).orFail(t)
}

// Check fails the test, showing the command, logs, errors and message
// trace, unless ExitCode is 0.
func (r SippResult) Check(t TB) {
	t.Helper()
	check(t, r.Err())
}

// StartSippUAS is NewSippUAS with a temp dir; cleanup stops sipp.
func StartSippUAS(t TB, scenario string, args ...string) *SippUAS {
	t.Helper()
	Require(t, "sipp")
	return sippUASCleanup(t, must(NewSippUAS(t.TempDir(), scenario, args...)).orFail(t))
}

// StartSippUASRegistered is NewSippUASRegistered with a temp dir; cleanup
// stops sipp.
func StartSippUASRegistered(t TB, scenario, registrar, user, password string, args ...string) *SippUAS {
	t.Helper()
	Require(t, "sipp")
	return sippUASCleanup(t, must(NewSippUASRegistered(t.TempDir(), scenario, registrar, user, password, args...)).orFail(t))
}

func sippUASCleanup(t TB, u *SippUAS) *SippUAS {
	logOnFailure(t, "sipp uas", filepath.Join(u.Dir, "sipp.out"), filepath.Join(u.Dir, "errors.log"), filepath.Join(u.Dir, "messages.log"))
	t.Cleanup(u.Stop)
	return u
}

// WaitMessages is AwaitMessages, failing the test on timeout.
func (u *SippUAS) WaitMessages(t TB, n int, timeout time.Duration) []SippMessage {
	t.Helper()
	return must(u.AwaitMessages(n, timeout)).orFail(t)
}

// ---- baresip ----

// StartBaresip is NewBaresip in a temp dir; cleanup stops baresip.
func StartBaresip(t TB, user, domain, password, registrar string, opts ...BaresipOption) *Baresip {
	t.Helper()
	Require(t, "baresip")
	dir := t.TempDir()
	logOnFailure(t, "baresip", filepath.Join(dir, "baresip.log"), filepath.Join(dir, "events.log"))
	b := must(NewBaresip(dir, user, domain, password, registrar, opts...)).orFail(t)
	t.Cleanup(b.Stop)
	return b
}

// Command is Do, failing the test on error.
func (b *Baresip) Command(t TB, cmd, params string) map[string]any {
	t.Helper()
	return must(b.Do(cmd, params)).orFail(t)
}

// SendMessage is Message, failing the test on error.
func (b *Baresip) SendMessage(t TB, to, text string) {
	t.Helper()
	check(t, b.Message(to, text))
}

// WaitEvent is AwaitEvent, failing the test on timeout.
func (b *Baresip) WaitEvent(t TB, typ string, timeout time.Duration) map[string]any {
	t.Helper()
	return must(b.AwaitEvent(typ, timeout)).orFail(t)
}

// WaitRegistered is AwaitRegistered, failing the test on timeout.
func (b *Baresip) WaitRegistered(t TB, timeout time.Duration) {
	t.Helper()
	check(t, b.AwaitRegistered(timeout))
}

// WaitLog is AwaitLog, failing the test on timeout.
func (b *Baresip) WaitLog(t TB, substr string, timeout time.Duration) {
	t.Helper()
	check(t, b.AwaitLog(substr, timeout))
}

// ---- go-sendxmpp ----

// SendXMPP is RunSendXMPP in a temp dir, failing the test unless
// go-sendxmpp exits 0.
func SendXMPP(t TB, c2sAddr, bareJID, password, to, body string) SendXMPPResult {
	t.Helper()
	Require(t, "go-sendxmpp")
	return must(RunSendXMPP(t.TempDir(), c2sAddr, bareJID, password, to, body)).orFail(t)
}

// StartSendXMPPListener is NewSendXMPPListener in a temp dir; cleanup
// stops it.
func StartSendXMPPListener(t TB, c2sAddr, bareJID, password string) *SendXMPPListener {
	t.Helper()
	Require(t, "go-sendxmpp")
	dir := t.TempDir()
	logOnFailure(t, "go-sendxmpp -l "+bareJID, filepath.Join(dir, "go-sendxmpp.log"))
	l := must(NewSendXMPPListener(dir, c2sAddr, bareJID, password)).orFail(t)
	t.Cleanup(l.Stop)
	return l
}

// NextMessage is AwaitMessage, failing the test on timeout.
func (l *SendXMPPListener) NextMessage(t TB, timeout time.Duration) SendXMPPMessage {
	t.Helper()
	return must(l.AwaitMessage(timeout)).orFail(t)
}

// ---- slixmpp client ----

// StartXMPPClient is StartXMPPClientAt for an account of p (p.Register).
func StartXMPPClient(t TB, p *Prosody, user, password string, opts ...XMPPClientOption) *XMPPClient {
	t.Helper()
	return StartXMPPClientAt(t, p.C2SAddr(), user+"@"+p.Domain, password, opts...)
}

// StartXMPPClientAt is NewXMPPClient in a temp dir; cleanup quits it.
func StartXMPPClientAt(t TB, c2sAddr, bareJID, password string, opts ...XMPPClientOption) *XMPPClient {
	t.Helper()
	requirePython(t)
	dir := t.TempDir()
	c := must(NewXMPPClient(dir, c2sAddr, bareJID, password, opts...)).orFail(t)
	logOnFailure(t, "xmppclient "+bareJID, c.Log)
	t.Cleanup(c.Quit)
	return c
}

// Send is Message, failing the test on error.
func (c *XMPPClient) Send(t TB, to, body string, opts ...MsgOption) string {
	t.Helper()
	return must(c.Message(to, body, opts...)).orFail(t)
}

// SendRaw is Raw, failing the test on error.
func (c *XMPPClient) SendRaw(t TB, xml string) {
	t.Helper()
	check(t, c.Raw(xml))
}

// SendPresence is Presence, failing the test on error.
func (c *XMPPClient) SendPresence(t TB, to, typ, show, status string) {
	t.Helper()
	check(t, c.Presence(to, typ, show, status))
}

// ReplyError is ErrorReply, failing the test on error.
func (c *XMPPClient) ReplyError(t TB, to, id, condition, typ string) {
	t.Helper()
	check(t, c.ErrorReply(to, id, condition, typ))
}

// IQ is Query, failing the test if the client cannot send it (a timeout
// is Type "timeout", not a failure).
func (c *XMPPClient) IQ(t TB, to, typ, payloadXML string, timeout time.Duration) Stanza {
	t.Helper()
	return must(c.Query(to, typ, payloadXML, timeout)).orFail(t)
}

// Next is Await(""), failing the test on timeout.
func (c *XMPPClient) Next(t TB, timeout time.Duration) Stanza {
	t.Helper()
	return must(c.Await("", timeout)).orFail(t)
}

// NextMessage is Await("message"), failing the test on timeout.
func (c *XMPPClient) NextMessage(t TB, timeout time.Duration) Stanza {
	t.Helper()
	return must(c.Await("message", timeout)).orFail(t)
}

// NextPresence is Await("presence"), failing the test on timeout.
func (c *XMPPClient) NextPresence(t TB, timeout time.Duration) Stanza {
	t.Helper()
	return must(c.Await("presence", timeout)).orFail(t)
}

// Collect is AwaitN(""), failing the test if fewer came.
func (c *XMPPClient) Collect(t TB, n int, timeout time.Duration) []Stanza {
	t.Helper()
	return must(c.AwaitN("", n, timeout)).orFail(t)
}

// CollectMessages is AwaitN("message"), failing the test if fewer came.
func (c *XMPPClient) CollectMessages(t TB, n int, timeout time.Duration) []Stanza {
	t.Helper()
	return must(c.AwaitN("message", n, timeout)).orFail(t)
}

// ---- calls (baresip_call.go, wav.go) ----

// Call is Dial, failing the test on error.
func (b *Baresip) Call(t TB, uri string) { t.Helper(); check(t, b.Dial(uri)) }

// WaitNextEvent is NextEvent, failing the test on timeout.
func (b *Baresip) WaitNextEvent(t TB, typ string, timeout time.Duration) map[string]any {
	t.Helper()
	return must(b.NextEvent(typ, timeout)).orFail(t)
}

// CheckRecordedTone checks that baresip's latest recording (Recordings)
// holds a tone of hz (WAVStats.CheckTone) and returns its stats.
func (b *Baresip) CheckRecordedTone(t TB, hz float64) WAVStats {
	t.Helper()
	recs := b.Recordings()
	if len(recs) == 0 {
		t.Fatalf("baresip %s: no recording in %s/rec (BaresipRecord or BaresipTone not set?)", b.AOR, b.Dir)
	}
	s := must(AnalyzeWAV(recs[len(recs)-1])).orFail(t)
	check(t, s.CheckTone(hz))
	return s
}
