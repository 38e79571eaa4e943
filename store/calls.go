package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"stox.dev/stox/mapping"
)

// Call records (docs/store-calls.md, "Call records"): one record per call,
// keyed by its ID, put when the call starts and again when it is answered
// and when it ends. Both stores keep the times as normTime does (zero stays
// zero), a nil Dialog as nil and an empty RouteSet as nil, so a record reads
// back the same from either.

// checkCall rejects records a store cannot key, order or keep exactly.
func checkCall(r mapping.CallRecord) error {
	if r.ID == "" {
		return fmt.Errorf("%w: call record with empty ID", ErrInvalid)
	}
	if r.Started.IsZero() {
		// OpenCalls orders by it and CallStats selects by it.
		return fmt.Errorf("%w: call record %q with zero Started", ErrInvalid, r.ID)
	}
	texts := []string{r.ID, r.Direction, r.SID, r.SIPPeer, r.Codec, r.Outcome}
	if d := r.Dialog; d != nil {
		texts = append(texts, d.CallID, d.LocalTag, d.RemoteTag, d.LocalURI, d.RemoteURI, d.RemoteTarget, d.Destination)
		texts = append(texts, d.RouteSet...)
	}
	for _, s := range texts {
		if !validText(s) {
			return fmt.Errorf("%w: call record %q: text holds NUL or invalid UTF-8", ErrInvalid, r.ID)
		}
	}
	for _, j := range [...]mapping.JID{r.XMPPPeer, r.Contact} {
		if err := checkCallJID(j); err != nil {
			return fmt.Errorf("%w: call record %q: %v", ErrInvalid, r.ID, err)
		}
	}
	return nil
}

// checkCallJID makes sure j reads back exactly from its String form (see
// splitJID): RFC 7622 §3.2 and §3.3 keep "@" and "/" out of the domain and
// local parts of a JID.
func checkCallJID(j mapping.JID) error {
	if strings.ContainsAny(j.Local, "@/") || strings.ContainsAny(j.Domain, "@/") {
		return fmt.Errorf("JID %q: local or domain part holds '@' or '/'", j)
	}
	for _, s := range [...]string{j.Local, j.Domain, j.Resource} {
		if !validText(s) {
			return fmt.Errorf("JID %q holds NUL or invalid UTF-8", j)
		}
	}
	return nil
}

// splitJID is the inverse of JID.String for the JIDs checkCallJID accepts.
// It does not normalise (mapping.ParseJID would apply PRECIS), so a stored
// JID reads back byte for byte.
func splitJID(s string) mapping.JID {
	var j mapping.JID
	s, j.Resource, _ = strings.Cut(s, "/")
	if local, domain, ok := strings.Cut(s, "@"); ok {
		j.Local, j.Domain = local, domain
	} else {
		j.Domain = s
	}
	return j
}

// normCall returns a copy of r as a store keeps it, sharing no memory with
// r.
func normCall(r mapping.CallRecord) mapping.CallRecord {
	r.Started, r.Answered, r.Ended = normTime(r.Started), normTime(r.Answered), normTime(r.Ended)
	return copyCall(r)
}

// copyCall returns r without memory shared with it.
func copyCall(r mapping.CallRecord) mapping.CallRecord {
	if r.Dialog != nil {
		d := *r.Dialog
		d.RouteSet = cloneOrNil(d.RouteSet)
		r.Dialog = &d
	}
	return r
}

// sortCalls orders oldest first: by Started, then by ID bytewise
// (Postgres: COLLATE "C") so that equal start times have one order.
func sortCalls(rs []mapping.CallRecord) {
	sort.Slice(rs, func(i, j int) bool {
		if !rs[i].Started.Equal(rs[j].Started) {
			return rs[i].Started.Before(rs[j].Started)
		}
		return rs[i].ID < rs[j].ID
	})
}

// PutCall inserts the call record r or replaces the one with its ID.
func (m *Memory) PutCall(_ context.Context, r mapping.CallRecord) error {
	if err := checkCall(r); err != nil {
		return fmt.Errorf("put call: %w", err)
	}
	r = normCall(r)
	m.callMu.Lock()
	m.calls[r.ID] = r
	m.callMu.Unlock()
	return nil
}

// OpenCalls returns copies of the records with a zero Ended, oldest
// Started first.
func (m *Memory) OpenCalls(context.Context) ([]mapping.CallRecord, error) {
	m.callMu.RLock()
	var rs []mapping.CallRecord
	for _, r := range m.calls {
		if r.Ended.IsZero() {
			rs = append(rs, copyCall(r))
		}
	}
	m.callMu.RUnlock()
	sortCalls(rs)
	return rs, nil
}

// CallStats counts the calls with Started at or after since by Outcome;
// calls still up count under "".
func (m *Memory) CallStats(_ context.Context, since time.Time) (map[string]int, error) {
	since = normTime(since)
	stats := make(map[string]int)
	m.callMu.RLock()
	for _, r := range m.calls {
		if !r.Started.Before(since) {
			stats[r.Outcome]++
		}
	}
	m.callMu.RUnlock()
	return stats, nil
}

// PurgeCalls removes the records of calls that ended before before and
// returns how many it removed; open calls stay.
func (m *Memory) PurgeCalls(_ context.Context, before time.Time) (int, error) {
	before = normTime(before)
	n := 0
	m.callMu.Lock()
	for id, r := range m.calls {
		if !r.Ended.IsZero() && r.Ended.Before(before) {
			delete(m.calls, id)
			n++
		}
	}
	m.callMu.Unlock()
	return n, nil
}

