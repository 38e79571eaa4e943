package peers

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Stanza is one stanza received by an XMPPClient, or the answer to IQ.
// Kind is "message", "presence" or "iq"; Type is the raw type attribute
// ("" when absent); ErrorCondition is the local name of the RFC 6120
// condition element (e.g. "item-not-found") and ErrorType its type
// attribute ("cancel", "wait", ...); XML is the whole stanza as serialized
// by slixmpp.
type Stanza struct {
	Kind           string `json:"kind"`
	ID             string `json:"id"`
	From           string `json:"from"`
	To             string `json:"to"`
	Type           string `json:"type"`
	Body           string `json:"body"`
	Subject        string `json:"subject"`
	Thread         string `json:"thread"`
	Lang           string `json:"lang"`
	ErrorCondition string `json:"error_condition"`
	ErrorType      string `json:"error_type"`
	ErrorText      string `json:"error_text"`
	Show           string `json:"show"`   // presence only
	Status         string `json:"status"` // presence only
	XML            string `json:"xml"`
}

// String is a one-line summary for test logs.
func (s Stanza) String() string {
	return fmt.Sprintf("%s type=%q id=%q from=%q to=%q body=%q err=%s/%s", s.Kind, s.Type, s.ID, s.From, s.To, s.Body, s.ErrorType, s.ErrorCondition)
}

// line is one JSON line from xmppclient.py.
type line struct {
	Stanza
	Seq    int    `json:"seq"`
	JID    string `json:"jid"`
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// XMPPClient is a scripted XMPP client: a long-lived
//
//	/usr/bin/python3 conformance/testdata/xmppclient.py --jid USER@localhost/test \
//	    --password PW --host 127.0.0.1 --port C2S [--auto-error COND:TYPE] \
//	    [--subscriptions accept|approve|decline]
//
// process (slixmpp, no TLS), started by NewXMPPClient (StartXMPPClient
// and StartXMPPClientAt in tests), that logs in, gets its roster, sends initial
// presence, prints a JSON line per received message and presence on stdout
// and takes JSON commands on stdin (the protocol is described at the top of
// xmppclient.py). Its stderr goes to Dir/xmppclient-USER.log. It
// auto-accepts subscription requests (and subscribes back) unless told
// otherwise with WithSubscriptions.
//
// Received stanzas queue up without limit; Await and AwaitN (Next,
// NextMessage and Collect in tests) take them in order. The client's own presence echo is not reported.
type XMPPClient struct {
	JID  string // full JID once logged in, e.g. "alice@localhost/test"
	Bare string // "alice@localhost"
	Dir  string
	Log  string // stderr of the python process

	p     *Proc
	stdin io.WriteCloser

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []Stanza
	waiters map[int]chan line
	seq     int
	closed  bool
	exitMsg string
}

// XMPPClientOption changes NewXMPPClient.
type XMPPClientOption func(*xmppClientOpts)

type xmppClientOpts struct {
	resource      string
	autoError     string
	timeout       time.Duration
	subscriptions SubscriptionPolicy
}

// SubscriptionPolicy is what an XMPPClient does with a subscription request
// (<presence type='subscribe'/>) it receives; the request is reported
// (queued as a presence stanza) in every case.
type SubscriptionPolicy string

const (
	// SubscriptionsAccept approves the request and subscribes back (the default).
	SubscriptionsAccept SubscriptionPolicy = "accept"
	// SubscriptionsApprove approves the request (<presence type='subscribed'/>)
	// and does not subscribe back.
	SubscriptionsApprove SubscriptionPolicy = "approve"
	// SubscriptionsDecline refuses it: <presence type='unsubscribed'/> (RFC 6121 §3.2).
	SubscriptionsDecline SubscriptionPolicy = "decline"
)

// WithSubscriptions sets what the client does with subscription requests
// (default SubscriptionsAccept).
func WithSubscriptions(p SubscriptionPolicy) XMPPClientOption {
	return func(o *xmppClientOpts) { o.subscriptions = p }
}

// WithResource sets the resource (default "test").
func WithResource(r string) XMPPClientOption { return func(o *xmppClientOpts) { o.resource = r } }

// WithAutoError makes the client answer every received non-error message
// with <message type="error" id=SAME to=ITS-FROM><error type=typ><condition/>
// </error></message> (e.g. "item-not-found", "cancel"). The received message
// is still reported.
func WithAutoError(condition, typ string) XMPPClientOption {
	return func(o *xmppClientOpts) { o.autoError = condition + ":" + typ }
}

// WithLoginTimeout sets how long NewXMPPClient waits for "ready" (20 s;
// python and slixmpp take about 0.5 s to start on an idle machine).
func WithLoginTimeout(d time.Duration) XMPPClientOption {
	return func(o *xmppClientOpts) { o.timeout = d }
}

// NewXMPPClient starts xmppclient.py in dir as bareJID with password
// against c2sAddr ("127.0.0.1:PORT") and returns once it is logged in and
// has sent initial presence (error after 20 s or on failed auth). The
// account must exist. Quit ends it.
func NewXMPPClient(dir, c2sAddr, bareJID, password string, opts ...XMPPClientOption) (*XMPPClient, error) {
	o := xmppClientOpts{resource: "test", timeout: 20 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	host, port, ok := strings.Cut(c2sAddr, ":")
	if !ok {
		return nil, fmt.Errorf("xmppclient: bad address %q", c2sAddr)
	}
	user, _, _ := strings.Cut(bareJID, "@")
	c := &XMPPClient{Bare: bareJID, Dir: dir, Log: filepath.Join(dir, "xmppclient-"+user+".log"), waiters: map[int]chan line{}}
	c.cond = sync.NewCond(&c.mu)
	args := []string{"-u", filepath.Join(TestdataDir(), "xmppclient.py"),
		"--jid", bareJID + "/" + o.resource, "--password", password, "--host", host, "--port", port}
	if o.autoError != "" {
		args = append(args, "--auto-error", o.autoError)
	}
	if o.subscriptions != "" {
		args = append(args, "--subscriptions", string(o.subscriptions))
	}
	cmd := exec.Command(python3, args...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if c.p, err = StartProc("xmppclient "+bareJID, cmd, c.Log); err != nil {
		return nil, err
	}
	ready := make(chan line, 1)
	go c.read(stdout, ready)
	select {
	case l := <-ready:
		if l.Kind != "ready" {
			c.Quit()
			return nil, fmt.Errorf("xmppclient %s: login failed (%s)\n%s", bareJID, l.Kind, LogTail(c.Log, 3000))
		}
		c.JID = l.JID
		return c, nil
	case <-time.After(o.timeout):
		c.Quit()
		return nil, fmt.Errorf("xmppclient %s: not ready after %v\n%s", bareJID, o.timeout, LogTail(c.Log, 3000))
	}
}

func (c *XMPPClient) read(r io.Reader, ready chan line) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			continue // stray output
		}
		switch {
		case l.Kind == "ready" || l.Kind == "failed_auth":
			select {
			case ready <- l:
			default:
			}
		case l.Kind == "disconnected":
			c.mu.Lock()
			c.exitMsg = "disconnected: " + l.Reason
			c.mu.Unlock()
		case l.Kind == "ack" || (l.Kind == "iq" && l.Seq != 0):
			c.mu.Lock()
			ch := c.waiters[l.Seq]
			delete(c.waiters, l.Seq)
			c.mu.Unlock()
			if ch != nil {
				ch <- l
			}
		default:
			c.mu.Lock()
			c.queue = append(c.queue, l.Stanza)
			c.cond.Broadcast()
			c.mu.Unlock()
		}
	}
	c.mu.Lock()
	c.closed = true
	for _, ch := range c.waiters {
		close(ch)
	}
	c.waiters = map[int]chan line{}
	c.cond.Broadcast()
	c.mu.Unlock()
	select {
	case ready <- line{Stanza: Stanza{Kind: "exited"}}:
	default:
	}
}

