package sip

// DefaultMaxInFlight is Config.MaxInFlight when it is not set, and the
// default of the command's sip.max_inflight: the inbound MESSAGE, SUBSCRIBE,
// NOTIFY and PUBLISH requests and unanswered INVITEs handled at once (see admit); beyond it they
// are answered 503 with Retry-After at once.
const DefaultMaxInFlight = 1024
