package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// The interop matrix: every case below runs against every XMPP-side peer
// combination it applies to, as subtest TestMatrix/<case>/<combination>.
// The SIP side is always sipp. A case is a function matrixCASE whose doc
// comment names, on its first line, the specification section it checks
// (conformance/report reads it from there); a combination that cannot
// express a case (go-sendxmpp sends no IQ and shows no error stanza) is
// skipped with a reason starting "n/a:", which the report shows as not
// applicable. Each case writes its transcript — the SIP messages sipp
// sent and received (-trace_msg), the stanzas the XMPP client sent and
// saw, and stox's log — to $STOX_TRANSCRIPTS/<test name>.txt (default: a
// temp dir of the test).

// capability is what a case needs from the XMPP client.
type capability int

const (
	capSend    capability = 1 << iota // send a chat message
	capReceive                        // receive messages, with their sender
	capIQ                             // send an IQ and read the answer
	capErrors                         // see <message type='error'> and its condition
)

// matrixCombo is one XMPP-side peer combination.
type matrixCombo struct {
	name   string // column name: server+client
	server string // "prosody" or "ejabberd"
	client string // "slixmpp" or "go-sendxmpp"
	caps   capability
}

var matrixCombos = []matrixCombo{
	{"prosody+slixmpp", "prosody", "slixmpp", capSend | capReceive | capIQ | capErrors},
	{"ejabberd+slixmpp", "ejabberd", "slixmpp", capSend | capReceive | capIQ | capErrors},
	{"prosody+go-sendxmpp", "prosody", "go-sendxmpp", capSend | capReceive},
}

// matrixCase is one row of the matrix.
type matrixCase struct {
	name     string // matrixNAME is the function
	needs    capability
	accounts map[string]string // SIP accounts at stox
	run      func(t *testing.T, w *matrixWorld)
}

var matrixCases = []matrixCase{
	{"XEP0100DiscoIdentity", capIQ, nil, matrixXEP0100DiscoIdentity},
	{"RFC7572XMPPToSIP", capSend, map[string]string{"bob": "bobpw"}, matrixRFC7572XMPPToSIP},
	{"RFC7572SIPToXMPP", capReceive, map[string]string{"bob": "bobpw"}, matrixRFC7572SIPToXMPP},
	{"RFC7247SIP486ToXMPP", capSend | capErrors, map[string]string{"bob": "bobpw"}, matrixRFC7247SIP486ToXMPP},
	{"RFC7247AddressRoundTrip", capSend | capReceive, map[string]string{"o'malley": "pw"}, matrixRFC7247AddressRoundTrip},
}

func TestMatrix(t *testing.T) {
	for _, c := range matrixCases {
		t.Run(c.name, func(t *testing.T) {
			for _, combo := range matrixCombos {
				t.Run(combo.name, func(t *testing.T) {
					if missing := c.needs &^ combo.caps; missing != 0 {
						t.Skipf("n/a: %s cannot %s", combo.client, capNames(missing))
					}
					w := startMatrixWorld(t, combo, c)
					defer w.tr.write(t)
					c.run(t, w)
				})
			}
		})
	}
}

func capNames(c capability) string {
	var out []string
	for _, x := range []struct {
		c    capability
		name string
	}{{capSend, "send messages"}, {capReceive, "receive messages"}, {capIQ, "send IQs"}, {capErrors, "show error stanzas"}} {
		if c&x.c != 0 {
			out = append(out, x.name)
		}
	}
	return strings.Join(out, " or ")
}

// matrixWorld is one XMPP server (domain localhost) with stox as component
// sip.localhost serving SIP domain sip.localhost, and XMPP user alice on
// the combination's client.
type matrixWorld struct {
	combo  matrixCombo
	server xmppServer
	stox   *Stox
	alice  *peers.XMPPClient       // slixmpp
	listen *peers.SendXMPPListener // go-sendxmpp -l, when the case receives
	tr     *transcript
}

func startMatrixWorld(t *testing.T, combo matrixCombo, c matrixCase) *matrixWorld {
	t.Helper()
	peers.Require(t, "sipp")
	w := &matrixWorld{combo: combo, tr: newTranscript(t)}
	switch {
	case combo.server == "ejabberd":
		w.server = peers.StartEjabberd(t, compDomain, "secret")
	case combo.client == "go-sendxmpp":
		peers.Require(t, "go-sendxmpp")
		w.server = peers.StartProsodyTLS(t, compDomain, "secret")
	default:
		w.server = peers.StartProsody(t, compDomain, "secret")
	}
	w.server.Register(t, "alice", "alicepw")
	w.stox = StartStox(t, StoxConfig{XMPPServer: w.server.ComponentAddr(), Domain: compDomain, SIPDomain: sipDomain, Accounts: c.accounts})
	switch combo.client {
	case "slixmpp":
		w.alice = peers.StartXMPPClientAt(t, w.server.C2SAddr(), w.server.JID("alice"), "alicepw")
	case "go-sendxmpp":
		if c.needs&capReceive != 0 {
			w.listen = peers.StartSendXMPPListener(t, w.server.C2SAddr(), w.server.JID("alice"), "alicepw")
		}
	}
	w.tr.source("stox log (tail)", func() string { return tail(w.stox.Logs(), 200) })
	w.tr.source(combo.server+" log (tail)", func() string { return tail(w.server.LogText(), 100) })
	if w.listen != nil {
		w.tr.source("go-sendxmpp -l -d output (the stanzas it received)", func() string {
			b, _ := os.ReadFile(w.listen.Log)
			return string(b)
		})
	}
	return w
}