// command sends a command and waits for its answer line.
func (c *XMPPClient) command(cmd map[string]any, timeout time.Duration) (line, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return line{}, fmt.Errorf("xmppclient %s: process has ended (%s)\n%s", c.Bare, c.exitMsg, LogTail(c.Log, 2000))
	}
	c.seq++
	seq := c.seq
	ch := make(chan line, 1)
	c.waiters[seq] = ch
	c.mu.Unlock()
	cmd["seq"] = seq
	b, _ := json.Marshal(cmd)
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		return line{}, fmt.Errorf("xmppclient %s: write command: %w", c.Bare, err)
	}
	select {
	case l, ok := <-ch:
		if !ok {
			return line{}, fmt.Errorf("xmppclient %s: process ended during %v\n%s", c.Bare, cmd["cmd"], LogTail(c.Log, 2000))
		}
		if l.Error != "" {
			return l, fmt.Errorf("xmppclient %s: %v failed: %s", c.Bare, cmd["cmd"], l.Error)
		}
		return l, nil
	case <-time.After(timeout):
		return line{}, fmt.Errorf("xmppclient %s: no answer to %v after %v", c.Bare, cmd["cmd"], timeout)
	}
}

// Msg describes a message to send; zero fields are left out (Type defaults
// to "chat", ID to a fresh slixmpp id).
type Msg struct {
	Type, ID, Subject, Thread, Lang string
}

// MsgOption changes a message sent with Send.
type MsgOption func(*Msg)

// MsgType sets the type attribute ("chat", "normal", "headline", "groupchat").
func MsgType(typ string) MsgOption { return func(m *Msg) { m.Type = typ } }

// MsgID sets the id attribute.
func MsgID(id string) MsgOption { return func(m *Msg) { m.ID = id } }

// MsgSubject adds <subject>.
func MsgSubject(s string) MsgOption { return func(m *Msg) { m.Subject = s } }

// MsgThread adds <thread>.
func MsgThread(s string) MsgOption { return func(m *Msg) { m.Thread = s } }

