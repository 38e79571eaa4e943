package store

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"stox.dev/stox/mapping"
)

// Presence state (docs/presence-contract.md): subscriptions keyed by (Kind,
// bare JID, AOR) and last known presence keyed by the full From JID. Both
// stores keep a Subscription's JID bare, its times as normTime does, and
// turn empty RouteSet, LastBody and Status slices into nil, so a record
// reads back the same from either.

// subKey is the key of a subscription: its kind, the bare JID as a string
// and the AOR (the Postgres primary key).
type subKey struct{ kind, jid, aor string }

func subscriptionKey(kind string, jid mapping.JID, aor string) subKey {
	return subKey{kind: kind, jid: jid.Bare().String(), aor: aor}
}

func checkSubKey(kind string, jid mapping.JID, aor string) error {
	if kind == "" || jid.Domain == "" || aor == "" {
		return fmt.Errorf("%w: subscription with empty kind, JID domain or AOR", ErrInvalid)
	}
	for _, s := range [...]string{kind, jid.Local, jid.Domain, aor} {
		if !validText(s) {
			return fmt.Errorf("%w: subscription key holds NUL or invalid UTF-8", ErrInvalid)
		}
	}
	return nil
}

func checkSubscription(s mapping.Subscription) error {
	if err := checkSubKey(s.Kind, s.JID, s.AOR); err != nil {
		return err
	}
	d := s.Dialog
	for _, v := range [...]string{s.State, d.CallID, d.LocalTag, d.RemoteTag, d.LocalURI, d.RemoteURI, d.RemoteTarget, d.Destination, d.Event, d.EventID} {
		if !validText(v) {
			return fmt.Errorf("%w: subscription text holds NUL or invalid UTF-8", ErrInvalid)
		}
	}
	for _, r := range d.RouteSet {
		if !validText(r) {
			return fmt.Errorf("%w: route set holds NUL or invalid UTF-8", ErrInvalid)
		}
	}
	return nil
}

func checkPresence(p mapping.Presence) error {
	if p.From.Domain == "" {
		return fmt.Errorf("%w: presence with empty From", ErrInvalid)
	}
	for _, s := range [...]string{p.ID, p.From.Local, p.From.Domain, p.From.Resource, p.To.Local, p.To.Domain, p.To.Resource, p.Type, p.Show, p.Lang} {
		if !validText(s) {
			return fmt.Errorf("%w: presence text holds NUL or invalid UTF-8", ErrInvalid)
		}
	}
	for _, t := range p.Status {
		if !validText(t.Lang) || !validText(t.Value) {
			return fmt.Errorf("%w: presence status holds NUL or invalid UTF-8", ErrInvalid)
		}
	}
	if f := p.Error; f != nil && (!validText(string(f.Condition)) || !validText(f.Text) || !validText(f.Address)) {
		return fmt.Errorf("%w: presence error text holds NUL or invalid UTF-8", ErrInvalid)
	}
	return nil
}

func checkPresenceKey(from mapping.JID) error {
	if from.Domain == "" {
		return fmt.Errorf("%w: presence with empty From", ErrInvalid)
	}
	for _, s := range [...]string{from.Local, from.Domain, from.Resource} {
		if !validText(s) {
			return fmt.Errorf("%w: presence From holds NUL or invalid UTF-8", ErrInvalid)
		}
	}
	return nil
}

// normSubscription returns a copy of s as a store keeps it, sharing no
// memory with s.
func normSubscription(s mapping.Subscription) mapping.Subscription {
	s.JID = s.JID.Bare()
	s.Dialog.RouteSet = cloneOrNil(s.Dialog.RouteSet)
	s.Dialog.Expires = normTime(s.Dialog.Expires)
	s.LastBody = cloneOrNil(s.LastBody)
	s.Updated = normTime(s.Updated)
	s.RetryAt = normTime(s.RetryAt)
	return s
}

// copySubscription returns s without memory shared with it.
func copySubscription(s mapping.Subscription) mapping.Subscription {
	s.Dialog.RouteSet = cloneOrNil(s.Dialog.RouteSet)
	s.LastBody = cloneOrNil(s.LastBody)
	return s
}

// copyPresence returns p without memory shared with it; an empty Status
// becomes nil.
func copyPresence(p mapping.Presence) mapping.Presence {
	p.Status = cloneOrNil(p.Status)
	if p.Error != nil {
		f := *p.Error
		p.Error = &f
	}
	return p
}

