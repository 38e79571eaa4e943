package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"stox.dev/stox/mapping"
	"stox.dev/stox/presence"
)

// approver is alice's XMPP client: it approves every subscription request
// (as a user who accepts all her SIP watchers would) and records the
// bodies of the messages it receives.
type approver struct {
	xs *xmpp.Session

	mu       sync.Mutex
	bodies   map[string]bool
	approved int
}

func startApprover(t *testing.T, p *prosody, addr, pw string) *approver {
	t.Helper()
	xs, conn := clientLogin(t, p, addr, pw)
	a := &approver{xs: xs, bodies: make(map[string]bool)}
	toApprove := make(chan string, 100000)
	served := make(chan struct{})
	go func() {
		defer close(served)
		defer close(toApprove)
		_ = xs.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			d := xml.NewTokenDecoder(xmlstream.MultiReader(tokens(start.Copy()), r))
			switch start.Name.Local {
			case "presence":
				var w wirePresence
				if err := d.Decode(&w); err == nil && w.Type == "subscribe" && w.From != nil {
					toApprove <- *w.From
				}
			case "message":
				var m struct {
					Body string `xml:"body"`
				}
				if err := d.Decode(&m); err == nil {
					a.mu.Lock()
					a.bodies[m.Body] = true
					a.mu.Unlock()
				}
			}
			return nil
		}))
	}()
	approved := make(chan struct{})
	go func() {
		defer close(approved)
		for from := range toApprove {
			if err := a.send(fmt.Sprintf(`<presence type='subscribed' to='%s'/>`, from)); err != nil {
				return
			}
			a.mu.Lock()
			a.approved++
			a.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = xs.Close(); conn.Close(); <-served; <-approved })
	if err := a.send(`<presence/>`); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *approver) send(raw string) error { return sendRaw(a.xs, raw) }

func (a *approver) got(body string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bodies[body]
}

// notifier is the SIP side of SIP watchers: it answers every NOTIFY 200
// and keeps the last subscription state per dialog.
type notifier struct {
	mu    sync.Mutex
	state map[string]string // Call-ID → last Subscription-State
}

func (n *notifier) Notify(_ context.Context, d mapping.Dialog, state, _ string, _ []byte) (mapping.Response, error) {
	n.mu.Lock()
	n.state[d.CallID] = state
	n.mu.Unlock()
	return mapping.Response{Status: 200, Reason: "OK"}, nil
}

func (n *notifier) Subscribe(context.Context, mapping.Dialog, time.Duration) (mapping.Response, mapping.Dialog, error) {
	return mapping.Response{Status: 500}, mapping.Dialog{}, errors.New("not used")
}

// notActive lists the dialogs whose last NOTIFY was not active.
func (n *notifier) notActive(callIDs []string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, id := range callIDs {
		if !strings.HasPrefix(n.state[id], "active") {
			out = append(out, id)
		}
	}
	return out
}

// memStore is a Store that keeps nothing.
type memStore struct{}

func (memStore) PutSubscription(context.Context, mapping.Subscription) error { return nil }
func (memStore) DeleteSubscription(context.Context, string, mapping.JID, string) error {
	return nil
}
func (memStore) Subscriptions(context.Context) ([]mapping.Subscription, error) { return nil, nil }
func (memStore) PutPresence(context.Context, mapping.Presence) error           { return nil }
func (memStore) DeletePresence(context.Context, mapping.JID) error             { return nil }
func (memStore) Presences(context.Context) ([]mapping.Presence, error)         { return nil, nil }

