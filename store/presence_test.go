package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"stox.dev/stox/mapping"
)

var cet = time.FixedZone("CET", 3600)

// fullSubscription sets every field of Subscription and Dialog; times carry
// nanoseconds and a non-UTC zone, the JID a resource.
func fullSubscription(kind string, i int) mapping.Subscription {
	return mapping.Subscription{
		Kind:  kind,
		JID:   mapping.JID{Local: fmt.Sprintf(`o\27malley%d`, i), Domain: "xmpp.example", Resource: "phone 📱"},
		AOR:   fmt.Sprintf("sip:fü%d@sip.example", i),
		State: mapping.SubActive,
		Dialog: mapping.Dialog{
			CallID:       fmt.Sprintf("call-%d@stox.example", i),
			LocalTag:     "ltag-" + kind,
			RemoteTag:    "rtag",
			LocalURI:     "sip:alice@xmpp.example",
			RemoteURI:    fmt.Sprintf("sip:fü%d@sip.example", i),
			LocalCSeq:    42,
			RemoteCSeq:   4294967295,
			RouteSet:     []string{"<sip:p3.example;lr>", "<sip:p2.example;lr;transport=tcp>", `<sip:p1.example;lr>;x="a,b"`},
			RemoteTarget: "sip:bob@192.0.2.9:5062;transport=tcp",
			Destination:  "tcp:192.0.2.1:5060",
			Event:        "presence",
			EventID:      "7",
			Expires:      time.Date(2026, 3, 1, 13, 0, 0, 123456789, cet),
		},
		LastBody:  []byte("<?xml version='1.0'?>\x00\x01\xfe\xff ünï"),
		Updated:   time.Date(2026, 3, 1, 12, 0, 0, 999999999, cet),
		RetryAt:   time.Date(2026, 3, 1, 12, 30, 0, 1000, time.UTC),
		Attempts:  3 + i,
		Authorize: true,
	}
}

// stored is s as a store gives it back: JID bare, times in UTC at
// microseconds.
func stored(s mapping.Subscription) mapping.Subscription {
	s.JID = s.JID.Bare()
	s.Dialog.Expires = s.Dialog.Expires.UTC().Truncate(time.Microsecond)
	s.Updated = s.Updated.UTC().Truncate(time.Microsecond)
	s.RetryAt = s.RetryAt.UTC().Truncate(time.Microsecond)
	return s
}

func testSubscriptionRoundTrip(t *testing.T, s Store) {
	ctx := t.Context()
	sub := fullSubscription(mapping.XMPPWatcher, 1)
	must(t, s.PutSubscription(ctx, sub))
	got, err := s.Subscriptions(ctx)
	must(t, err)
	want := stored(sub)
	equal(t, "subscription", got, []mapping.Subscription{want})
	equal(t, "dialog expires", got[0].Dialog.Expires, time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC))
	equal(t, "updated", got[0].Updated, time.Date(2026, 3, 1, 11, 0, 0, 999999000, time.UTC))

	// Replace by the same key (another resource of the same bare JID):
	// every field is overwritten, empty slices come back nil, zero times
	// zero.
	repl := mapping.Subscription{
		Kind: mapping.XMPPWatcher, JID: mapping.JID{Local: sub.JID.Local, Domain: sub.JID.Domain, Resource: "other"}, AOR: sub.AOR,
		State:    mapping.SubTerminated,
		Dialog:   mapping.Dialog{CallID: "c2", LocalTag: "l2", RouteSet: []string{}},
		LastBody: []byte{},
	}
	must(t, s.PutSubscription(ctx, repl))
	got, err = s.Subscriptions(ctx)
	must(t, err)
	wantRepl := repl
	wantRepl.JID.Resource = ""
	wantRepl.Dialog.RouteSet, wantRepl.LastBody = nil, nil
	equal(t, "replaced subscription", got, []mapping.Subscription{wantRepl})

	// Back to the full record, then delete by a full JID (the key is bare).
	must(t, s.PutSubscription(ctx, sub))
	got, err = s.Subscriptions(ctx)
	must(t, err)
	equal(t, "put again", got, []mapping.Subscription{want})
	must(t, s.DeleteSubscription(ctx, sub.Kind, mapping.JID{Local: sub.JID.Local, Domain: sub.JID.Domain, Resource: "x"}, sub.AOR))
	got, err = s.Subscriptions(ctx)
	must(t, err)
	equal(t, "after delete", len(got), 0)
	// Deleting what is not there is not an error.
	must(t, s.DeleteSubscription(ctx, sub.Kind, sub.JID, sub.AOR))
}

