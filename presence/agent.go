package presence

// stox as the presence agent of the users of its own registrar (RFC 3856
// §6.11 state agent, RFC 3903 PUBLISH): XMPP watchers of such a user get
// presence from PUBLISH state, or from registration when there is none.

import (
	"context"
	"slices"
	"strings"
	"time"

	"stox.dev/stox/mapping"
)

// pubEntry is one published event state (RFC 3903 §6), keyed by entity-tag.
// PUBLISH state is soft state and is not written to the Store: after a
// restart the publisher's refresh gets 412 and it publishes afresh (RFC 3903
// §4.1), and meanwhile registration-based presence applies.
type pubEntry struct {
	doc     mapping.PIDF
	at      time.Time
	expires time.Time
	gen     uint64
}

// localAgent coalesces the broadcasts of one local user (RFC 3856 §6.10).
type localAgent struct {
	last  time.Time
	due   bool
	armed bool
}

// Publish handles a PUBLISH for a user of stox's own registrar (RFC 3903).
func (s *Service) Publish(ctx context.Context, r mapping.PublishRequest) mapping.PublishOutcome {
	if !s.isReady() {
		return mapping.PublishOutcome{Status: 503, Reason: "Service Unavailable"}
	}
	if !strings.EqualFold(r.Presentity.Host, s.d.SIP) {
		return mapping.PublishOutcome{Status: 403, Reason: "Not A Local User"}
	}
	if r.Presentity.User == "" || !s.isLocal(ctx, r.Presentity) {
		return mapping.PublishOutcome{Status: 404, Reason: "Not Found"}
	}
	exp := r.Expires
	switch {
	case exp < 0:
		exp = maxExpires // RFC 3903 §4.1 / RFC 3856: default 3600 s
	case exp > maxExpires:
		exp = maxExpires
	case exp > 0 && exp < minExpires:
		return mapping.PublishOutcome{Status: 423, Reason: "Interval Too Brief", MinExpires: minExpires}
	}
	exp = exp.Truncate(time.Second)
	var doc mapping.PIDF
	if len(r.Body) > 0 {
		if !isPIDF(r.ContentType) {
			return mapping.PublishOutcome{Status: 415, Reason: "Unsupported Media Type"} // RFC 3903 §6 step 5
		}
		var err error
		if doc, err = parsePIDF(r.Body); err != nil {
			return mapping.PublishOutcome{Status: 400, Reason: "Bad PIDF"}
		}
	}
	aor := noGR(r.Presentity).AOR()
	now := s.clk.Now()

	s.mu.Lock()
	defer s.mu.Unlock()
	entries := s.pubs[aor]
	if r.ETag == "" {
		// Initial publication (RFC 3903 §6 step 4: a body is required).
		if len(r.Body) == 0 {
			return mapping.PublishOutcome{Status: 400, Reason: "Missing Body"}
		}
		if exp == 0 {
			return mapping.PublishOutcome{Status: 200, Reason: "OK"}
		}
		if entries == nil {
			entries = make(map[string]*pubEntry)
			s.pubs[aor] = entries
		}
		e := &pubEntry{doc: doc, at: now}
		etag := s.storePub(aor, e, now.Add(exp))
		s.localChangedLocked(aor)
		return mapping.PublishOutcome{Status: 200, Reason: "OK", ETag: etag, Expires: exp}
	}
	e := entries[r.ETag]
	if e == nil || !e.expires.After(now) {
		return mapping.PublishOutcome{Status: 412, Reason: "Conditional Request Failed"} // RFC 3903 §6 step 3
	}
	delete(entries, r.ETag)
	if exp == 0 { // removal (RFC 3903 §4.5)
		e.gen++
		if len(entries) == 0 {
			delete(s.pubs, aor)
		}
		s.localChangedLocked(aor)
		return mapping.PublishOutcome{Status: 200, Reason: "OK", Expires: 0}
	}
	changed := len(r.Body) > 0
	if changed { // modification (§4.4); without a body a refresh (§4.3)
		e.doc, e.at = doc, now
	}
	etag := s.storePub(aor, e, now.Add(exp)) // a new entity-tag each time (§6 step 8)
	if changed {
		s.localChangedLocked(aor)
	}
	return mapping.PublishOutcome{Status: 200, Reason: "OK", ETag: etag, Expires: exp}
}

func (s *Service) storePub(aor string, e *pubEntry, expires time.Time) string {
	etag := newID()
	s.pubs[aor][etag] = e
	e.expires = expires
	e.gen++
	gen := e.gen
	s.tm.at(expires, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if e.gen != gen || s.pubs[aor][etag] != e {
			return
		}
		// Expiry falls back to the other publications, then to
		// registration-based presence.
		delete(s.pubs[aor], etag)
		if len(s.pubs[aor]) == 0 {
			delete(s.pubs, aor)
		}
		s.localChangedLocked(aor)
	})
	return etag
}

// localChanged: a binding change of a local user (event loop). With
// PUBLISH state the registration does not change the presence.
func (s *Service) localChanged(aor string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pubs[aor]) > 0 {
		return
	}
	s.localChangedLocked(aor)
}

// localChangedLocked broadcasts the user's presence to its authorized XMPP
// watchers, at most once per Coalesce interval (the first change at once,
// later ones merged at the end of the window; the last state wins).
func (s *Service) localChangedLocked(aor string) {
	if len(s.byAOR[aor]) == 0 {
		delete(s.locals, aor)
		return
	}
	la := s.locals[aor]
	if la == nil {
		la = &localAgent{}
		s.locals[aor] = la
	}
	la.due = true
	if la.armed {
		return
	}
	if s.clk.Now().Sub(la.last) >= s.cfg.Coalesce {
		s.flushLocal(aor, la)
		return
	}
	la.armed = true
	s.tm.at(la.last.Add(s.cfg.Coalesce), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		la.armed = false
		if la.due {
			s.flushLocal(aor, la)
		}
	})
}

func (s *Service) flushLocal(aor string, la *localAgent) {
	la.due, la.last = false, s.clk.Now()
	for sb := range s.byAOR[aor] {
		if sb.s.Dialog.CallID == "" && sb.s.Authorize {
			s.sendWatcher(sb, s.localPresence(sb))
		}
	}
}

// localPresence is a local user's presence for one watcher: the composed
// PUBLISH state (newest document first for person data; tuples of every
// publication, RFC 3903 §4 composition left simple), else registration
// (RFC 3856 §7.2): a live binding is available, none unavailable.
func (s *Service) localPresence(sb *sub) []mapping.Presence {
	bob := sb.bob
	if entries := s.pubs[sb.s.AOR]; len(entries) > 0 {
		es := make([]*pubEntry, 0, len(entries))
		for _, e := range entries {
			es = append(es, e)
		}
		slices.SortFunc(es, func(a, b *pubEntry) int { return b.at.Compare(a.at) })
		doc := mapping.PIDF{Entity: es[0].doc.Entity, Activities: es[0].doc.Activities, Notes: es[0].doc.Notes}
		for _, e := range es {
			doc.Tuples = append(doc.Tuples, e.doc.Tuples...)
		}
		if ps := pidfToPresence(s.d, doc, bob, sb.s.JID); len(ps) > 0 {
			return ps
		}
	}
	p := mapping.Presence{From: s.d.XMPPFrom(bob), To: sb.s.JID}
	if s.loc == nil || len(s.loc.Bindings(sb.s.AOR)) == 0 {
		p.Type = "unavailable"
	}
	return []mapping.Presence{p}
}
