package peers

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Baresip is a running baresip 1.0.0 SIP user agent (Debian package
// "baresip-core") with one account, driven over ctrl_tcp (docs/peers.md).
//
// NewBaresip (StartBaresip in tests) writes Dir/config, Dir/accounts, Dir/contacts and
// Dir/tone8k.wav and runs
//
//	baresip -f Dir
//
// with its stdin a pipe that stays open and silent (the stdio module only
// prints received MESSAGEs when stdin is a pipe) and stdout+stderr in
// Dir/baresip.log. The config loads stdio, g711, aufile, account, contact,
// menu and ctrl_tcp; SIP listens on 127.0.0.1:SIPPort (UDP and TCP),
// ctrl_tcp on 127.0.0.1:CtrlPort, dns_server is 127.0.0.1:53 (no DNS leaves
// loopback). The accounts line is
//
//	<sip:USER@DOMAIN>;auth_pass=PASSWORD;outbound="sip:REGISTRAR";regint=300;answermode=auto
//
// so every request (REGISTER, MESSAGE, INVITE) goes to the registrar
// address. A received MESSAGE shows up in the log as
// `sip:alice@kam.localhost: "text"` (use WaitLog).
//
// ctrl_tcp events (REGISTER_OK, CALL_*, ...) are collected and also
// written to Dir/events.log as JSON lines.
type Baresip struct {
	AOR      string // sip:USER@DOMAIN
	SIPPort  int
	CtrlPort int
	Dir      string
	Log      string

	p     *Proc
	stdin io.WriteCloser
	conn  net.Conn

	mu       sync.Mutex
	events   []map[string]any
	seen     map[string]int // per event type: index after the last one NextEvent returned
	waiters  map[string]chan map[string]any
	token    int
	contacts []string
}

// BaresipOption changes NewBaresip.
type BaresipOption func(*baresipOpts)

type baresipOpts struct {
	contacts []string
	regint   int
	extra    string
	presence bool
	call     baresipCallOpts // baresip_call.go
}

// BaresipPresence loads baresip's presence module: it SUBSCRIBEs (Event:
// presence) to every contact and PUBLISHes its own state every 60 s, and
// logs "presence: update status of 'URI' from 'X' to 'Y'" on each NOTIFY.
func BaresipPresence() BaresipOption { return func(o *baresipOpts) { o.presence = true } }

// BaresipContacts lists the SIP URIs SendMessage may send to (baresip 1.0.0
// can only message a contact from its contacts file, chosen with
// /contact_next). The first one is the current contact at start.
func BaresipContacts(uris ...string) BaresipOption {
	return func(o *baresipOpts) { o.contacts = append(o.contacts, uris...) }
}

// BaresipRegint sets the account's regint (seconds; 0: never register).
func BaresipRegint(seconds int) BaresipOption { return func(o *baresipOpts) { o.regint = seconds } }

// BaresipAccountParams appends raw parameters to the accounts line, e.g.
// ";sipnat=outbound" or ";medianat=ice".
func BaresipAccountParams(p string) BaresipOption { return func(o *baresipOpts) { o.extra += p } }

// NewBaresip starts baresip in dir (see the Baresip type) for user@domain
// with password, registering at registrar ("127.0.0.1:PORT"), and returns
// once ctrl_tcp accepts (it does not wait for the registration: use
// AwaitRegistered). Stop sends SIGTERM (baresip unregisters) and waits.
func NewBaresip(dir, user, domain, password, registrar string, opts ...BaresipOption) (*Baresip, error) {
	o := baresipOpts{regint: 300}
	for _, f := range opts {
		f(&o)
	}
	ports, err := pickPorts("udp+tcp", "tcp", "udp")
	if err != nil {
		return nil, err
	}
	b := &Baresip{
		AOR: "sip:" + user + "@" + domain, SIPPort: ports[0], CtrlPort: ports[1],
		Dir: dir, Log: filepath.Join(dir, "baresip.log"), waiters: map[string]chan map[string]any{},
		contacts: o.contacts,
	}
	rtp := ports[2] &^ 1
	mods := "/usr/lib/baresip/modules"
	if m, _ := filepath.Glob("/usr/lib/*/baresip/modules/stdio.so"); len(m) > 0 {
		mods = filepath.Dir(m[0])
	}
	wav := filepath.Join(dir, "tone8k.wav")
	if o.call.toneHz > 0 {
		rate, ch := o.call.wavFormat()
		wav = filepath.Join(dir, fmt.Sprintf("tone%d_%d_%d.wav", o.call.toneHz, rate, ch))
		err = WriteToneWAV(wav, float64(o.call.toneHz), rate, ch, toneSeconds)
	} else {
		err = writeWAV(wav)
	}
	if err != nil {
		return nil, err
	}
	pass := ""
	if password != "" {
		pass = ";auth_pass=" + password
	}
	// Without a registrar (a direct call to sip:USER@127.0.0.1:PORT) the
	// account is the listening address itself and never registers.
	route := fmt.Sprintf(";outbound=\"sip:%s\"", registrar)
	if registrar == "" {
		route, o.regint = "", 0
		b.AOR = fmt.Sprintf("sip:%s@127.0.0.1:%d", user, b.SIPPort)
	}
	player := "audio_player aufile,/dev/null\naudio_alert aufile,/dev/null\n"
	if o.call.record {
		// aufile is only a source in baresip 1.0.0; sndfile (an audio
		// filter) dumps the decoded stream only when a player pulls it,
		// and aubridge is a player that discards the audio.
		player = fmt.Sprintf("audio_player aubridge,sink%d\naudio_alert aubridge,alert%d\nsnd_path %s\n",
			b.SIPPort, b.SIPPort, filepath.Join(dir, "rec"))
		if err := os.MkdirAll(filepath.Join(dir, "rec"), 0o755); err != nil {
			return nil, err
		}
	}
	if o.presence {
		o.extra += ";pubint=60"
	}
	var cs strings.Builder
	for i, c := range o.contacts {
		p := ""
		if o.presence {
			p = ";presence=p2p"
		}
		fmt.Fprintf(&cs, "\"c%d\" <%s>%s\n", i, c, p)
	}
	err = writeFiles(dir, map[string]string{
		"config": fmt.Sprintf(`poll_method epoll
sip_listen 127.0.0.1:%d
net_interface 127.0.0.1
dns_server 127.0.0.1:53
rtp_ports %d-%d
%saudio_source aufile,%s
module_path %s
module stdio.so
module g711.so
module aufile.so
%smodule_app account.so
module_app contact.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:%d
`, b.SIPPort, rtp, rtp+9, player, wav, mods, o.call.configLines(), b.CtrlPort) + presenceModule(o.presence),
		"accounts": fmt.Sprintf("<%s>%s%s;regint=%d;answermode=%s%s%s\n",
			b.AOR, pass, route, o.regint, o.call.answermode(), o.call.accountParams(), o.extra),
		"contacts": cs.String(),
	})
	if err != nil {
		return nil, err
	}

	args := []string{"-f", dir}
	if o.call.trace {
		args = append(args, "-s")
	}
	cmd := exec.Command("baresip", args...)
	cmd.Dir = dir
	if b.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if b.p, err = StartProc("baresip", cmd, b.Log); err != nil {
		return nil, err
	}
	if err := WaitTCP(fmt.Sprintf("127.0.0.1:%d", b.CtrlPort), 10*time.Second); err != nil {
		b.Stop()
		return nil, fmt.Errorf("baresip: %w\n%s", err, LogTail(b.Log, 3000))
	}
	if b.conn, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", b.CtrlPort)); err != nil {
		b.Stop()
		return nil, err
	}
	go b.readCtrl(filepath.Join(dir, "events.log"))
	return b, nil
}