// Both kinds for the same (JID, AOR) are distinct records.
func testSubscriptionKinds(t *testing.T, s Store) {
	ctx := t.Context()
	x := fullSubscription(mapping.XMPPWatcher, 1)
	w := fullSubscription(mapping.SIPWatcher, 1)
	w.State, w.Authorize, w.Attempts = mapping.SubPending, false, 0
	w.Dialog.RouteSet = w.Dialog.RouteSet[:1]
	other := fullSubscription(mapping.SIPWatcher, 2)
	host := fullSubscription(mapping.SIPWatcher, 3)
	host.JID = mapping.JID{Domain: "conference.example"} // domain-only JID
	for _, sub := range []mapping.Subscription{other, x, host, w} {
		must(t, s.PutSubscription(ctx, sub))
	}
	got, err := s.Subscriptions(ctx)
	must(t, err)
	// Sorted by kind, bare JID string, AOR.
	equal(t, "both kinds", got, []mapping.Subscription{stored(host), stored(w), stored(other), stored(x)})

	must(t, s.DeleteSubscription(ctx, mapping.SIPWatcher, w.JID, w.AOR))
	got, err = s.Subscriptions(ctx)
	must(t, err)
	equal(t, "after deleting one kind", got, []mapping.Subscription{stored(host), stored(other), stored(x)})
}

func testSubscriptionNoAliasing(t *testing.T, s Store) {
	ctx := t.Context()
	in := fullSubscription(mapping.SIPWatcher, 1)
	must(t, s.PutSubscription(ctx, in))
	in.Dialog.RouteSet[0] = "changed"
	in.LastBody[0] = 'X'
	out, err := s.Subscriptions(ctx)
	must(t, err)
	out[0].Dialog.RouteSet[1] = "changed"
	out[0].LastBody[1] = 'Y'
	again, err := s.Subscriptions(ctx)
	must(t, err)
	equal(t, "subscription", again, []mapping.Subscription{stored(fullSubscription(mapping.SIPWatcher, 1))})
}

