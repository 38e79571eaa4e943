package im_test

import (
	"context"
	"fmt"
	"sync"

	"stox.dev/stox/im"
	"stox.dev/stox/mapping"
)

// xmppServer acknowledges every stanza at once, as an XMPP server that
// routed it would.
type xmppServer struct{}

func (xmppServer) Up() bool { return true }

func (xmppServer) Send(m mapping.XMPPMessage, ack func(error)) error {
	fmt.Printf("XMPP %s to %v: %s\n", m.Type, m.To, m.Body)
	if ack != nil {
		go ack(nil)
	}
	return nil
}

// sipPhone answers every MESSAGE 200 and reports it on sent.
type sipPhone struct{ sent chan mapping.SIPMessage }

func (p sipPhone) SendMessage(_ context.Context, m mapping.SIPMessage, t mapping.Target) (mapping.Response, error) {
	fmt.Printf("SIP MESSAGE to %v via %s: %s\n", t.URI, t.Destination, m.Body)
	p.sent <- m
	return mapping.Response{Status: 200, Reason: "OK"}, nil
}

// registrar knows one user, bob, registered from one address.
type registrar struct{}

func (registrar) Bindings(aor string) []mapping.Binding {
	if aor != "sip:bob@sip.example" {
		return nil
	}
	return []mapping.Binding{{AOR: aor, Contact: "sip:bob@192.0.2.10:5060", Source: "udp:192.0.2.10:5060"}}
}

func (registrar) AccountExists(_ context.Context, user string) (bool, error) {
	return user == "bob", nil
}

// outbox numbers accepted messages; a real one makes them durable first.
type outbox struct {
	mu   sync.Mutex
	next int64
}

func (o *outbox) AppendOutbox(_ context.Context, es []mapping.OutboxEntry) ([]int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ids := make([]int64, len(es))
	for i := range es {
		o.next++
		ids[i] = o.next
	}
	return ids, nil
}

func (o *outbox) DeleteOutbox(context.Context, []int64) error { return nil }

func (o *outbox) PendingOutbox(context.Context) ([]mapping.OutboxEntry, error) { return nil, nil }

// The IM service between two stacks, here fakes: New wires it to the XMPP
// link, the SIP stack, the registrar and the outbox; Run starts it. A SIP
// MESSAGE is answered once the XMPP server has the stanza; an XMPP message
// is delivered to every registered contact of its SIP recipient.
func ExampleService() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	phone := sipPhone{sent: make(chan mapping.SIPMessage, 1)}
	svc := im.New(im.Config{Domains: mapping.Domains{XMPP: "sip.example", SIP: "sip.example"}},
		xmppServer{}, phone, registrar{}, &outbox{})
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	<-svc.Ready()

	// SIP → XMPP: bob writes to juliet.
	out := svc.ReceiveSIP(ctx, mapping.SIPMessage{
		RequestURI:  mapping.URI{Scheme: "sip", User: "juliet", Host: "xmpp.example"},
		To:          mapping.URI{Scheme: "sip", User: "juliet", Host: "xmpp.example"},
		From:        mapping.URI{Scheme: "sip", User: "bob", Host: "sip.example"},
		CallID:      "a84b4c76e66710",
		ContentType: "text/plain",
		Body:        []byte("Art thou not Romeo?"),
	})
	fmt.Println("SIP response:", out.Status, out.Reason)

	// XMPP → SIP: juliet answers bob.
	svc.ReceiveXMPP(mapping.XMPPMessage{
		ID:   "r1",
		From: mapping.JID{Local: "juliet", Domain: "xmpp.example", Resource: "balcony"},
		To:   mapping.JID{Local: "bob", Domain: "sip.example"},
		Type: "chat",
		Body: "Neither, fair saint.",
	})
	<-phone.sent

	cancel()
	if err := <-done; err != nil {
		fmt.Println("Run:", err)
	}
	// Output:
	// XMPP normal to juliet@xmpp.example: Art thou not Romeo?
	// SIP response: 202 Accepted
	// SIP MESSAGE to sip:bob@192.0.2.10:5060 via udp:192.0.2.10:5060: Neither, fair saint.
}