func cloneOrNil[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// sortSubscriptions orders by kind, bare JID string, then AOR, bytewise
// (Postgres: COLLATE "C").
func sortSubscriptions(ss []mapping.Subscription) {
	sort.Slice(ss, func(i, j int) bool {
		a, b := ss[i], ss[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if aj, bj := a.JID.String(), b.JID.String(); aj != bj {
			return aj < bj
		}
		return a.AOR < b.AOR
	})
}

// wireDialog is the JSON form of mapping.Dialog in subscriptions.dialog,
// spelled out so that renaming a Go field cannot orphan stored rows.
type wireDialog struct {
	CallID       string   `json:"call_id"`
	LocalTag     string   `json:"local_tag"`
	RemoteTag    string   `json:"remote_tag,omitempty"`
	LocalURI     string   `json:"local_uri,omitempty"`
	RemoteURI    string   `json:"remote_uri,omitempty"`
	LocalCSeq    uint32   `json:"local_cseq,omitempty"`
	RemoteCSeq   uint32   `json:"remote_cseq,omitempty"`
	RouteSet     []string `json:"route_set,omitempty"`
	RemoteTarget string   `json:"remote_target,omitempty"`
	Destination  string   `json:"destination,omitempty"`
	Event        string   `json:"event,omitempty"`
	EventID      string   `json:"event_id,omitempty"`
	Expires      string   `json:"expires,omitempty"` // RFC 3339, UTC, microseconds; absent when zero
}

func toWireDialog(d mapping.Dialog) wireDialog {
	w := wireDialog{
		CallID: d.CallID, LocalTag: d.LocalTag, RemoteTag: d.RemoteTag, LocalURI: d.LocalURI, RemoteURI: d.RemoteURI,
		LocalCSeq: d.LocalCSeq, RemoteCSeq: d.RemoteCSeq, RouteSet: d.RouteSet, RemoteTarget: d.RemoteTarget,
		Destination: d.Destination, Event: d.Event, EventID: d.EventID,
	}
	if !d.Expires.IsZero() {
		w.Expires = normTime(d.Expires).Format(time.RFC3339Nano)
	}
	return w
}

func (w wireDialog) dialog() (mapping.Dialog, error) {
	d := mapping.Dialog{
		CallID: w.CallID, LocalTag: w.LocalTag, RemoteTag: w.RemoteTag, LocalURI: w.LocalURI, RemoteURI: w.RemoteURI,
		LocalCSeq: w.LocalCSeq, RemoteCSeq: w.RemoteCSeq, RouteSet: cloneOrNil(w.RouteSet), RemoteTarget: w.RemoteTarget,
		Destination: w.Destination, Event: w.Event, EventID: w.EventID,
	}
	if w.Expires != "" {
		t, err := time.Parse(time.RFC3339Nano, w.Expires)
		if err != nil {
			return d, fmt.Errorf("dialog expires: %w", err)
		}
		d.Expires = normTime(t)
	}
	return d, nil
}

// wirePresence is the JSON form of mapping.Presence in presences.presence.
type wirePresence struct {
	ID       string       `json:"id,omitempty"`
	From     wireJID      `json:"from"`
	To       wireJID      `json:"to"`
	Type     string       `json:"type,omitempty"`
	Show     string       `json:"show,omitempty"`
	Status   []wireText   `json:"status,omitempty"`
	Priority int          `json:"priority,omitempty"`
	Lang     string       `json:"lang,omitempty"`
	Error    *wireFailure `json:"error,omitempty"`
}

type wireText struct {
	Lang  string `json:"lang,omitempty"`
	Value string `json:"value"`
}

func toWirePresence(p mapping.Presence) wirePresence {
	w := wirePresence{
		ID: p.ID, From: wireJID(p.From), To: wireJID(p.To), Type: p.Type, Show: p.Show,
		Priority: p.Priority, Lang: p.Lang, Error: toWireFailure(p.Error),
	}
	for _, t := range p.Status {
		w.Status = append(w.Status, wireText{Lang: t.Lang, Value: t.Value})
	}
	return w
}

func (w wirePresence) presence() mapping.Presence {
	p := mapping.Presence{
		ID: w.ID, From: mapping.JID(w.From), To: mapping.JID(w.To), Type: w.Type, Show: w.Show,
		Priority: w.Priority, Lang: w.Lang, Error: w.Error.failure(),
	}
	for _, t := range w.Status {
		p.Status = append(p.Status, mapping.Text{Lang: t.Lang, Value: t.Value})
	}
	return p
}

func toWireFailure(f *mapping.Failure) *wireFailure {
	if f == nil {
		return nil
	}
	return &wireFailure{Condition: string(f.Condition), Status: f.Status, Text: f.Text, Address: f.Address, RetryAfter: int64(f.RetryAfter)}
}

func (f *wireFailure) failure() *mapping.Failure {
	if f == nil {
		return nil
	}
	return &mapping.Failure{Condition: mapping.Condition(f.Condition), Status: f.Status, Text: f.Text, Address: f.Address, RetryAfter: time.Duration(f.RetryAfter)}
}
