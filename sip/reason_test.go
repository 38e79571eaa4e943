package sip

import "testing"

// TestDefaultReason: a final response stox sends without a phrase of its
// own gets the RFC 3261 §21 phrase for its code, in particular the
// failures calls map from Jingle reasons (mapping.StatusForJingleReason):
// a web phone's busy reached baresip as "486 Client Error".
func TestDefaultReason(t *testing.T) {
	for code, want := range map[int]string{
		200: "OK",
		410: "Gone",
		480: "Temporarily Unavailable",
		481: "Call/Transaction Does Not Exist",
		486: "Busy Here",
		487: "Request Terminated",
		488: "Not Acceptable Here",
		600: "Busy Everywhere",
		603: "Decline",
		606: "Not Acceptable",
		499: "Client Error",
		599: "Server Error",
	} {
		if got := finalReason(code, ""); got != want {
			t.Errorf("finalReason(%d, \"\") = %q, want %q", code, got, want)
		}
	}
	if got := finalReason(486, "Busy\r\nX: y"); got != "Busy Here" {
		t.Errorf("a phrase with CRLF was kept: %q", got)
	}
}
