package sip

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// rtx wraps a server transaction and remembers whether a final response went
// out, so the deferred fallback can answer 500: every request gets a final
// response (docs/architecture.md, "Rules that keep a gateway alive"); and
// which response (for finals.go).
type rtx struct {
	sip.ServerTransaction
	status atomic.Int32
	final  atomic.Pointer[sip.Response]
	// owned is set by a handler that keeps the transaction after it
	// returns (an INVITE waiting for its answer); it answers it itself.
	owned atomic.Bool
}

func (t *rtx) Respond(res *sip.Response) error {
	if res.StatusCode >= 200 {
		if !t.status.CompareAndSwap(0, int32(res.StatusCode)) {
			return fmt.Errorf("sip: final response already sent")
		}
		t.final.Store(res)
	}
	return t.ServerTransaction.Respond(res)
}

type handler func(req *sip.Request, tx *rtx)

// wrap guards h: panics are recovered and logged, every request except ACK
// gets a final response (500 when h sent none), Max-Forwards 0 is refused
// with 483 (RFC 3261 §8.2.2 via §16.3 step 2), and the outcome is counted.
func (s *Stack) wrap(h handler) func(req *sip.Request, tx sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if req.IsAck() || tx == nil {
			return
		}
		t := &rtx{ServerTransaction: tx}
		if s.finals.replay(req, t) {
			return // a retransmission, answered as the first time (RFC 3261 §17.2.2)
		}
		defer func() {
			p := recover()
			if p != nil {
				s.log.Error("sip handler panic", zap.Any("panic", p), zap.String("method", string(req.Method)),
					zap.String("call_id", callID(req)), zap.Stack("stack"))
			}
			if t.owned.Load() && p == nil {
				return // the owner answers
			}
			if t.status.Load() == 0 {
				s.respond(req, t, 500, "Server Internal Error", nil)
			}
			s.met.request(string(req.Method), int(t.status.Load()))
			s.finals.keep(req, t)
		}()
		if req.SipVersion != "SIP/2.0" {
			// RFC 3261 §8.2.2 / RFC 4475 §3.1.2.16: answer in our version.
			res := sip.NewResponseFromRequest(req, 505, "Version Not Supported", nil)
			res.SipVersion = "SIP/2.0"
			if err := t.Respond(res); err != nil {
				s.log.Debug("sip respond failed", zap.Int("status", 505), zap.Error(err))
			}
			return
		}
		if req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
			// RFC 3261 §8.1.1: these are mandatory (RFC 4475 §3.3.1).
			s.respond(req, t, 400, "Missing Required Header", nil)
			return
		}
		if mf := req.MaxForwards(); mf != nil && uint32(*mf) == 0 && req.Method != sip.OPTIONS {
			s.respond(req, t, 483, "Too Many Hops", nil)
			return
		}
		if req.Method != sip.CANCEL {
			// RFC 3261 §8.2.2.3: stox supports no extension a request can
			// require, so every option tag in Require is unsupported.
			var tags []string
			for _, h := range req.GetHeaders("Require") {
				for _, tag := range strings.Split(h.Value(), ",") {
					if tag = strings.TrimSpace(tag); tag != "" {
						tags = append(tags, tag)
					}
				}
			}
			if len(tags) > 0 {
				s.respond(req, t, 420, "Bad Extension", []sip.Header{sip.NewHeader("Unsupported", strings.Join(tags, ", "))})
				return
			}
		}
		h(req, t)
	}
}

// respond sends a final response with extra headers; errors are logged.
func (s *Stack) respond(req *sip.Request, tx *rtx, code int, reason string, hdrs []sip.Header) {
	s.respondTag(req, tx, code, reason, "", hdrs)
}

func retryAfter(d time.Duration) sip.Header {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return sip.NewHeader("Retry-After", strconv.FormatInt(secs, 10))
}

func callID(req *sip.Request) string {
	if c := req.CallID(); c != nil {
		return string(*c)
	}
	return ""
}

func (s *Stack) registerHandlers() {
	srv := s.srv
	srv.OnRegister(s.wrap(s.reg.handle))
	srv.OnMessage(s.wrap(s.handleMessage))
	srv.OnOptions(s.wrap(s.handleOptions))
	// ACK gets no response (RFC 3261 §17.2.1); one for a 2xx confirms its
	// dialog (calls.go).
	srv.OnAck(func(req *sip.Request, _ sip.ServerTransaction) {
		if req.To() != nil && req.CallID() != nil {
			s.handleAck(req)
		}
	})
	// BYE ends a call's dialog, 481 for any other (RFC 3261 §15.1.2). A
	// CANCEL that matched no transaction: 481 (§9.2); sipgo answers one
	// that matches.
	srv.OnBye(s.wrap(s.handleBye))
	srv.OnCancel(s.wrap(func(req *sip.Request, tx *rtx) {
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist", nil)
	}))
	// INVITE dialogs (calls.go); 488 without a calls capability.
	srv.OnInvite(s.wrap(s.handleInvite))
	srv.OnRequest(sip.INFO, s.wrap(s.handleInDialog))
	srv.OnRequest(sip.UPDATE, s.wrap(s.handleInDialog))
	// Presence (RFC 6665, RFC 3856, RFC 3903): 489/481 without a handler.
	srv.OnSubscribe(s.wrap(s.handleSubscribe))
	srv.OnNotify(s.wrap(s.handleNotify))
	srv.OnPublish(s.wrap(s.handlePublish))
	// Known methods stox does not allow (RFC 3261 §21.4.6: 405 with Allow).
	notAllowed := s.wrap(func(req *sip.Request, tx *rtx) {
		s.respond(req, tx, 405, "Method Not Allowed", []sip.Header{s.allowHeader()})
	})
	for _, m := range []sip.RequestMethod{sip.REFER, sip.PRACK} {
		srv.OnRequest(m, notAllowed)
	}
	// Everything else is a method stox does not know (RFC 3261 §21.5.2).
	srv.OnNoRoute(s.wrap(func(req *sip.Request, tx *rtx) {
		s.respond(req, tx, 501, "Not Implemented", []sip.Header{s.allowHeader()})
	}))
}

// handleOptions answers 200 with the capabilities (RFC 3261 §11.2).
func (s *Stack) handleOptions(req *sip.Request, tx *rtx) {
	hdrs := []sip.Header{
		s.allowHeader(),
		// Exactly the MESSAGE bodies the translation takes (RFC 7572 §5:
		// text/plain MUST); a 415 carries the same list.
		sip.NewHeader("Accept", mapping.AcceptedContentTypes),
		sip.NewHeader("Accept-Encoding", "identity"),
		sip.NewHeader("Accept-Language", "en"),
	}
	if s.presence != nil { // RFC 6665 §8.2.2
		hdrs = append(hdrs, s.allowEvents())
	}
	s.respond(req, tx, 200, "OK", hdrs)
}