// Stop closes ctrl_tcp and sends SIGTERM (baresip unregisters), SIGKILL
// after 3 s.
func (b *Baresip) Stop() {
	if b.conn != nil {
		b.conn.Close()
	}
	b.p.Stop(3 * time.Second)
	b.stdin.Close()
}

// readCtrl reads netstrings from ctrl_tcp: responses go to their waiter,
// events to b.events and events.log.
func (b *Baresip) readCtrl(eventsPath string) {
	f, _ := os.Create(eventsPath)
	if f != nil {
		defer f.Close()
	}
	r := bufio.NewReader(b.conn)
	for {
		n, err := r.ReadString(':')
		if err != nil {
			break
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(n, ":")))
		if err != nil {
			break
		}
		buf := make([]byte, size+1) // payload + ','
		if _, err := io.ReadFull(r, buf); err != nil {
			break
		}
		var m map[string]any
		if json.Unmarshal(buf[:size], &m) != nil {
			continue
		}
		if m["response"] == true {
			tok, _ := m["token"].(string)
			b.mu.Lock()
			ch := b.waiters[tok]
			delete(b.waiters, tok)
			b.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		b.mu.Lock()
		b.events = append(b.events, m)
		b.mu.Unlock()
		if f != nil {
			f.Write(append(buf[:size], '\n'))
		}
	}
	b.mu.Lock()
	for _, ch := range b.waiters {
		close(ch)
	}
	b.waiters = map[string]chan map[string]any{}
	b.mu.Unlock()
}

// Do sends {"command":cmd,"params":params,"token":N} to ctrl_tcp and
// returns the response ({"response":true,"ok":..,"data":"..."}); an error
// after 5 s. Commands are baresip's menu commands without "/", e.g.
// "reginfo", "contacts", "contact_next", "message" (text to the current
// contact), "dial" (a URI), "hangup", "listcalls".
func (b *Baresip) Do(cmd, params string) (map[string]any, error) {
	b.mu.Lock()
	b.token++
	tok := strconv.Itoa(b.token)
	ch := make(chan map[string]any, 1)
	b.waiters[tok] = ch
	b.mu.Unlock()
	j, _ := json.Marshal(map[string]string{"command": cmd, "params": params, "token": tok})
	if _, err := fmt.Fprintf(b.conn, "%d:%s,", len(j), j); err != nil {
		return nil, fmt.Errorf("baresip ctrl_tcp: %w", err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("baresip ctrl_tcp closed during %s\n%s", cmd, LogTail(b.Log, 3000))
		}
		return m, nil
	case <-time.After(5 * time.Second):
		return nil, fmt.Errorf("baresip: no ctrl_tcp response to %s %q", cmd, params)
	}
}