// PutCall inserts the call record r or replaces every column of the one
// with its ID, in one statement.
func (p *Postgres) PutCall(ctx context.Context, r mapping.CallRecord) error {
	if err := checkCall(r); err != nil {
		return fmt.Errorf("put call: %w", err)
	}
	r = normCall(r)
	var dialog *string // NULL when r.Dialog is nil
	if r.Dialog != nil {
		b, err := json.Marshal(toWireCallDialog(*r.Dialog))
		if err != nil {
			return fmt.Errorf("put call %q: encode dialog: %w", r.ID, err)
		}
		s := string(b)
		dialog = &s
	}
	_, err := p.pool.Exec(ctx, `
		INSERT INTO calls (id, direction, xmpp_peer, contact, sid, sip_peer, dialog, codec, started, answered, ended, outcome)
		VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO UPDATE SET direction = excluded.direction, xmpp_peer = excluded.xmpp_peer,
			contact = excluded.contact, sid = excluded.sid, sip_peer = excluded.sip_peer, dialog = excluded.dialog,
			codec = excluded.codec, started = excluded.started, answered = excluded.answered,
			ended = excluded.ended, outcome = excluded.outcome`,
		r.ID, r.Direction, r.XMPPPeer.String(), r.Contact.String(), r.SID, r.SIPPeer, dialog, r.Codec,
		r.Started, nullTime(r.Answered), nullTime(r.Ended), r.Outcome)
	if err != nil {
		return fmt.Errorf("put call %q: %w", r.ID, err)
	}
	return nil
}

// OpenCalls returns the records with a zero (NULL) Ended, oldest Started
// first; the partial index calls_open_idx serves it.
func (p *Postgres) OpenCalls(ctx context.Context) ([]mapping.CallRecord, error) {
	rows, _ := p.pool.Query(ctx, `
		SELECT id, direction, xmpp_peer, contact, sid, sip_peer, dialog, codec, started, answered, ended, outcome
		FROM calls WHERE ended IS NULL ORDER BY started, id COLLATE "C"`)
	rs, err := pgx.CollectRows(rows, scanCall)
	if err != nil {
		return nil, fmt.Errorf("open calls: %w", err)
	}
	return rs, nil
}

func scanCall(row pgx.CollectableRow) (mapping.CallRecord, error) {
	var r mapping.CallRecord
	var peer, contact string
	var dialog []byte
	var answered, ended *time.Time
	if err := row.Scan(&r.ID, &r.Direction, &peer, &contact, &r.SID, &r.SIPPeer, &dialog, &r.Codec,
		&r.Started, &answered, &ended, &r.Outcome); err != nil {
		return r, err
	}
	r.XMPPPeer, r.Contact = splitJID(peer), splitJID(contact)
	r.Started, r.Answered, r.Ended = r.Started.UTC(), timeOrZero(answered), timeOrZero(ended)
	if dialog != nil {
		var w wireCallDialog
		if err := json.Unmarshal(dialog, &w); err != nil {
			return r, fmt.Errorf("call %q: decode dialog: %w", r.ID, err)
		}
		d := w.dialog()
		r.Dialog = &d
	}
	return r, nil
}

// CallStats counts the calls with Started at or after since by Outcome;
// calls still up count under "".
func (p *Postgres) CallStats(ctx context.Context, since time.Time) (map[string]int, error) {
	rows, _ := p.pool.Query(ctx, `SELECT outcome, count(*) FROM calls WHERE started >= $1 GROUP BY outcome`, normTime(since))
	stats := make(map[string]int)
	var outcome string
	var n int64
	_, err := pgx.ForEachRow(rows, []any{&outcome, &n}, func() error {
		stats[outcome] = int(n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("call stats: %w", err)
	}
	return stats, nil
}

// PurgeCalls removes the records of calls that ended before before and
// returns how many it removed; open calls (ended NULL) stay. Nodes sharing
// the database may purge at once: each row goes exactly once.
func (p *Postgres) PurgeCalls(ctx context.Context, before time.Time) (int, error) {
	tag, err := p.pool.Exec(ctx, `DELETE FROM calls WHERE ended < $1`, normTime(before))
	if err != nil {
		return 0, fmt.Errorf("purge calls: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// wireCallDialog is the JSON form of mapping.DialogRecord in calls.dialog,
// spelled out so that renaming a Go field cannot orphan stored rows.
type wireCallDialog struct {
	CallID       string   `json:"call_id"`
	LocalTag     string   `json:"local_tag"`
	RemoteTag    string   `json:"remote_tag,omitempty"`
	LocalURI     string   `json:"local_uri,omitempty"`
	RemoteURI    string   `json:"remote_uri,omitempty"`
	RemoteTarget string   `json:"remote_target,omitempty"`
	RouteSet     []string `json:"route_set,omitempty"`
	LocalCSeq    uint32   `json:"local_cseq,omitempty"`
	Destination  string   `json:"destination,omitempty"`
}

func toWireCallDialog(d mapping.DialogRecord) wireCallDialog {
	return wireCallDialog{
		CallID: d.CallID, LocalTag: d.LocalTag, RemoteTag: d.RemoteTag, LocalURI: d.LocalURI, RemoteURI: d.RemoteURI,
		RemoteTarget: d.RemoteTarget, RouteSet: d.RouteSet, LocalCSeq: d.LocalCSeq, Destination: d.Destination,
	}
}

func (w wireCallDialog) dialog() mapping.DialogRecord {
	return mapping.DialogRecord{
		CallID: w.CallID, LocalTag: w.LocalTag, RemoteTag: w.RemoteTag, LocalURI: w.LocalURI, RemoteURI: w.RemoteURI,
		RemoteTarget: w.RemoteTarget, RouteSet: cloneOrNil(w.RouteSet), LocalCSeq: w.LocalCSeq, Destination: w.Destination,
	}
}
