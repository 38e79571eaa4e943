package presence

import (
	"time"

	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// add indexes a new subscription.
func (s *Service) add(sb *sub) {
	s.subs[sb.key] = sb
	if sb.s.Kind == mapping.XMPPWatcher {
		if sb.s.Dialog.CallID != "" {
			s.byDialog[dialogKey{sb.s.Dialog.CallID, sb.s.Dialog.LocalTag}] = sb
		}
		set := s.byAOR[sb.s.AOR]
		if set == nil {
			set = make(map[*sub]struct{})
			s.byAOR[sb.s.AOR] = set
		}
		set[sb] = struct{}{}
	}
	s.counts[sb.s.Kind]++
	s.met.Subscriptions(sb.s.Kind, s.counts[sb.s.Kind])
}

// drop removes a subscription from memory and from the Store. Its final
// NOTIFY or SUBSCRIBE, if any, may still be under way.
func (s *Service) drop(sb *sub) {
	if sb.gone {
		return
	}
	sb.gone = true
	if s.subs[sb.key] == sb {
		delete(s.subs, sb.key)
	}
	s.unindexDialog(sb)
	if set := s.byAOR[sb.s.AOR]; set != nil {
		delete(set, sb)
		if len(set) == 0 {
			delete(s.byAOR, sb.s.AOR)
		}
	}
	del := mapping.Subscription{Kind: sb.s.Kind, JID: sb.s.JID, AOR: sb.s.AOR}
	s.wr.put(subWriteKey(sb.key), &writeOp{delSub: &del})
	s.counts[sb.s.Kind]--
	s.met.Subscriptions(sb.s.Kind, s.counts[sb.s.Kind])
}

// unindexDialog forgets an XMPPWatcher dialog; NOTIFYs still arriving for
// it (the final terminated one after Expires 0, RFC 6665 §4.4.1) get 200
// for closingFor instead of 481.
func (s *Service) unindexDialog(sb *sub) {
	if sb.s.Kind != mapping.XMPPWatcher || sb.s.Dialog.CallID == "" {
		return
	}
	dk := dialogKey{sb.s.Dialog.CallID, sb.s.Dialog.LocalTag}
	if s.byDialog[dk] == sb {
		delete(s.byDialog, dk)
		s.closing[dk] = s.clk.Now()
		s.tm.at(s.clk.Now().Add(closingFor), func() {
			s.mu.Lock()
			delete(s.closing, dk)
			s.mu.Unlock()
		})
	}
}

const closingFor = 2 * time.Minute

// persist writes the subscription behind (last write wins per key).
func (s *Service) persist(sb *sub) { s.persistDone(sb, nil) }

func (s *Service) persistDone(sb *sub, done func(error)) {
	if sb.gone {
		if done != nil {
			done(nil)
		}
		return
	}
	cp := sb.s
	cp.Dialog.RouteSet = append([]string(nil), cp.Dialog.RouteSet...)
	cseq := cp.Dialog.LocalCSeq
	op := &writeOp{sub: &cp, done: []func(error){func(err error) {
		if err == nil {
			s.mu.Lock()
			sb.durableCSeq = max(sb.durableCSeq, cseq)
			s.mu.Unlock()
		}
		if done != nil {
			done(err)
		}
	}}}
	s.wr.put(subWriteKey(sb.key), op)
}

func (s *Service) sendXMPP(p mapping.Presence) error {
	err := s.xmpp.SendPresence(p)
	if err != nil {
		s.log.Warn("send stanza", zap.Stringer("from", p.From), zap.Stringer("to", p.To), zap.String("type", p.Type), zap.Error(err))
	}
	return err
}

// restore rebuilds memory from the Store before any goroutine runs. Every
// dialog resumes at the stored LocalCSeq + cseqHeadroom, above any CSeq
// sent before the restart (see cseqWait).
func (s *Service) restore(subs []mapping.Subscription, press []mapping.Presence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range press {
		bare := p.From.Bare().String()
		if s.pres[bare] == nil {
			s.pres[bare] = make(map[string]*cached)
		}
		s.pres[bare][p.From.Resource] = &cached{p: p, when: s.clk.Now()}
	}
	for _, st := range subs {
		st.JID = st.JID.Bare()
		sb := &sub{s: st, key: subKey{kind: st.Kind, jid: st.JID.String(), aor: st.AOR}, durableCSeq: st.Dialog.LocalCSeq}
		sb.s.Dialog.LocalCSeq += cseqHeadroom
		if st.Kind != mapping.SIPWatcher && st.Kind != mapping.XMPPWatcher {
			continue
		}
		if st.Kind == mapping.XMPPWatcher {
			u, err := mapping.ParseURI(st.AOR)
			if err != nil { // written by something else than stox: not ours to guess
				s.log.Warn("stored subscription with a malformed AOR ignored",
					zap.String("aor", st.AOR), zap.Stringer("jid", st.JID), zap.Error(err))
				continue
			}
			sb.bob = noGR(u)
		}
		s.add(sb)
		if st.Kind == mapping.SIPWatcher && st.State == mapping.SubActive {
			s.authz[pairKey{sb.key.jid, st.AOR}] = true
		}
	}
}

// resume runs once the workers are up: SIP watcher subscriptions get their
// expiry timers back and their contacts are probed so that NOTIFYs resume
// with fresh state (the server answers the probe only if the watcher is
// authorized: nothing reaches an unauthorized watcher, §8.2); expired ones
// end now. XMPP watcher subscriptions re-arm refresh or retry.
func (s *Service) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clk.Now()
	probed := make(map[pairKey]bool)
	for _, sb := range s.subs {
		switch sb.s.Kind {
		case mapping.SIPWatcher:
			if !sb.s.Dialog.Expires.After(now) {
				s.endSIPWatcher(sb, "timeout")
				continue
			}
			s.armExpiry(sb)
			if sb.s.State == mapping.SubPending {
				s.armAsk(sb)
			}
			pk := pairKey{sb.key.jid, sb.s.AOR}
			if wj, ok := s.watcherJID(sb.s.AOR); ok && !probed[pk] {
				probed[pk] = true
				s.sendXMPP(mapping.Presence{From: wj, To: sb.s.JID, Type: "probe"})
			}
		case mapping.XMPPWatcher:
			if sb.s.Dialog.CallID == "" {
				continue // local presentity: nothing to refresh
			}
			// Unknown whether the watcher is online: the refresh sends a
			// probe first and proceeds only if her server answers (§8.1).
			sb.online = true
			at := sb.s.RetryAt
			if at.IsZero() || at.Before(now) {
				at = now
			}
			if sb.s.Authorize {
				s.armRefresh(sb, at)
			} else {
				s.armRetry(sb, at)
			}
		}
	}
	s.askStale() // pending requests from before the restart, once the link is up
}
