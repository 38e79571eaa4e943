package sip

import (
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"
)

// authenticate checks the digest credentials of req for user (RFC 3261 §22,
// RFC 7616). With proxy it uses Proxy-Authorization and answers 407 with
// Proxy-Authenticate (§22.3, used for MESSAGE), else Authorization and 401
// with WWW-Authenticate (§22.2, used for REGISTER). It returns true when the
// request may go on; otherwise it has sent the final response.
func (s *Stack) authenticate(req *sip.Request, tx *rtx, user string, proxy bool) bool {
	realm := s.cfg.Domain
	credHdr, chalHdr, chalCode, chalReason := "Authorization", "WWW-Authenticate", 401, "Unauthorized"
	if proxy {
		credHdr, chalHdr, chalCode, chalReason = "Proxy-Authorization", "Proxy-Authenticate", 407, "Proxy Authentication Required"
	}
	now := time.Now()
	challenge := func(stale bool) {
		// One challenge only: RFC 8760 §2.4 lets a UA skip algorithms it
		// does not know, but deployed ones (libre 1.1 in baresip 1.0, as
		// shipped by Debian 12) give up on the first unknown one instead.
		ch := s.nonces.challenges(now, realm, stale, s.cfg.PreferSHA256)
		s.respond(req, tx, chalCode, chalReason, []sip.Header{sip.NewHeader(chalHdr, ch[0])})
	}
	// Pick the credential for our realm (there may be several, §22.3).
	var cred digestCreds
	found := false
	for _, h := range req.GetHeaders(credHdr) {
		c, err := parseDigest(h.Value())
		if err != nil {
			continue
		}
		if c.Realm == realm {
			cred, found = c, true
			break
		}
	}
	if !found {
		challenge(false)
		return false
	}
	log := s.flow(zap.String("call_id", callID(req)), zap.String("user", cred.Username))
	state, staleAt := s.nonces.checkUntil(cred.Nonce, now, realm)
	switch state {
	case nonceInvalid:
		challenge(false)
		return false
	case nonceStale:
		challenge(true)
		return false
	}
	if digestHash(cred.Algorithm) == nil {
		challenge(false)
		return false
	}
	// The digest-uri must be the Request-URI (RFC 7616 §3.4.6, RFC 2617 §3.2.2.5).
	if !sameURI(cred.URI, &req.Recipient) {
		log.Info("auth: digest uri is not the Request-URI", zap.String("uri", cred.URI), zap.String("ruri", req.Recipient.String()))
		s.respond(req, tx, 400, "Bad Request (digest uri mismatch)", nil)
		return false
	}
	if cred.Username != user {
		log.Info("auth: username does not match AOR", zap.String("aor_user", user))
		s.respond(req, tx, 403, "Forbidden", nil)
		return false
	}
	ctx := s.context()
	acct, ok, err := s.store.Account(ctx, user)
	if err != nil {
		log.Error("auth: account lookup", zap.Error(err))
		s.respond(req, tx, 500, "Server Internal Error", []sip.Header{retryAfter(time.Second)})
		return false
	}
	ha1 := ""
	if ok {
		if strings.EqualFold(cred.Algorithm, "SHA-256") {
			ha1 = acct.HA1SHA256
		} else {
			ha1 = acct.HA1MD5
		}
	}
	if !ok || ha1 == "" || !verifyDigest(&cred, string(req.Method), ha1) {
		// Wrong password or unknown user: challenge again (§22.2 lets the UAC
		// retry); the UAC gives up after one failed answer.
		log.Info("auth: bad credentials")
		challenge(false)
		return false
	}
	// Only a verified credential counts against its nonce: junk must not be
	// able to use up a user's nonce-counts.
	if !s.replay.accept(cred.Nonce, cred.Nc, staleAt, now) {
		log.Info("auth: nonce-count replayed", zap.String("nc", cred.Nc))
		challenge(true) // stale=true: a UA that only lost count retries at once
		return false
	}
	return true
}

// sameURI compares the digest-uri with the Request-URI: verbatim, or equal
// after parsing (scheme, user, host, port).
func sameURI(s string, u *sip.Uri) bool {
	if s == u.String() {
		return true
	}
	var p sip.Uri
	if err := sip.ParseUri(s, &p); err != nil {
		return false
	}
	return strings.EqualFold(p.Scheme, u.Scheme) && p.User == u.User &&
		strings.EqualFold(p.Host, u.Host) && p.Port == u.Port
}
