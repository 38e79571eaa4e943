package sip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"stox.dev/stox/mapping"
)

// maxMessageSize is RFC 3428 §6: a MESSAGE outside a congestion-controlled
// session MUST NOT exceed 1300 bytes unless the path MTU is known. stox does
// not know the path, so it enforces the limit on every transport.
const maxMessageSize = 1300

// ErrNotRunning is returned by SendMessage before Run has bound the listeners.
var ErrNotRunning = errors.New("sip: stack not running")

func badRequest(text string) *mapping.Failure {
	return &mapping.Failure{Condition: mapping.BadRequest, Status: 400, Text: text}
}

// checkHeader refuses header values that could inject header lines: CR, LF
// and NUL (RFC 3261 §7.3.1 folding is never produced either).
func checkHeader(name, v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return badRequest("illegal character in " + name)
	}
	return nil
}

// escapeDisplay escapes a display name for the quoted-string sipgo writes
// around it (RFC 3261 §25.1 quoted-pair).
func escapeDisplay(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// SendMessage sends m as an out-of-dialog MESSAGE to t and waits for the final
// response (mapping.SIPLink). Values that would break the header syntax give a
// *mapping.Failure with Status 400, an oversized request one with Status 413
// (policy-violation); a transaction timeout or transport failure is an error.
func (s *Stack) SendMessage(ctx context.Context, m mapping.SIPMessage, t mapping.Target) (mapping.Response, error) {
	for _, f := range []struct{ n, v string }{
		{"From display name", m.FromDisplay}, {"Call-ID", m.CallID}, {"Subject", m.Subject},
		{"Content-Type", m.ContentType}, {"Content-Language", m.ContentLanguage},
		{"From", m.From.User + m.From.Host + m.From.GR}, {"To", m.To.User + m.To.Host + m.To.GR},
		{"Request-URI", t.URI.User + t.URI.Host + t.URI.GR}, {"Destination", t.Destination},
	} {
		if err := checkHeader(f.n, f.v); err != nil {
			return mapping.Response{}, err
		}
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

	// Where to: Target.Destination, else the outbound proxy for other
	// domains, else the Request-URI (RFC 3263 via sipgo's resolver).
	network, dest := "udp", ""
	switch {
	case t.Destination != "":
		network, dest = splitDest(t.Destination)
	case s.cfg.OutboundProxy != "":
		network, dest = splitDest(s.cfg.OutboundProxy)
	}
	l, ok := s.listenerFor(network)
	if !ok {
		if s.context() == nil {
			return mapping.Response{}, ErrNotRunning
		}
		return mapping.Response{}, fmt.Errorf("sip: no %s listener", network)
	}

	ruri, err1 := fromURI(t.URI)
	furi, err2 := fromURI(m.From)
	turi, err3 := fromURI(m.To)
	if err := errors.Join(err1, err2, err3); err != nil {
		return mapping.Response{}, badRequest("bad URI: " + err.Error())
	}
	req := sip.NewRequest(sip.MESSAGE, ruri)
	req.AppendHeader(s.newVia(network, l))
	from := &sip.FromHeader{Address: furi, Params: sip.NewParams()}
	if m.FromDisplay != "" {
		from.DisplayName = escapeDisplay(m.FromDisplay)
	}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	to := &sip.ToHeader{Address: turi}
	// GRUU belongs to From only (RFC 7572 §4): the To of a new request has no tag.
	req.AppendHeader(to)
	cid := m.CallID
	if cid == "" {
		cid = newCallID()
	}
	callid := sip.CallIDHeader(cid)
	req.AppendHeader(&callid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.MESSAGE})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	if m.Subject != "" {
		req.AppendHeader(sip.NewHeader("Subject", m.Subject))
	}
	if m.ContentLanguage != "" {
		req.AppendHeader(sip.NewHeader("Content-Language", m.ContentLanguage))
	}
	if len(m.Body) > 0 {
		ct := m.ContentType
		if ct == "" {
			ct = "text/plain;charset=UTF-8"
		}
		cth := sip.ContentTypeHeader(ct)
		req.AppendHeader(&cth)
	}
	req.SetBody(m.Body)
	s.setHop(req, network, dest, l)
	if n := len(req.String()); n > maxMessageSize {
		return mapping.Response{}, &mapping.Failure{Condition: mapping.PolicyViolation, Status: 413,
			Text: fmt.Sprintf("message of %d bytes exceeds the %d-byte limit of RFC 3428 §6", n, maxMessageSize)}
	}

	log := s.flow(zap.String("call_id", cid), zap.Stringer("from", &from.Address),
		zap.Stringer("to", &to.Address))
	log.Debug("message out", zap.Stringer("ruri", &req.Recipient), zap.String("dest", dest))
	res, err := s.client.Do(ctx, req, noBuild)
	if err != nil {
		log.Info("message out failed", zap.Error(err))
		return mapping.Response{}, err
	}
	return mapping.Response{Status: res.StatusCode, Reason: res.Reason}, nil
}

// noBuild is a request option that leaves the request as built: passing any
// option stops sipgo from adding its own headers.
func noBuild(*sipgo.Client, *sip.Request) error { return nil }

func newCallID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// splitDest splits "udp:1.2.3.4:5060" or "1.2.3.4:5060" into network and
// host:port.
func splitDest(d string) (network, hostport string) {
	if i := strings.IndexByte(d, ':'); i > 0 {
		switch t := strings.ToLower(d[:i]); t {
		case "udp", "tcp", "tls", "ws", "wss":
			return t, d[i+1:]
		}
	}
	return "udp", d
}
