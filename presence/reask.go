package presence

// Asking again: the authorization request stox sends to an XMPP contact on
// behalf of a SIP watcher (<presence type='subscribe'>, RFC 8048 §5.3.1)
// can be lost with the component link (stanzas in flight when it drops,
// or sent while it is down), and so can the contact's answer. Without a
// repeat the watcher would stay pending for good. RFC 6121 §3.1.2: the
// user's server SHOULD resend an unanswered subscription request "after a
// certain amount of time has elapsed"; §3.1.3: the contact's server answers
// a repeat at once when the authorization exists, and otherwise delivers
// it to the contact (at most one stored request while she is offline).
//
// stox asks again every pending SIP watcher whose request went out before
// the link last came up, and each pending one after AskAgain, doubling up
// to an hour. Repeats go out through one paced queue (AskRate per second)
// so that a reconnect with thousands of pending watchers does not burst
// them at a server that may have been slow in the first place.

import (
	"context"
	"errors"
	"time"

	"stox.dev/stox/mapping"
)

// LinkChanged is told when the XEP-0114 component link goes up or down
// (xmpp.LinkObserver). When it comes up, every pending SIP watcher whose
// request was sent before is asked again. It does not block.
func (s *Service) LinkChanged(up bool) {
	if !up {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.linkGen++
	s.askStale()
	select {
	case s.linkUp <- struct{}{}:
	default:
	}
}

// askStale queues every pending SIP watcher asked before the current link
// came up (s.mu held).
func (s *Service) askStale() {
	if s.linkGen == 0 {
		return // the link has not come up yet: LinkChanged will do it
	}
	for _, sb := range s.subs {
		if sb.s.Kind == mapping.SIPWatcher && sb.s.State == mapping.SubPending && sb.askedOn < s.linkGen {
			s.queueAsk(sb, false)
		}
	}
}

// ask sends sb's first request (s.mu held). One the link's queue could
// not take goes to the paced queue at once; one lost with the link is
// asked again when it comes back.
func (s *Service) ask(sb *sub, req mapping.Presence) {
	err := s.sendXMPP(req)
	s.asked(sb)
	if errors.Is(err, mapping.ErrQueueFull) {
		s.queueAsk(sb, false)
	}
}

// asked records that sb's request went out (or was handed to the link)
// now, and arms the next repeat (s.mu held).
func (s *Service) asked(sb *sub) {
	sb.askedOn = s.linkGen
	s.armAsk(sb)
}

// armAsk arms the next repeat of sb's request, AskAgain doubled per repeat
// already made, at most an hour (s.mu held).
func (s *Service) armAsk(sb *sub) {
	delay := s.cfg.AskAgain
	for i := 0; i < sb.asks && delay < maxExpires; i++ {
		delay *= 2
	}
	delay = min(delay, maxExpires)
	sb.askTm++
	gen := sb.askTm
	s.tm.at(s.clk.Now().Add(delay), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if sb.gone || sb.askTm != gen || sb.s.State != mapping.SubPending {
			return
		}
		s.queueAsk(sb, false)
	})
}

// queueAsk puts sb on the paced queue once (s.mu held).
func (s *Service) queueAsk(sb *sub, front bool) {
	if sb.askQueued {
		return
	}
	sb.askQueued = true
	if front {
		s.askQ = append([]*sub{sb}, s.askQ...)
	} else {
		s.askQ = append(s.askQ, sb)
	}
	select {
	case s.askKick <- struct{}{}:
	default:
	}
}

// asker sends the queued repeats, at most AskRate per second. While the
// link is down it waits for LinkChanged.
func (s *Service) asker(ctx context.Context) {
	every := time.Second / time.Duration(s.cfg.AskRate)
	pace := time.NewTimer(0)
	defer pace.Stop()
	for {
		s.mu.Lock()
		var sb *sub
		for sb == nil && len(s.askQ) > 0 {
			sb = s.askQ[0]
			s.askQ[0] = nil
			s.askQ = s.askQ[1:]
			sb.askQueued = false
			if sb.gone || sb.s.State != mapping.SubPending {
				sb = nil
			}
		}
		var p mapping.Presence
		if sb != nil {
			if wj, ok := s.watcherJID(sb.s.AOR); ok {
				p = mapping.Presence{From: wj, To: sb.s.JID, Type: "subscribe", ID: newID()}
			} else {
				sb = nil
			}
		}
		s.mu.Unlock()
		if sb == nil {
			select {
			case <-ctx.Done():
				return
			case <-s.askKick:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-pace.C:
		}
		err := s.xmpp.SendPresence(p)
		pace.Reset(every)
		s.mu.Lock()
		switch {
		case sb.gone || sb.s.State != mapping.SubPending:
		case errors.Is(err, mapping.ErrLinkDown):
			// The next LinkChanged(true) asks it (and the rest) again.
			sb.askedOn = s.linkGen
			s.queueAsk(sb, true)
			s.mu.Unlock()
			s.log.Debug("link down: repeats wait for it")
			select {
			case <-ctx.Done():
				return
			case <-s.linkUp:
			}
			continue
		case err != nil:
			s.queueAsk(sb, true) // queue full: try again at the next slot
		default:
			sb.asks++
			s.asked(sb)
		}
		s.mu.Unlock()
	}
}