// send sends a chat message from alice and returns its id ("" for
// go-sendxmpp, which does not tell).
func (w *matrixWorld) send(t *testing.T, to, body string, opts ...peers.MsgOption) string {
	t.Helper()
	if w.alice != nil {
		id := w.alice.Send(t, to, body, opts...)
		w.tr.addf("XMPP sent (slixmpp alice)", "<message to=%q type=\"chat\" id=%q><body>%s</body></message>", to, id, xmlEscape(body))
		return id
	}
	r := peers.SendXMPP(t, w.server.C2SAddr(), w.server.JID("alice"), "alicepw", to, body)
	w.tr.addf("XMPP sent (go-sendxmpp alice)", "$ %s <<< %q\n%s", r.Command, body, r.Output)
	return ""
}

// nextMessage returns the next message alice received. For go-sendxmpp
// only From (a bare JID) and Body are known; Kind is "message".
func (w *matrixWorld) nextMessage(t *testing.T, timeout time.Duration) peers.Stanza {
	t.Helper()
	if w.alice != nil {
		m := w.alice.NextMessage(t, timeout)
		w.tr.addf("XMPP received (slixmpp alice)", "%s", m.XML)
		return m
	}
	m := w.listen.NextMessage(t, timeout)
	w.tr.addf("XMPP received (go-sendxmpp alice)", "%s", m.Line)
	return peers.Stanza{Kind: "message", From: m.From, Body: m.Body}
}

// uas registers SIP user (password pw) at stox from a sipp UAS running
// scenario and records its message trace in the transcript.
func (w *matrixWorld) uas(t *testing.T, scenario, user, pw string, args ...string) *peers.SippUAS {
	t.Helper()
	u := peers.StartSippUASRegistered(t, scenario, w.stox.SIPAddr(), user+"@"+sipDomain, pw, args...)
	w.tr.source("SIP: sipp UAS "+user+" (-trace_msg)", u.Trace)
	return u
}

// sipSend is sippSend with its message trace in the transcript.
func (w *matrixWorld) sipSend(t *testing.T, from, pw, user, domain, body string, expect int) {
	t.Helper()
	r := sippSend(t, w.stox, from, pw, user, domain, body, expect)
	w.tr.addf("SIP: sipp UAC "+from+" (-trace_msg)", "$ %s\n%s", r.Command, r.Trace)
}

// XEP-0100 §4.1 over a XEP-0114 §3 component link: once stox has done the
// handshake with the server, disco#info to the component shows the
// gateway/sip identity and the jabber:iq:gateway feature.
func matrixXEP0100DiscoIdentity(t *testing.T, w *matrixWorld) {
	res := w.alice.IQ(t, compDomain, "get", `<query xmlns="http://jabber.org/protocol/disco#info"/>`, 5*time.Second)
	w.tr.addf("XMPP iq (slixmpp alice)", "<iq type=\"get\" to=%q><query xmlns=\"http://jabber.org/protocol/disco#info\"/></iq>\n%s", compDomain, res.XML)
	if res.Type != "result" {
		t.Fatalf("disco#info: %s", res)
	}
	for _, want := range []string{`category="gateway"`, `type="sip"`, `var="jabber:iq:gateway"`} {
		if !strings.Contains(res.XML, want) {
			t.Errorf("disco#info lacks %s:\n%s", want, res.XML)
		}
	}
}

// RFC 7572 §5 (XMPP to SIP): alice's message reaches bob's registered
// contact as a MESSAGE with the body as text/plain, From the bare JID
// (with the resource as gr=), To the mapped SIP URI, and the thread as
// Call-ID.
func matrixRFC7572XMPPToSIP(t *testing.T, w *matrixWorld) {
	uas := w.uas(t, "message_uas.xml", "bob", "bobpw")
	w.send(t, "bob@"+compDomain, "hello bob", peers.MsgThread("thread-42"))
	m := uas.WaitMessages(t, 1, 10*time.Second)[0]
	if m.Body != "hello bob" {
		t.Errorf("body %q", m.Body)
	}
	if !strings.Contains(m.From, "sip:alice@localhost;gr=") {
		t.Errorf("From %q: want the bare JID with gr=resource (RFC 7572 §5)", m.From)
	}
	if !strings.Contains(m.To, "sip:bob@"+sipDomain) || !strings.Contains(m.RURI, "bob@") {
		t.Errorf("To %q, Request-URI %q: want sip:bob@%s", m.To, m.RURI, sipDomain)
	}
	if !strings.HasPrefix(m.ContentType, "text/plain") {
		t.Errorf("Content-Type %q", m.ContentType)
	}
	if w.alice != nil && m.CallID != "thread-42" {
		t.Errorf("Call-ID %q: want the XMPP thread (RFC 7572 §5)", m.CallID)
	}
}