// MsgLang sets xml:lang on the message.
func MsgLang(s string) MsgOption { return func(m *Msg) { m.Lang = s } }

// Message sends <message to=to type=chat><body>body</body></message>
// (empty body: no <body>) and returns its id once written to the stream.
func (c *XMPPClient) Message(to, body string, opts ...MsgOption) (string, error) {
	m := Msg{Type: "chat"}
	for _, f := range opts {
		f(&m)
	}
	l, err := c.command(map[string]any{"cmd": "send", "to": to, "body": body, "type": m.Type,
		"id": m.ID, "subject": m.Subject, "thread": m.Thread, "lang": m.Lang}, 5*time.Second)
	return l.ID, err
}

// Raw writes xml as is to the XML stream (e.g. a hand-made <message/>).
func (c *XMPPClient) Raw(xml string) error {
	_, err := c.command(map[string]any{"cmd": "send_raw", "xml": xml}, 5*time.Second)
	return err
}

// Presence sends <presence/> with the given to, type, show and status
// ("" leaves each out), e.g. Presence("1001@sip.localhost", "subscribe",
// "", "").
func (c *XMPPClient) Presence(to, typ, show, status string) error {
	_, err := c.command(map[string]any{"cmd": "presence", "to": to, "type": typ, "show": show, "status": status}, 5*time.Second)
	return err
}

// ErrorReply sends <message type="error" id=id to=to><error type=typ>
// <condition xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>.
func (c *XMPPClient) ErrorReply(to, id, condition, typ string) error {
	_, err := c.command(map[string]any{"cmd": "reply_error", "to": to, "id": id, "condition": condition, "type": typ}, 5*time.Second)
	return err
}

// Query sends <iq type=typ to=to>payloadXML</iq> and returns the result
// or error iq (Kind "iq", Type "result" or "error" with ErrorCondition).
// When no answer comes within timeout it returns Type "timeout" and no
// error.
func (c *XMPPClient) Query(to, typ, payloadXML string, timeout time.Duration) (Stanza, error) {
	l, err := c.command(map[string]any{"cmd": "iq", "to": to, "type": typ, "xml": payloadXML,
		"timeout": timeout.Seconds()}, timeout+5*time.Second)
	return l.Stanza, err
}

// Await returns the next received stanza of the given kind ("message",
// "presence"; "" for any), dropping stanzas of other kinds before it,
// waiting up to timeout.
func (c *XMPPClient) Await(kind string, timeout time.Duration) (Stanza, error) {
	s, ok := c.next(keepKind(kind), timeout)
	if !ok {
		what := "stanza"
		if kind != "" {
			what = kind
		}
		return s, fmt.Errorf("xmppclient %s: no %s within %v%s", c.Bare, what, timeout, c.state())
	}
	return s, nil
}

// AwaitN returns the next n stanzas of the given kind ("" for any),
// waiting up to timeout in all; the error lists what did arrive.
func (c *XMPPClient) AwaitN(kind string, n int, timeout time.Duration) ([]Stanza, error) {
	deadline := time.Now().Add(timeout)
	var got []Stanza
	for len(got) < n {
		s, ok := c.next(keepKind(kind), time.Until(deadline))
		if !ok {
			return got, fmt.Errorf("xmppclient %s: got %d of %d stanzas within %v: %v%s", c.Bare, len(got), n, timeout, got, c.state())
		}
		got = append(got, s)
	}
	return got, nil
}

func keepKind(kind string) func(Stanza) bool {
	return func(s Stanza) bool { return kind == "" || s.Kind == kind }
}

// TryNext returns the next received stanza of any kind, waiting up to
// timeout; ok is false on timeout.
func (c *XMPPClient) TryNext(timeout time.Duration) (Stanza, bool) {
	return c.next(func(Stanza) bool { return true }, timeout)
}

// Pending returns the stanzas received and not yet taken, without waiting.
func (c *XMPPClient) Pending() []Stanza {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Stanza(nil), c.queue...)
}

func (c *XMPPClient) state() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return " (client process ended: " + c.exitMsg + ")"
	}
	return ""
}

func (c *XMPPClient) next(keep func(Stanza) bool, timeout time.Duration) (Stanza, bool) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.queue) > 0 {
			s := c.queue[0]
			c.queue = c.queue[1:]
			if keep(s) {
				return s, true
			}
		}
		if c.closed || !time.Now().Before(deadline) {
			return Stanza{}, false
		}
		c.cond.Wait()
	}
}

// Quit sends {"cmd":"quit"}, closes stdin and waits for the process (kill
// after 3 s). Calling it twice is fine.
func (c *XMPPClient) Quit() {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if !closed {
		_, _ = c.stdin.Write([]byte(`{"cmd":"quit"}` + "\n"))
	}
	_ = c.stdin.Close()
	select {
	case <-c.p.Done():
	case <-time.After(3 * time.Second):
		c.p.Stop(time.Second)
	}
}