// A deliberately slowed server (issue 7): SIP watchers subscribe to alice
// while Prosody is stopped (SIGSTOP) for longer than the link's pong
// timeout, then resumed. The link is dropped and re-established, the
// authorization requests and answers in flight are lost with it, and
// presence asks the pending ones again: every watcher ends active, and
// every message the link acknowledged reached alice.
func TestProsodyStoppedWhileBusy(t *testing.T) {
	const comp, secret = "sip.localhost", "secret"
	const watchers, pause = 300, 3 * time.Second
	p := newProsody(t, comp, secret)
	p.register(t, "alice", "alicepw")

	sipSide := &notifier{state: make(map[string]string)}
	var pres *presence.Service
	links := linkRec{make(chan bool, 64)}
	c := runComponent(t, p, comp, secret, func(c *Component) {
		pres = presence.New(presence.Config{
			Domains: mapping.Domains{XMPP: comp, SIP: "sip.test"}, AskRate: 200, NotifyTimeout: time.Second,
		}, c, sipSide, memStore{}, nil)
		c.HandlePresence(pres)
		c.ObserveLink(pres)
		c.ObserveLink(links)
		c.keepIdle, c.pongTimeout = 300*time.Millisecond, time.Second
	})
	ctx, cancel := context.WithCancel(context.Background())
	presDone := make(chan struct{})
	go func() { defer close(presDone); _ = pres.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-presDone })
	<-links.ch // up
	alice := startApprover(t, p, "alice@localhost/slow", "alicepw")

	// Messages to alice all along, each with its acknowledgement.
	type sent struct {
		body string
		err  error
	}
	acks := make(chan sent, 10000)
	stopMsgs := make(chan struct{})
	msgsDone := make(chan int)
	go func() {
		n := 0
		defer func() { msgsDone <- n }()
		for i := 0; ; i++ {
			select {
			case <-stopMsgs:
				return
			case <-time.After(10 * time.Millisecond):
			}
			body := fmt.Sprintf("m%d", i)
			err := c.Send(mapping.XMPPMessage{Type: "chat", From: mapping.JID{Local: "1001", Domain: comp},
				To: mapping.JID{Local: "alice", Domain: "localhost"}, Body: body},
				func(err error) { acks <- sent{body, err} })
			if err == nil {
				n++
			}
		}
	}()

	// SIP watchers subscribe at about 500/s; Prosody is stopped a third of
	// the way in, for longer than the pong timeout, and resumed.
	callIDs := make([]string, watchers)
	stopped := make(chan struct{})
	go func() {
		time.Sleep(watchers / 3 * 2 * time.Millisecond)
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Errorf("SIGSTOP: %v", err)
		}
		time.Sleep(pause)
		if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Errorf("SIGCONT: %v", err)
		}
		close(stopped)
	}()
	for i := range watchers {
		callIDs[i] = fmt.Sprintf("slow-%d", i)
		aor := fmt.Sprintf("sip:w%d@sip.test", i)
		out := pres.Subscribe(ctx, mapping.SubscribeRequest{
			Dialog: mapping.Dialog{CallID: callIDs[i], LocalTag: "lt", RemoteTag: fmt.Sprintf("rt%d", i),
				LocalURI: "sip:alice@localhost", RemoteURI: aor, RemoteTarget: "sip:w@127.0.0.1", RemoteCSeq: 1, Event: "presence"},
			Watcher: mustURIForTest(t, aor), Presentity: mustURIForTest(t, "sip:alice@localhost"), Event: "presence",
			Expires: time.Hour, Initial: true,
		})
		if out.Status != 200 {
			t.Fatalf("SUBSCRIBE %d: %+v", i, out)
		}
		time.Sleep(2 * time.Millisecond)
	}
	<-stopped
	downs := 0
drain:
	for {
		select {
		case up := <-links.ch:
			if !up {
				downs++
			}
		default:
			break drain
		}
	}
	waitUpWithin(t, c, 15*time.Second)

	deadline := time.Now().Add(30 * time.Second)
	for {
		left := sipSide.notActive(callIDs)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d SIP watchers still not active, e.g. %v", len(left), watchers, left[:min(5, len(left))])
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stopMsgs)
	nSent := <-msgsDone
	var delivered, failed int
	for range nSent {
		select {
		case a := <-acks:
			if a.err != nil {
				failed++
				continue
			}
			delivered++
			ok := false
			for end := time.Now().Add(5 * time.Second); !ok && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				ok = alice.got(a.body)
			}
			if !ok {
				t.Errorf("message %s acknowledged but alice never got it", a.body)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("acknowledgements missing")
		}
	}
	alice.mu.Lock()
	approved := alice.approved
	alice.mu.Unlock()
	t.Logf("link went down %d times; %d watchers active; alice approved %d requests; messages: %d accepted, %d acknowledged, %d failed with the link",
		downs, watchers, approved, nSent, delivered, failed)
	if downs == 0 {
		t.Fatal("the link never went down: the pause did not exercise a reconnect")
	}
}

func mustURIForTest(t *testing.T, s string) mapping.URI {
	t.Helper()
	u, err := mapping.ParseURI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