// RFC 7572 §4 (SIP to XMPP): bob's MESSAGE is answered 202 and reaches
// alice from bob's JID with its text as body (type='normal' — or no type,
// which means normal — with the Call-ID as thread, where the client shows
// them).
func matrixRFC7572SIPToXMPP(t *testing.T, w *matrixWorld) {
	w.sipSend(t, "bob", "bobpw", "alice", "localhost", "hi alice", 202)
	m := w.nextMessage(t, 10*time.Second)
	if m.From != "bob@"+compDomain || m.Body != "hi alice" {
		t.Errorf("got %s: want from bob@%s body 'hi alice'", m, compDomain)
	}
	// ejabberd leaves out type='normal', the default (RFC 6121 §5.2.2).
	if w.alice != nil && ((m.Type != "normal" && m.Type != "") || m.Thread == "") {
		t.Errorf("got type %q thread %q: want type=normal and the Call-ID as thread (RFC 7572 §4)", m.Type, m.Thread)
	}
}

// RFC 7247 Table 3 (§7.2): bob's phone answers 486 Busy Here, and alice
// gets <message type='error'> recipient-unavailable for her message's id,
// from the JID she wrote to.
func matrixRFC7247SIP486ToXMPP(t *testing.T, w *matrixWorld) {
	w.uas(t, "message_uas_status.xml", "bob", "bobpw", "-key", "status", "486")
	id := w.send(t, "bob@"+compDomain, "are you there?")
	e := w.nextMessage(t, 10*time.Second)
	if e.Type != "error" || e.ErrorCondition != "recipient-unavailable" || e.ID != id || e.From != "bob@"+compDomain {
		t.Errorf("got %s, want error recipient-unavailable for id %s from bob@%s", e, id, compDomain)
	}
}

// RFC 7247 §6 with XEP-0106: SIP user o'malley is o\27malley@sip.localhost
// in XMPP, both ways: alice's message reaches sip:o'malley@sip.localhost,
// and o'malley's MESSAGE reaches alice from o\27malley@sip.localhost.
func matrixRFC7247AddressRoundTrip(t *testing.T, w *matrixWorld) {
	jid := `o\27malley@` + compDomain
	uas := w.uas(t, "message_uas.xml", "o'malley", "pw")
	w.send(t, jid, "to o'malley")
	m := uas.WaitMessages(t, 1, 10*time.Second)[0]
	if !strings.Contains(m.To, "sip:o'malley@"+sipDomain) || m.Body != "to o'malley" {
		t.Errorf("XMPP→SIP: To %q body %q, want sip:o'malley@%s", m.To, m.Body, sipDomain)
	}
	w.sipSend(t, "o'malley", "pw", "alice", "localhost", "from o'malley", 202)
	got := w.nextMessage(t, 10*time.Second)
	if got.From != jid || got.Body != "from o'malley" {
		t.Errorf("SIP→XMPP: from %q body %q, want %s", got.From, got.Body, jid)
	}
}

// transcript collects what crossed the wire in one case and writes it to
// $STOX_TRANSCRIPTS/<test name>.txt.
type transcript struct {
	name string
	dir  string

	mu      sync.Mutex
	entries []string
	sources []func() string
}

func newTranscript(t *testing.T) *transcript {
	dir := os.Getenv("STOX_TRANSCRIPTS")
	if dir == "" {
		dir = t.TempDir()
	}
	return &transcript{name: t.Name(), dir: dir}
}

// addf appends one entry under a heading, in order of events.
func (tr *transcript) addf(heading, format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.entries = append(tr.entries, fmt.Sprintf("== %s [%s]\n%s\n", heading, time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...)))
}

// source adds a section read when the transcript is written (logs, traces
// of processes still running).
func (tr *transcript) source(heading string, read func() string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.sources = append(tr.sources, func() string { return fmt.Sprintf("== %s\n%s\n", heading, read()) })
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._+-]+`)

// TranscriptFile is the file name of a test's transcript.
func TranscriptFile(testName string) string {
	return unsafeName.ReplaceAllString(strings.ReplaceAll(testName, "/", "__"), "_") + ".txt"
}

// write writes the transcript (deferred by the case, so it runs before the
// peers' cleanups remove their files).
func (tr *transcript) write(t *testing.T) {
	result := "PASS"
	if t.Failed() {
		result = "FAIL"
	}
	tr.mu.Lock()
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n# result: %s\n# written %s\n\n", tr.name, result, time.Now().Format(time.RFC3339))
	for _, e := range tr.entries {
		b.WriteString(e + "\n")
	}
	for _, s := range tr.sources {
		b.WriteString(s() + "\n")
	}
	tr.mu.Unlock()
	if err := os.MkdirAll(tr.dir, 0o755); err != nil {
		t.Errorf("transcript: %v", err)
		return
	}
	path := filepath.Join(tr.dir, TranscriptFile(tr.name))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Errorf("transcript: %v", err)
		return
	}
	t.Logf("transcript: %s", path)
}