func testSubscriptionRejects(t *testing.T, s Store) {
	ctx := t.Context()
	for name, mod := range map[string]func(*mapping.Subscription){
		"empty kind":          func(s *mapping.Subscription) { s.Kind = "" },
		"empty JID":           func(s *mapping.Subscription) { s.JID = mapping.JID{} },
		"JID without domain":  func(s *mapping.Subscription) { s.JID = mapping.JID{Local: "a"} },
		"empty AOR":           func(s *mapping.Subscription) { s.AOR = "" },
		"NUL in state":        func(s *mapping.Subscription) { s.State = "act\x00ive" },
		"bad UTF-8 in AOR":    func(s *mapping.Subscription) { s.AOR = "sip:\xff@x" },
		"bad UTF-8 in route":  func(s *mapping.Subscription) { s.Dialog.RouteSet[2] = "<sip:\xc3>" },
		"NUL in call-id":      func(s *mapping.Subscription) { s.Dialog.CallID = "\x00" },
		"NUL in JID local":    func(s *mapping.Subscription) { s.JID.Local = "a\x00" },
		"bad UTF-8 in target": func(s *mapping.Subscription) { s.Dialog.RemoteTarget = "\xed\xa0\x80" },
	} {
		sub := fullSubscription(mapping.XMPPWatcher, 1)
		mod(&sub)
		if err := s.PutSubscription(ctx, sub); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	got, err := s.Subscriptions(ctx)
	must(t, err)
	equal(t, "stored after refusals", len(got), 0)

	j := mapping.JID{Local: "a", Domain: "x.example"}
	for name, err := range map[string]error{
		"delete empty kind":    s.DeleteSubscription(ctx, "", j, "sip:a@b"),
		"delete empty JID":     s.DeleteSubscription(ctx, mapping.XMPPWatcher, mapping.JID{}, "sip:a@b"),
		"delete empty AOR":     s.DeleteSubscription(ctx, mapping.XMPPWatcher, j, ""),
		"delete NUL in AOR":    s.DeleteSubscription(ctx, mapping.XMPPWatcher, j, "sip:\x00"),
		"delete bad UTF-8 JID": s.DeleteSubscription(ctx, mapping.XMPPWatcher, mapping.JID{Domain: "\xff"}, "sip:a@b"),
	} {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

// 1,000 subscriptions listed in order with every field intact.
func testSubscriptionMany(t *testing.T, s Store) {
	ctx := t.Context()
	const n = 1000
	want := make([]mapping.Subscription, 0, n)
	for i := range n {
		kind := mapping.SIPWatcher
		if i%2 == 1 {
			kind = mapping.XMPPWatcher
		}
		sub := fullSubscription(kind, i)
		must(t, s.PutSubscription(ctx, sub))
		want = append(want, stored(sub))
	}
	sortSubscriptions(want)
	got, err := s.Subscriptions(ctx)
	must(t, err)
	equal(t, "count", len(got), n)
	for i := range want {
		equal(t, fmt.Sprintf("subscription %d", i), got[i], want[i])
	}
}

// fullPresence sets every field of Presence and Failure, with a status in
// three languages.
func fullPresence(resource string) mapping.Presence {
	return mapping.Presence{
		ID:   "p-" + resource,
		From: mapping.JID{Local: "juliet", Domain: "xmpp.example", Resource: resource},
		To:   mapping.JID{Local: "fü", Domain: "sip.example"},
		Type: "error",
		Show: "dnd",
		Status: []mapping.Text{
			{Lang: "en", Value: "In a meeting <&>"},
			{Lang: "de-CH", Value: "In einer Besprechung, ünïcödé"},
			{Lang: "ja", Value: "会議中 😀 \u200f"},
			{Value: ""},
		},
		Priority: -128,
		Lang:     "en",
		Error: &mapping.Failure{
			Condition:  mapping.Gone,
			Status:     410,
			Text:       "moved",
			Address:    "xmpp:romeo@new.example",
			RetryAfter: 90 * time.Second,
		},
	}
}

func testPresenceRoundTrip(t *testing.T, s Store) {
	ctx := t.Context()
	phone, laptop := fullPresence("phone"), fullPresence("laptop")
	laptop.Type, laptop.Show, laptop.Status, laptop.Priority, laptop.Error = "", "", nil, 5, nil
	bare := mapping.Presence{From: mapping.JID{Local: "juliet", Domain: "xmpp.example"}, Status: []mapping.Text{}}
	for _, p := range []mapping.Presence{phone, laptop, bare} {
		must(t, s.PutPresence(ctx, p))
	}
	got, err := s.Presences(ctx)
	must(t, err)
	wantBare := bare
	wantBare.Status = nil
	// Sorted by From.String(); each resource is its own record.
	equal(t, "presences", got, []mapping.Presence{wantBare, laptop, phone})

	// Replace.
	phone2 := mapping.Presence{From: phone.From, Type: "unavailable", Status: []mapping.Text{{Lang: "fr", Value: "parti"}}, Priority: 127}
	must(t, s.PutPresence(ctx, phone2))
	got, err = s.Presences(ctx)
	must(t, err)
	equal(t, "replaced", got, []mapping.Presence{wantBare, laptop, phone2})

	must(t, s.DeletePresence(ctx, laptop.From))
	must(t, s.DeletePresence(ctx, bare.From))
	must(t, s.DeletePresence(ctx, bare.From)) // absent: not an error
	got, err = s.Presences(ctx)
	must(t, err)
	equal(t, "after delete", got, []mapping.Presence{phone2})
}

func testPresenceNoAliasing(t *testing.T, s Store) {
	ctx := t.Context()
	in := fullPresence("r")
	must(t, s.PutPresence(ctx, in))
	in.Status[0].Value = "changed"
	in.Error.Text = "changed"
	out, err := s.Presences(ctx)
	must(t, err)
	out[0].Status[1].Value = "changed"
	out[0].Error.Address = "changed"
	again, err := s.Presences(ctx)
	must(t, err)
	equal(t, "presence", again, []mapping.Presence{fullPresence("r")})
}

func testPresenceRejects(t *testing.T, s Store) {
	ctx := t.Context()
	for name, mod := range map[string]func(*mapping.Presence){
		"empty From":          func(p *mapping.Presence) { p.From = mapping.JID{} },
		"From without domain": func(p *mapping.Presence) { p.From.Domain = "" },
		"NUL in resource":     func(p *mapping.Presence) { p.From.Resource = "a\x00" },
		"bad UTF-8 in status": func(p *mapping.Presence) { p.Status[1].Value = "\xff" },
		"NUL in status lang":  func(p *mapping.Presence) { p.Status[0].Lang = "\x00" },
		"NUL in show":         func(p *mapping.Presence) { p.Show = "\x00" },
		"bad UTF-8 in error":  func(p *mapping.Presence) { p.Error.Text = "\xc3" },
		"NUL in To":           func(p *mapping.Presence) { p.To.Local = "\x00" },
	} {
		p := fullPresence("r")
		mod(&p)
		if err := s.PutPresence(ctx, p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	got, err := s.Presences(ctx)
	must(t, err)
	equal(t, "stored after refusals", len(got), 0)
	if err := s.DeletePresence(ctx, mapping.JID{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("delete empty From: err = %v, want ErrInvalid", err)
	}
	if err := s.DeletePresence(ctx, mapping.JID{Domain: "x", Resource: "\xff"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("delete bad UTF-8: err = %v, want ErrInvalid", err)
	}
}

// 16 goroutines put subscriptions and presences at once, each its own keys
// plus one key all of them fight over.
func testPresenceStateConcurrentPuts(t *testing.T, s Store) {
	ctx := t.Context()
	const workers, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				sub := fullSubscription(mapping.SIPWatcher, w*each+i)
				shared := fullSubscription(mapping.XMPPWatcher, -1)
				shared.Attempts = w
				p := fullPresence(fmt.Sprintf("w%d-%d", w, i))
				sp := fullPresence("shared")
				sp.Priority = w
				for _, err := range []error{s.PutSubscription(ctx, sub), s.PutSubscription(ctx, shared), s.PutPresence(ctx, p), s.PutPresence(ctx, sp)} {
					if err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	subs, err := s.Subscriptions(ctx)
	must(t, err)
	equal(t, "subscriptions", len(subs), workers*each+1)
	ps, err := s.Presences(ctx)
	must(t, err)
	equal(t, "presences", len(ps), workers*each+1)
	for _, sub := range subs {
		if sub.Kind == mapping.XMPPWatcher {
			want := stored(fullSubscription(mapping.XMPPWatcher, -1))
			want.Attempts = sub.Attempts
			equal(t, "shared subscription", sub, want)
		}
	}
}