// data is the "data" string of a ctrl_tcp response.
func (b *Baresip) data(cmd string) (string, error) {
	r, err := b.Do(cmd, "")
	s, _ := r["data"].(string)
	return s, err
}

// Message sends a SIP MESSAGE with text to the contact to, which must be
// one of the URIs given with BaresipContacts (baresip 1.0.0 has no
// "message to URI" command): it steps /contact_next until to is the
// current contact, then runs /message. It does not wait for the answer
// (look at AwaitLog or the receiving side).
func (b *Baresip) Message(to, text string) error {
	found := false
	for _, c := range b.contacts {
		found = found || c == to
	}
	if !found {
		return fmt.Errorf("baresip message: %s is not a contact; start baresip with peers.BaresipContacts(%q)", to, to)
	}
	data, err := b.data("contacts")
	for i := 0; err == nil && i <= len(b.contacts) && !currentIs(data, to); i++ {
		data, err = b.data("contact_next")
	}
	if err != nil {
		return err
	}
	if !currentIs(data, to) {
		return fmt.Errorf("baresip: cannot select contact %s: %q", to, data)
	}
	r, err := b.Do("message", text)
	if err == nil && r["ok"] != true {
		err = fmt.Errorf("baresip message: %v", r)
	}
	return err
}

// currentIs checks a "contacts" ("> name <uri>") or "contact_next"
// ("Current contact: name <uri>") answer.
func currentIs(data, uri string) bool {
	for _, l := range strings.Split(data, "\n") {
		if (strings.HasPrefix(l, "> ") || strings.HasPrefix(l, "Current contact: ")) && strings.Contains(l, "<"+uri+">") {
			return true
		}
	}
	return false
}

// Events returns the ctrl_tcp events so far (e.g. {"event":true,
// "class":"register","type":"REGISTER_OK",...}).
func (b *Baresip) Events() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]map[string]any(nil), b.events...)
}

// AwaitEvent waits for a ctrl_tcp event of the given type (e.g.
// "REGISTER_OK", "REGISTER_FAIL", "CALL_ESTABLISHED") and returns it.
func (b *Baresip) AwaitEvent(typ string, timeout time.Duration) (map[string]any, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range b.Events() {
			if e["type"] == typ {
				return e, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("baresip: no %s event after %v; events: %v\n%s", typ, timeout, b.Events(), LogTail(b.Log, 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AwaitRegistered waits until the account is registered: baresip logs
// "USER@DOMAIN: {0/UDP/v4} 200 OK (...) [1 binding]" (the REGISTER_OK
// ctrl_tcp event may come before the ctrl_tcp connection is up).
func (b *Baresip) AwaitRegistered(timeout time.Duration) error {
	prefix := strings.TrimPrefix(b.AOR, "sip:") + ": {"
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range strings.Split(b.LogText(), "\n") {
			if strings.HasPrefix(l, prefix) && strings.Contains(l, "} 200 OK") {
				return nil
			}
		}
		for _, e := range b.Events() {
			if e["type"] == "REGISTER_OK" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("baresip: %s not registered after %v\n%s", b.AOR, timeout, LogTail(b.Log, 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AwaitLog waits until baresip's stdout/stderr log contains substr. A
// received MESSAGE is logged as `sip:FROM: "text"`.
func (b *Baresip) AwaitLog(substr string, timeout time.Duration) error {
	return awaitFile("baresip", b.Log, substr, timeout)
}

// LogText returns baresip's log so far.
func (b *Baresip) LogText() string { return readFileString(b.Log) }

// writeWAV writes 1 s of a 440 Hz tone, 8 kHz mono 16-bit PCM (baresip's
// aufile source for G.711 calls; ausine only does 48 kHz).
func writeWAV(path string) error {
	const rate, n = 8000, 8000
	data := make([]byte, 2*n)
	for i := 0; i < n; i++ {
		// triangle-ish wave without math: period 18 samples (~444 Hz)
		ph := i % 18
		v := int16((ph - 9) * 2000)
		if ph >= 9 {
			v = int16((27 - ph - 9) * 2000)
		}
		binary.LittleEndian.PutUint16(data[2*i:], uint16(v))
	}
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+len(data)))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], 1)
	binary.LittleEndian.PutUint32(h[24:], rate)
	binary.LittleEndian.PutUint32(h[28:], rate*2)
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(len(data)))
	return os.WriteFile(path, append(h, data...), 0o644)
}

func presenceModule(on bool) string {
	if on {
		return "module_app presence.so\n"
	}
	return ""
}
