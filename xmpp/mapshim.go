package xmpp

// Private stand-ins for helpers another engineer is adding to package mapping
// (mapping.ParseJID, Domains.PromptToJID, mapping.ErrorType,
// mapping.StatusForCondition). Delete each once the real one lands.

import (
	"errors"
	"strings"

	"mellium.im/xmpp/jid"
	"stox.dev/stox/mapping"
)

// parseJID splits s into its wire-form parts after checking it with jid.Parse.
func parseJID(s string) (mapping.JID, error) {
	if s == "" {
		return mapping.JID{}, errors.New("empty JID")
	}
	if _, err := jid.Parse(s); err != nil {
		return mapping.JID{}, err
	}
	var j mapping.JID
	rest := s
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		j.Resource = rest[i+1:]
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		j.Local = rest[:i]
		rest = rest[i+1:]
	}
	j.Domain = rest
	return j, nil
}

// errorType is the RFC 6120 §8.3.3 default error type of a condition.
func errorType(c mapping.Condition) string {
	switch c {
	case mapping.BadRequest, mapping.JIDMalformed, mapping.NotAcceptable,
		mapping.PolicyViolation, mapping.Redirect:
		return "modify"
	case mapping.Forbidden, mapping.NotAuthorized, mapping.RegistrationRequired,
		mapping.SubscriptionRequired:
		return "auth"
	case mapping.RecipientUnavailable, mapping.RemoteServerTimeout,
		mapping.ResourceConstraint, mapping.UnexpectedRequest:
		return "wait"
	default:
		return "cancel"
	}
}

// statusForCondition maps an XMPP condition to a SIP status (RFC 7247 §7, Table 2).
func statusForCondition(c mapping.Condition) int {
	switch c {
	case mapping.BadRequest, mapping.JIDMalformed, mapping.PolicyViolation:
		return 400
	case mapping.Conflict:
		return 500
	case mapping.FeatureNotImplemented, mapping.UnexpectedRequest:
		return 405
	case mapping.Forbidden, mapping.NotAllowed, mapping.SubscriptionRequired:
		return 403
	case mapping.Gone:
		return 410
	case mapping.ItemNotFound, mapping.RemoteServerNotFound, mapping.ServiceUnavailable:
		return 404
	case mapping.NotAcceptable:
		return 406
	case mapping.NotAuthorized, mapping.RegistrationRequired:
		return 401
	case mapping.RecipientUnavailable:
		return 480
	case mapping.Redirect:
		return 302
	case mapping.RemoteServerTimeout:
		return 408
	case mapping.ResourceConstraint:
		return 500
	default:
		return 500
	}
}

// promptToJID turns a jabber:iq:gateway prompt (a SIP address) into a JID
// under the component domain (XEP-0100 §6.3, XEP-0106).
func promptToJID(d mapping.Domains, prompt string) (mapping.JID, error) {
	p := strings.TrimSpace(prompt)
	for _, pre := range []string{"sip:", "sips:", "im:", "pres:"} {
		if len(p) > len(pre) && strings.EqualFold(p[:len(pre)], pre) {
			p = p[len(pre):]
			break
		}
	}
	if p == "" {
		return mapping.JID{}, errors.New("empty prompt")
	}
	user, host := p, ""
	if i := strings.LastIndexByte(p, '@'); i >= 0 {
		user, host = p[:i], p[i+1:]
	}
	if user == "" {
		return mapping.JID{}, errors.New("no user part")
	}
	local := user
	if host != "" && !strings.EqualFold(host, d.SIP) {
		local = user + "@" + host
	}
	j, err := jid.New(jid.Escape.String(local), d.XMPP, "")
	if err != nil {
		return mapping.JID{}, err
	}
	return mapping.JID{Local: j.Localpart(), Domain: j.Domainpart()}, nil
}
