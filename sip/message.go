package sip

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

const (
	maxBody        = 64 << 10
	handlerTimeout = 30 * time.Second // under Timer F (64·T1 = 32 s, RFC 3261 §17.1.2.2)
)

// handleMessage is the pager-mode MESSAGE UAS (RFC 3428 §7).
func (s *Stack) handleMessage(req *sip.Request, tx *rtx) {
	from, to := req.From(), req.To()
	if from == nil || to == nil {
		s.respond(req, tx, 400, "Bad Request", nil)
		return
	}
	if s.messages == nil { // no IM capability registered (RFC 3261 §21.4.6)
		s.respond(req, tx, 405, "Method Not Allowed", []sip.Header{s.allowHeader()})
		return
	}
	log := s.flow(zap.String("call_id", callID(req)),
		zap.Stringer("from", &from.Address), zap.Stringer("to", &to.Address))
	// RFC 3261 §20.15: a body needs its Content-Type (400 when missing);
	// oversize bodies get 413.
	ctype, body, ok := s.bodyAndType(req, tx, "")
	if !ok {
		return
	}

	// Admission: a bounded number of MESSAGEs in the core at once.
	release, ok := s.admit(req, tx, log)
	if !ok {
		return
	}
	defer release()

	// Who may send: trusted peers; our own users after digest (RFC 3428 §9,
	// RFC 3261 §22.3 with 407); nobody else (stox is not an open relay).
	if !s.authorizeSender(req, tx, from, log) {
		return
	}

	ruri, err1 := toURI(&req.Recipient)
	furi, err2 := toURI(&from.Address)
	turi, err3 := toURI(&to.Address)
	if err := errors.Join(err1, err2, err3); err != nil {
		// RFC 3261 §21.4.17 for a scheme we do not know, else a bad URI.
		log.Info("message: bad URI", zap.Error(err))
		if !knownScheme(req.Recipient.Scheme) || !knownScheme(from.Address.Scheme) || !knownScheme(to.Address.Scheme) {
			s.respond(req, tx, 416, "Unsupported URI Scheme", nil)
		} else {
			s.respond(req, tx, 400, "Bad Request URI", nil)
		}
		return
	}
	m := mapping.SIPMessage{
		RequestURI:  ruri,
		From:        furi,
		FromDisplay: from.DisplayName,
		To:          turi,
		CallID:      callID(req),
		ContentType: ctype,
		Body:        body,
	}
	if h := firstHeader(req, "Subject", "s"); h != nil {
		m.Subject = h.Value()
	}
	if h := req.GetHeader("Content-Language"); h != nil {
		m.ContentLanguage = strings.TrimSpace(h.Value())
	}
	log.Debug("message in")
	ctx, cancel := context.WithTimeout(s.context(), handlerTimeout)
	out := s.messages.ReceiveSIP(ctx, m)
	cancel()
	if out.Status < 200 || out.Status > 699 {
		log.Error("message: handler gave no final status", zap.Int("status", out.Status))
		out = mapping.Outcome{Status: 500, Reason: "Server Internal Error"}
	}
	reason := out.Reason
	if reason == "" || strings.ContainsAny(reason, "\r\n\x00") {
		reason = defaultReason(out.Status)
	}
	var hdrs []sip.Header
	if out.RetryAfter > 0 {
		hdrs = append(hdrs, retryAfter(out.RetryAfter))
	}
	if out.Status == 415 { // RFC 3261 §21.4.13: say what we take
		hdrs = append(hdrs, sip.NewHeader("Accept", mapping.AcceptedContentTypes))
	}
	s.respond(req, tx, out.Status, reason, hdrs)
}

func knownScheme(s string) bool {
	switch strings.ToLower(s) {
	case "sip", "sips", "im", "pres":
		return true
	}
	return false
}

func firstHeader(req *sip.Request, names ...string) sip.Header {
	for _, n := range names {
		if h := req.GetHeader(n); h != nil {
			return h
		}
	}
	return nil
}

func defaultReason(code int) string {
	switch code {
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 413:
		return "Request Entity Too Large"
	case 415:
		return "Unsupported Media Type"
	case 480:
		return "Temporarily Unavailable"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Server Time-out"
	case 603:
		return "Decline"
	}
	switch {
	case code < 300:
		return "OK"
	case code < 400:
		return "Redirect"
	case code < 500:
		return "Client Error"
	case code < 600:
		return "Server Error"
	}
	return "Global Failure"
}
