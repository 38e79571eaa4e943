package calls

import (
	"encoding/xml"
	"errors"
	"strconv"
	"strings"

	"stox.dev/stox/mapping"
)

var errNoAudio = errors.New("no audio stream")

// target says where an INVITE for uri goes: the latest binding of a user
// of S, the trunk when that user has none and a trunk is configured, or
// the URI itself for another domain. (A call does not fork to every
// binding yet: docs/calls.md, "Limits".)
func (s *Service) target(uri mapping.URI) (mapping.Target, *mapping.Failure) {
	if uri.Host != s.cfg.Domains.SIP {
		return mapping.Target{URI: uri}, nil
	}
	bs := s.loc.Bindings(uri.AOR())
	for i := len(bs) - 1; i >= 0; i-- {
		contact, err := mapping.ParseURI(bs[i].Contact)
		if err == nil {
			return mapping.Target{URI: contact, Destination: bs[i].Source}, nil
		}
	}
	if s.cfg.Trunk {
		return mapping.Target{URI: uri}, nil
	}
	ctx, cancel := (&call{}).reqCtx()
	defer cancel()
	ok, err := s.loc.AccountExists(ctx, uri.User)
	switch {
	case err != nil:
		return mapping.Target{}, &mapping.Failure{Condition: mapping.InternalServerError, Status: 500, Text: "account lookup failed"}
	case ok:
		return mapping.Target{}, &mapping.Failure{Condition: mapping.RecipientUnavailable, Status: 480, Text: "not registered"}
	default:
		return mapping.Target{}, &mapping.Failure{Condition: mapping.ItemNotFound, Status: 404, Text: "no such user"}
	}
}

// sdp writes the relay's RTP leg as a one-stream SDP. Every SDP of the
// call keeps the o= session id, with a version one higher than the last
// (RFC 3264 §8).
func (c *call) sdp(m mapping.Media) ([]byte, error) {
	if c.origin.ID == 0 {
		c.origin = mapping.Origin{User: "stox", ID: sdpID(), Addr: m.Addr}
	}
	c.origin.Version++
	m.Mid = "" // a plain SIP offer names no mids (no BUNDLE)
	return mapping.MarshalSDP(mapping.Session{Origin: c.origin, Media: []mapping.Media{m}})
}

// sdpID is a session id for o= (RFC 4566 §5.2: a number unique enough).
func sdpID() uint64 {
	id := newID()
	n, _ := strconv.ParseUint(id[:15], 16, 64)
	return n
}

// firstAudio is the first audio stream that is not rejected.
func firstAudio(s mapping.Session) (mapping.Media, bool) {
	for _, m := range s.Media {
		if strings.EqualFold(m.Kind, "audio") && (m.Port != 0 || m.ICEUfrag != "" || m.Addr == "") {
			return m, true
		}
	}
	return mapping.Media{}, false
}

// hasVoice reports whether cs holds a codec that carries voice.
func hasVoice(cs []mapping.Codec) bool {
	for _, c := range cs {
		if !mapping.IsTelephoneEvent(c) && !strings.EqualFold(c.Name, "CN") {
			return true
		}
	}
	return false
}

// pickVoice keeps the first voice codec of cs and the telephone-event of
// the same clock rate (RFC 4733 §2.1: events run at the voice clock): the
// one codec both legs will use, since stox does not transcode. When from
// is given, the result is taken from it (its numbering and parameters).
func pickVoice(cs, from []mapping.Codec) []mapping.Codec {
	var voice *mapping.Codec
	for i := range cs {
		if !mapping.IsTelephoneEvent(cs[i]) && !strings.EqualFold(cs[i].Name, "CN") {
			voice = &cs[i]
			break
		}
	}
	if voice == nil {
		return nil
	}
	out := []mapping.Codec{*voice}
	for _, c := range cs {
		if mapping.IsTelephoneEvent(c) && c.Clock == voice.Clock {
			out = append(out, c)
			break
		}
	}
	if from != nil {
		return inNumbering(out, from)
	}
	return out
}

// inNumbering returns the entries of from that match cs by codec (name,
// clock, channels), in cs's order: the same codecs in the other leg's
// payload type numbers and parameters.
func inNumbering(cs, from []mapping.Codec) []mapping.Codec {
	var out []mapping.Codec
	for _, c := range cs {
		for _, f := range from {
			if mapping.SameCodec(c, f) {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// bundleOf keeps the offer's BUNDLE group for the answer (RFC 8843 §7.3)
// when the offer had one.
func bundleOf(offer, answer mapping.Media) []string {
	if offer.Mid == "" {
		return nil
	}
	return []string{answer.Mid}
}

// codecName is the recorded name of the voice codec: "PCMU/8000".
func codecName(cs []mapping.Codec) string {
	if len(cs) == 0 {
		return ""
	}
	return cs[0].Name + "/" + strconv.Itoa(int(cs[0].Clock))
}

func ringing() mapping.JingleInfo { return rtpInfo("ringing") }

// rtpInfo is a XEP-0167 §7 informational payload.
func rtpInfo(name string) mapping.JingleInfo {
	return mapping.JingleInfo{XMLName: xml.Name{Space: mapping.NSJingleInfo, Local: name}}
}

// reasonForFailure is the Jingle reason for a failure to reach the SIP
// party before any INVITE.
func reasonForFailure(f *mapping.Failure) string {
	if f.Status != 0 {
		return mapping.JingleReasonForStatus(f.Status)
	}
	return "general-error"
}

// outcomeForStatus names how a call ended from the SIP final response.
func outcomeForStatus(status int) string {
	switch status {
	case 486, 600:
		return "busy"
	case 603, 403:
		return "declined"
	case 408, 480:
		return "no-answer"
	case 487:
		return "cancelled"
	}
	return "failed"
}

// outcomeForReason names how a call ended from a Jingle reason.
func outcomeForReason(reason string) string {
	switch reason {
	case "busy":
		return "busy"
	case "decline":
		return "declined"
	case "cancel":
		return "cancelled"
	case "timeout", "expired":
		return "no-answer"
	case "success":
		return "answered"
	}
	return "failed"
}
