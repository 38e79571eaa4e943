package sip

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"stox.dev/stox/mapping"
)

// OPTIONS advertises in Accept exactly the MESSAGE bodies stox takes (RFC
// 3261 §11.2, §20.1), and MESSAGE accepts every type listed there: none of
// them is answered 415. The router translates with mapping, as the core does,
// so a type the translation refuses gets the translation's 415.
func TestOptionsAcceptMatchesMessage(t *testing.T) {
	d := mapping.Domains{XMPP: "gw.test", SIP: testDomain}
	r := routerFunc(func(_ context.Context, m mapping.SIPMessage) mapping.Outcome {
		var f *mapping.Failure
		if _, err := d.MessageToXMPP(m); errors.As(err, &f) {
			return mapping.Outcome{Status: f.Status, Reason: f.Text}
		} else if err != nil {
			return mapping.Outcome{Status: 500}
		}
		return mapping.Outcome{Status: 202, Reason: "Accepted"}
	})
	env := startStack(t, func(c *Config) {
		c.TrustedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}, r)
	c := newClient(t)

	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: testDomain})
	req.SetDestination(env.udp)
	res, err := c.Do(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	accept := res.GetHeader("Accept")
	if res.StatusCode != 200 || accept == nil {
		t.Fatalf("OPTIONS: %d, Accept %v", res.StatusCode, accept)
	}
	if accept.Value() != mapping.AcceptedContentTypes {
		t.Errorf("OPTIONS Accept: %q, want %q", accept.Value(), mapping.AcceptedContentTypes)
	}

	// A body of each media type; a type advertised without a sample here
	// fails the test, so the list cannot grow untested.
	samples := map[string]string{
		"text/plain":   "hi",
		"message/cpim": "From: <im:bob@" + testDomain + ">\r\n\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi",
		"text/html":    "<b>hi</b>",
	}
	send := func(ctype string) int {
		t.Helper()
		body, ok := samples[ctype]
		if !ok {
			t.Fatalf("Accept lists %q, which this test has no sample body for", ctype)
		}
		req := messageReq("sip:bob@"+testDomain, "sip:juliet@xmpp.test", env.udp, body)
		req.RemoveHeader("Content-Type")
		ct := sip.ContentTypeHeader(ctype)
		req.AppendHeader(&ct)
		res, err := c.Do(ctxT(t), req)
		if err != nil {
			t.Fatalf("MESSAGE %s: %v", ctype, err)
		}
		return res.StatusCode
	}
	for _, ctype := range strings.Split(accept.Value(), ",") {
		ctype = strings.TrimSpace(ctype)
		if st := send(ctype); st != 202 {
			t.Errorf("MESSAGE with %s, which OPTIONS advertises: %d, want 202", ctype, st)
		}
	}
	// The check above can tell: a type outside the set is refused.
	if st := send("text/html"); st != 415 {
		t.Errorf("MESSAGE with text/html: %d, want 415", st)
	}
}
