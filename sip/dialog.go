package sip

import (
	"context"
	"errors"
	"time"

	"stox.dev/stox/mapping"
)

// Notify sends an in-dialog NOTIFY with stox as notifier (RFC 6665 §4.2.2);
// see docs/presence-contract.md (presence.SIPLink).
func (s *Stack) Notify(ctx context.Context, d mapping.Dialog, state, contentType string, body []byte) (mapping.Response, error) {
	return mapping.Response{}, errors.New("sip: Notify not implemented yet")
}

// Subscribe sends a SUBSCRIBE with stox as subscriber (RFC 6665 §4.1.2);
// see docs/presence-contract.md (presence.SIPLink).
func (s *Stack) Subscribe(ctx context.Context, d mapping.Dialog, expires time.Duration) (mapping.Response, mapping.Dialog, error) {
	return mapping.Response{}, d, errors.New("sip: Subscribe not implemented yet")
}
