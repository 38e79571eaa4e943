package mapping

import "strings"

// stox relays RTP without transcoding (docs/calls.md): a call works only
// when both legs have one voice codec in common, so codec handling is set
// intersection with the offerer's order and payload types kept
// (RFC 3264 §6.1: the answer uses the offer's payload type numbers).

// SupportedCodecs is what the media relay can carry: the voice codecs
// WebRTC clients and SIP phones share, and RFC 4733 telephone-event at both
// clock rates clients offer. The payload types are the usual ones; an
// answer uses the offer's instead.
func SupportedCodecs() []Codec {
	return []Codec{
		{PT: 111, Name: "opus", Clock: 48000, Channels: 2},
		{PT: 9, Name: "G722", Clock: 8000},
		{PT: 0, Name: "PCMU", Clock: 8000},
		{PT: 8, Name: "PCMA", Clock: 8000},
		{PT: 101, Name: "telephone-event", Clock: 8000, Fmtp: "0-15"},
		{PT: 110, Name: "telephone-event", Clock: 48000, Fmtp: "0-15"},
	}
}

// SameCodec reports whether a and b are the same encoding: the name without
// regard to case (RFC 4855 §3: media subtype names are case-insensitive),
// the clock rate, and the channel count with 0 meaning 1 (RFC 4566 §6
// rtpmap). Payload types and parameters do not matter.
func SameCodec(a, b Codec) bool {
	return strings.EqualFold(a.Name, b.Name) && a.Clock == b.Clock && channels(a) == channels(b)
}

func channels(c Codec) uint16 {
	if c.Channels == 0 {
		return 1
	}
	return c.Channels
}

// FindCodec returns the first codec of list that is the same as c.
func FindCodec(list []Codec, c Codec) (Codec, bool) {
	for _, x := range list {
		if SameCodec(x, c) {
			return x, true
		}
	}
	return Codec{}, false
}

// IsTelephoneEvent reports whether c carries DTMF events (RFC 4733).
func IsTelephoneEvent(c Codec) bool {
	return strings.EqualFold(c.Name, "telephone-event")
}

// isVoice reports whether c carries speech: not events, comfort noise
// (RFC 3389) or redundancy (RFC 2198).
func isVoice(c Codec) bool {
	return !IsTelephoneEvent(c) && !strings.EqualFold(c.Name, "CN") && !strings.EqualFold(c.Name, "red") &&
		!strings.EqualFold(c.Name, "ulpfec") && !strings.EqualFold(c.Name, "rtx")
}

// CommonCodecs is the codecs of offer that are also in supported, in the
// offer's order and with the offer's payload types and parameters.
func CommonCodecs(offer []Codec, supported []Codec) []Codec {
	var out []Codec
	for _, c := range offer {
		if _, ok := FindCodec(supported, c); ok {
			out = append(out, c)
		}
	}
	return out
}

// VoiceCodec is the first voice codec of list (not telephone-event, CN or
// red): the one an answerer picks (RFC 3264 §6.1, the offer's preference).
func VoiceCodec(list []Codec) (Codec, bool) {
	for _, c := range list {
		if isVoice(c) {
			return c, true
		}
	}
	return Codec{}, false
}

// EventCodec is the telephone-event of list at the given clock rate:
// RFC 4733 §2.1 events are timed at the voice codec's rate.
func EventCodec(list []Codec, clock uint32) (Codec, bool) {
	for _, c := range list {
		if IsTelephoneEvent(c) && c.Clock == clock {
			return c, true
		}
	}
	return Codec{}, false
}

// AnswerCodecs is what to answer offer with so that the relay needs no
// transcoding: the first voice codec of offer that other (the codecs of the
// other leg) has too, and telephone-event at that codec's clock when both
// have it. The codecs keep the offer's payload types. Empty means there is
// nothing in common: 488 on SIP, incompatible-parameters on Jingle.
func AnswerCodecs(offer []Codec, other []Codec) []Codec {
	var voice Codec
	found := false
	for _, c := range offer {
		if !isVoice(c) {
			continue
		}
		if _, ok := FindCodec(other, c); ok {
			voice, found = c, true
			break
		}
	}
	if !found {
		return nil
	}
	out := []Codec{voice}
	if ev, ok := EventCodec(offer, voice.Clock); ok {
		if _, ok := EventCodec(other, voice.Clock); ok {
			out = append(out, ev)
		}
	}
	return out
}
