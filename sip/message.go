package sip

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"stox.dev/stox/mapping"
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

	u, ok := s.uris(req, tx, "", log, &req.Recipient, &from.Address, &to.Address)
	if !ok {
		return
	}
	m := mapping.SIPMessage{
		RequestURI:  u[0],
		From:        u[1],
		FromDisplay: from.DisplayName,
		To:          u[2],
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
	out := askHandler(s, log, "message", func(ctx context.Context) (mapping.Outcome, int) {
		o := s.messages.ReceiveSIP(ctx, m)
		return o, o.Status
	}, mapping.Outcome{Status: 500})
	var hdrs []sip.Header
	if out.Status == 415 { // RFC 3261 §21.4.13: say what we take
		hdrs = append(hdrs, sip.NewHeader("Accept", mapping.AcceptedContentTypes))
	}
	s.answer(req, tx, out.Status, out.Reason, out.RetryAfter, "", hdrs)
}

// maxMessageSize is RFC 3428 §6: a MESSAGE outside a congestion-controlled
// session MUST NOT exceed 1300 bytes unless the path MTU is known. stox does
// not know the path, so it enforces the limit on every transport.
const maxMessageSize = 1300

// escapeDisplay escapes a display name for the quoted-string sipgo writes
// around it (RFC 3261 §25.1 quoted-pair).
func escapeDisplay(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// SendMessage sends m as an out-of-dialog MESSAGE to t and waits for the final
// response (mapping.SIPLink). Values that would break the header syntax give a
// *mapping.Failure with Status 400, an oversized request one with Status 413
// (policy-violation); a transaction timeout or transport failure is an error.
// The next hop is t.Destination, else the outbound proxy, else the
// Request-URI (nextHop).
func (s *Stack) SendMessage(ctx context.Context, m mapping.SIPMessage, t mapping.Target) (mapping.Response, error) {
	if err := checkHeaders(
		field{"From display name", m.FromDisplay}, field{"Call-ID", m.CallID}, field{"Subject", m.Subject},
		field{"Content-Type", m.ContentType}, field{"Content-Language", m.ContentLanguage},
		field{"From", m.From.User + m.From.Host + m.From.GR}, field{"To", m.To.User + m.To.Host + m.To.GR},
		field{"Request-URI", t.URI.User + t.URI.Host + t.URI.GR}, field{"Destination", t.Destination},
	); err != nil {
		return mapping.Response{}, err
	}
	if strings.ContainsAny(m.CallID, " \t") || strings.ContainsAny(m.ContentType+m.ContentLanguage, "\t") {
		return mapping.Response{}, badRequest("illegal whitespace in header")
	}
	if t.URI.Host == "" || m.From.Host == "" || m.To.Host == "" {
		return mapping.Response{}, badRequest("missing host")
	}
	if strings.EqualFold(t.URI.Scheme, "sips") {
		// RFC 7247 §8: stox never translates to sips.
		return mapping.Response{}, &mapping.Failure{Condition: mapping.RemoteServerNotFound, Status: 416, Text: "sips not supported"}
	}
	ruri, err1 := fromURI(t.URI)
	furi, err2 := fromURI(m.From)
	turi, err3 := fromURI(m.To)
	if err := errors.Join(err1, err2, err3); err != nil {
		return mapping.Response{}, badRequest("bad URI: " + err.Error())
	}
	from := &sip.FromHeader{Address: furi, Params: sip.NewParams()}
	if m.FromDisplay != "" {
		from.DisplayName = escapeDisplay(m.FromDisplay)
	}
	from.Params.Add("tag", sip.GenerateTagN(16))
	// GRUU belongs to From only (RFC 7572 §4): the To of a new request has no tag.
	to := &sip.ToHeader{Address: turi}
	cid := m.CallID
	if cid == "" {
		cid = newCallID()
	}
	req, h, err := s.newRequest(uacRequest{method: sip.MESSAGE, ruri: ruri, from: from, to: to,
		callID: cid, cseq: 1, destination: t.Destination})
	if err != nil {
		return mapping.Response{}, err
	}
	if m.Subject != "" {
		req.AppendHeader(sip.NewHeader("Subject", m.Subject))
	}
	if m.ContentLanguage != "" {
		req.AppendHeader(sip.NewHeader("Content-Language", m.ContentLanguage))
	}
	ct := m.ContentType
	if ct == "" {
		ct = "text/plain;charset=UTF-8"
	}
	setBody(req, ct, m.Body)
	if n := len(req.String()); n > maxMessageSize {
		return mapping.Response{}, &mapping.Failure{Condition: mapping.PolicyViolation, Status: 413,
			Text: fmt.Sprintf("message of %d bytes exceeds the %d-byte limit of RFC 3428 §6", n, maxMessageSize)}
	}
	log := s.flow(zap.String("call_id", cid), zap.Stringer("from", &from.Address), zap.Stringer("to", &to.Address))
	res, err := s.sendRequest(ctx, req, h, log)
	if err != nil {
		return mapping.Response{}, err
	}
	return mapping.Response{Status: res.StatusCode, Reason: res.Reason}, nil
}
