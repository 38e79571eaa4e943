package mapping

// statusRule is one row of RFC 7247 §7.1 Table 2. Conditions whose code
// depends on the addressee carry a full-JID (4xx) and a bare-JID (6xx or 5xx)
// code; the rest use the same code for both.
type statusRule struct{ full, bare int }

// xmppToSIP is RFC 7247 §7.1 Table 2. Where the table offers a choice:
//   - gone is special-cased in StatusForCondition: 301 with a new address,
//     410 without (note 3, MUST).
//   - remote-server-not-found: 404 (the server does not exist); the 408
//     alternative (cannot be resolved) is indistinguishable to a gateway.
//   - service-unavailable: never 503, which a SIP client takes as "this whole
//     server is down" (Table 2 note: NOT RECOMMENDED). XMPP uses the
//     condition to hide whether an account exists and for "feature not
//     supported", so a bare JID gets 403 and a full JID 405.
//   - unexpected-request: 491, the first of "491 or 400".
var xmppToSIP = map[Condition]statusRule{
	BadRequest:            {400, 400},
	Conflict:              {400, 400},
	FeatureNotImplemented: {405, 501},
	Forbidden:             {403, 603},
	InternalServerError:   {500, 500},
	ItemNotFound:          {404, 604},
	JIDMalformed:          {400, 400},
	NotAcceptable:         {406, 606},
	NotAllowed:            {403, 403},
	NotAuthorized:         {401, 401},
	PolicyViolation:       {403, 403},
	RecipientUnavailable:  {480, 600},
	Redirect:              {302, 302},
	RegistrationRequired:  {407, 407},
	RemoteServerNotFound:  {404, 404},
	RemoteServerTimeout:   {408, 408},
	ResourceConstraint:    {500, 500},
	ServiceUnavailable:    {405, 403},
	SubscriptionRequired:  {400, 400},
	UndefinedCondition:    {400, 400},
	UnexpectedRequest:     {491, 491},
}

// StatusForCondition maps an XMPP stanza error condition to a SIP status
// code per RFC 7247 §7.1 Table 2. fullJID says whether the failed stanza was
// addressed to a full JID (4xx) or a bare JID (6xx, "anywhere"); hasAddress
// whether a gone condition carries a new address. Unknown conditions are
// treated as undefined-condition (400).
func StatusForCondition(c Condition, fullJID, hasAddress bool) int {
	if c == Gone {
		if hasAddress {
			return 301
		}
		return 410
	}
	r, ok := xmppToSIP[c]
	if !ok {
		r = xmppToSIP[UndefinedCondition]
	}
	if fullJID {
		return r.full
	}
	return r.bare
}

// sipToXMPP is RFC 7247 §7.2 Table 3; where it names alternatives the first
// is used (403 forbidden, 404 item-not-found, 408 remote-server-timeout).
var sipToXMPP = map[int]Condition{
	300: Redirect, 301: Gone, 302: Redirect, 305: Redirect, 380: NotAcceptable,
	400: BadRequest, 401: NotAuthorized, 402: BadRequest, 403: Forbidden,
	404: ItemNotFound, 405: FeatureNotImplemented, 406: NotAcceptable,
	407: RegistrationRequired, 408: RemoteServerTimeout, 410: Gone,
	413: PolicyViolation, 414: PolicyViolation, 415: NotAcceptable,
	416: NotAcceptable, 420: FeatureNotImplemented, 421: NotAcceptable,
	423: ResourceConstraint, 430: RecipientUnavailable, 439: FeatureNotImplemented,
	440: PolicyViolation, 480: RecipientUnavailable, 481: ItemNotFound,
	482: NotAcceptable, 483: NotAcceptable, 484: ItemNotFound, 485: ItemNotFound,
	486: RecipientUnavailable, 487: RecipientUnavailable, 488: NotAcceptable,
	489: PolicyViolation, 491: UnexpectedRequest, 493: BadRequest,
	500: InternalServerError, 501: FeatureNotImplemented, 502: RemoteServerNotFound,
	503: InternalServerError, 504: RemoteServerTimeout, 505: NotAcceptable,
	513: PolicyViolation,
	600: RecipientUnavailable, 603: RecipientUnavailable, 604: ItemNotFound,
	606: NotAcceptable,
}

// classDefault is Table 3's fallback for unlisted codes of each class.
var classDefault = [...]Condition{3: Redirect, 4: BadRequest, 5: InternalServerError, 6: RecipientUnavailable}

// ConditionForStatus maps a SIP failure status to an XMPP condition per
// RFC 7247 §7.2 Table 3, falling back by class for unlisted codes. 1xx and
// 2xx have no XMPP equivalent (§7): they, and anything outside 100–699, give
// undefined-condition.
func ConditionForStatus(status int) Condition {
	if c, ok := sipToXMPP[status]; ok {
		return c
	}
	if class := status / 100; class >= 3 && class <= 6 {
		return classDefault[class]
	}
	return UndefinedCondition
}

// errorTypes gives each condition the error type RFC 6120 §8.3.3 assigns it
// (some libraries still use RFC 3920 values, e.g. gone=modify).
var errorTypes = map[Condition]string{
	BadRequest:            "modify",
	Conflict:              "cancel",
	FeatureNotImplemented: "cancel",
	Forbidden:             "auth",
	Gone:                  "cancel",
	InternalServerError:   "cancel",
	ItemNotFound:          "cancel",
	JIDMalformed:          "modify",
	NotAcceptable:         "modify",
	NotAllowed:            "cancel",
	NotAuthorized:         "auth",
	PolicyViolation:       "modify",
	RecipientUnavailable:  "wait",
	Redirect:              "modify",
	RegistrationRequired:  "auth",
	RemoteServerNotFound:  "cancel",
	RemoteServerTimeout:   "wait",
	ResourceConstraint:    "wait",
	ServiceUnavailable:    "cancel",
	SubscriptionRequired:  "auth",
	UndefinedCondition:    "cancel",
	UnexpectedRequest:     "wait",
}

// ErrorType returns the RFC 6120 §8.3.3 error type for c; "cancel" for
// conditions RFC 6120 does not define.
func ErrorType(c Condition) string {
	if t, ok := errorTypes[c]; ok {
		return t
	}
	return "cancel"
}

// FailureFromStatus describes a SIP final response as a Failure, the
// condition taken from Table 3 and the reason phrase kept as text (RFC 7247
// §7: Reason-Phrase and <text/> may be copied into each other).
func FailureFromStatus(status int, reason string) *Failure {
	return &Failure{Condition: ConditionForStatus(status), Status: status, Text: reason}
}
