package mapping

import "testing"

// RFC 7247 §7.1 Table 2, every row; full is the code for a full JID, bare
// for a bare JID.
var table2 = []struct {
	cond       Condition
	full, bare int
}{
	{BadRequest, 400, 400},
	{Conflict, 400, 400},
	{FeatureNotImplemented, 405, 501},
	{Forbidden, 403, 603},
	{InternalServerError, 500, 500},
	{ItemNotFound, 404, 604},
	{JIDMalformed, 400, 400},
	{NotAcceptable, 406, 606},
	{NotAllowed, 403, 403},
	{NotAuthorized, 401, 401},
	{PolicyViolation, 403, 403},
	{RecipientUnavailable, 480, 600},
	{Redirect, 302, 302},
	{RegistrationRequired, 407, 407},
	{RemoteServerNotFound, 404, 404},
	{RemoteServerTimeout, 408, 408},
	{ResourceConstraint, 500, 500},
	{ServiceUnavailable, 405, 403},
	{SubscriptionRequired, 400, 400},
	{UndefinedCondition, 400, 400},
	{UnexpectedRequest, 491, 491},
	{Condition("no-such-condition"), 400, 400},
}

func TestStatusForCondition(t *testing.T) {
	for _, tc := range table2 {
		if got := StatusForCondition(tc.cond, true, false); got != tc.full {
			t.Errorf("StatusForCondition(%s, full) = %d, want %d", tc.cond, got, tc.full)
		}
		if got := StatusForCondition(tc.cond, false, false); got != tc.bare {
			t.Errorf("StatusForCondition(%s, bare) = %d, want %d", tc.cond, got, tc.bare)
		}
	}
	// Note 3: gone is 301 with a new address, 410 without (MUST).
	for _, full := range []bool{true, false} {
		if got := StatusForCondition(Gone, full, true); got != 301 {
			t.Errorf("gone with address = %d, want 301", got)
		}
		if got := StatusForCondition(Gone, full, false); got != 410 {
			t.Errorf("gone without address = %d, want 410", got)
		}
	}
}

// Table 2 note: 503 tells a SIP client the whole server is down, so no
// condition may produce it, service-unavailable least of all.
func TestNoConditionMapsTo503(t *testing.T) {
	for c := range errorTypes {
		for _, full := range []bool{true, false} {
			for _, addr := range []bool{true, false} {
				if got := StatusForCondition(c, full, addr); got == 503 || got < 300 || got > 699 {
					t.Errorf("StatusForCondition(%s, %v, %v) = %d", c, full, addr, got)
				}
			}
		}
	}
}

// RFC 7247 §7.2 Table 3, every row.
var table3 = map[int]Condition{
	300: Redirect, 301: Gone, 302: Redirect, 305: Redirect, 380: NotAcceptable,
	400: BadRequest, 401: NotAuthorized, 402: BadRequest, 403: Forbidden, 404: ItemNotFound,
	405: FeatureNotImplemented, 406: NotAcceptable, 407: RegistrationRequired,
	408: RemoteServerTimeout, 410: Gone, 413: PolicyViolation, 414: PolicyViolation,
	415: NotAcceptable, 416: NotAcceptable, 420: FeatureNotImplemented, 421: NotAcceptable,
	423: ResourceConstraint, 430: RecipientUnavailable, 439: FeatureNotImplemented,
	440: PolicyViolation, 480: RecipientUnavailable, 481: ItemNotFound, 482: NotAcceptable,
	483: NotAcceptable, 484: ItemNotFound, 485: ItemNotFound, 486: RecipientUnavailable,
	487: RecipientUnavailable, 488: NotAcceptable, 489: PolicyViolation, 491: UnexpectedRequest,
	493: BadRequest, 500: InternalServerError, 501: FeatureNotImplemented,
	502: RemoteServerNotFound, 503: InternalServerError, 504: RemoteServerTimeout,
	505: NotAcceptable, 513: PolicyViolation, 600: RecipientUnavailable,
	603: RecipientUnavailable, 604: ItemNotFound, 606: NotAcceptable,
}

func TestConditionForStatus(t *testing.T) {
	for status, want := range table3 {
		if got := ConditionForStatus(status); got != want {
			t.Errorf("ConditionForStatus(%d) = %s, want %s", status, got, want)
		}
	}
	if len(sipToXMPP) != len(table3) {
		t.Errorf("implementation has %d rows, Table 3 has %d", len(sipToXMPP), len(table3))
	}
}

func TestConditionForStatusClassFallback(t *testing.T) {
	for status, want := range map[int]Condition{
		399: Redirect, 303: Redirect, 499: BadRequest, 409: BadRequest, 422: BadRequest,
		599: InternalServerError, 580: InternalServerError, 699: RecipientUnavailable,
		601: RecipientUnavailable, 100: UndefinedCondition, 200: UndefinedCondition,
		202: UndefinedCondition, 0: UndefinedCondition, -404: UndefinedCondition, 700: UndefinedCondition,
	} {
		if got := ConditionForStatus(status); got != want {
			t.Errorf("ConditionForStatus(%d) = %s, want %s", status, got, want)
		}
	}
}

// RFC 6120 §8.3.3.
func TestErrorType(t *testing.T) {
	want := map[Condition]string{
		BadRequest: "modify", Conflict: "cancel", FeatureNotImplemented: "cancel",
		Forbidden: "auth", Gone: "cancel", InternalServerError: "cancel",
		ItemNotFound: "cancel", JIDMalformed: "modify", NotAcceptable: "modify",
		NotAllowed: "cancel", NotAuthorized: "auth", PolicyViolation: "modify",
		RecipientUnavailable: "wait", Redirect: "modify", RegistrationRequired: "auth",
		RemoteServerNotFound: "cancel", RemoteServerTimeout: "wait", ResourceConstraint: "wait",
		ServiceUnavailable: "cancel", SubscriptionRequired: "auth", UndefinedCondition: "cancel",
		UnexpectedRequest: "wait", Condition("x-unknown"): "cancel",
	}
	for c, typ := range want {
		if got := ErrorType(c); got != typ {
			t.Errorf("ErrorType(%s) = %q, want %q", c, got, typ)
		}
	}
	if len(errorTypes) != 22 {
		t.Errorf("errorTypes has %d conditions, RFC 6120 defines 22", len(errorTypes))
	}
}

func TestFailureConstructors(t *testing.T) {
	f := FailureFromStatus(486, "Busy Here")
	if f.Condition != RecipientUnavailable || f.Status != 486 || f.Text != "Busy Here" {
		t.Errorf("FailureFromStatus(486) = %+v", f)
	}
	if f.Error() != "recipient-unavailable: Busy Here" {
		t.Errorf("Error() = %q", f.Error())
	}
}
