package sip

import (
	"strconv"
	"strings"
)

// The stack answers a re-INVITE or UPDATE of the peer itself (hold and
// unhold mostly), with the SDP it last sent, its directions mirrored and
// its version bumped: a text edit of our own SDP, which needs no SDP
// parser (RFC 3264 §8: a new offer in the dialog; §6.1 for the direction
// of the answer).

// sdpDirections returns the direction of each m= section of sdp, in order:
// its own a=sendrecv/sendonly/recvonly/inactive, else the session-level
// one, else sendrecv (RFC 3264 §5.1).
func sdpDirections(sdp []byte) []string {
	session := "sendrecv"
	var out []string
	inMedia := false
	for _, line := range sdpLines(sdp) {
		if strings.HasPrefix(line, "m=") {
			inMedia = true
			out = append(out, session)
			continue
		}
		if d, ok := direction(line); ok {
			if inMedia {
				out[len(out)-1] = d
			} else {
				session = d
			}
		}
	}
	return out
}

func direction(line string) (string, bool) {
	switch strings.TrimSpace(line) {
	case "a=sendrecv":
		return "sendrecv", true
	case "a=sendonly":
		return "sendonly", true
	case "a=recvonly":
		return "recvonly", true
	case "a=inactive":
		return "inactive", true
	}
	return "", false
}

// mirror is the direction an answerer takes to an offered one (RFC 3264
// §6.1).
func mirror(d string) string {
	switch d {
	case "sendonly":
		return "recvonly"
	case "recvonly":
		return "sendonly"
	}
	return d
}

// mirroredAnswer rewrites ours, the SDP stox last sent in the dialog: every
// direction attribute is dropped and each m= section gets the mirror of the
// offer's section at the same index (sendrecv when the offer has fewer),
// and the o= session version is incremented (RFC 3264 §8). It returns nil
// when ours is empty.
func mirroredAnswer(ours, offer []byte) []byte {
	if len(ours) == 0 {
		return nil
	}
	dirs := sdpDirections(offer)
	var b strings.Builder
	m := 0
	flush := func() {
		if m == 0 {
			return
		}
		d := "sendrecv"
		if m-1 < len(dirs) {
			d = mirror(dirs[m-1])
		}
		b.WriteString("a=" + d + "\r\n")
	}
	for _, line := range sdpLines(ours) {
		if _, ok := direction(line); ok {
			continue
		}
		if strings.HasPrefix(line, "m=") {
			flush()
			m++
		}
		if strings.HasPrefix(line, "o=") {
			line = bumpOrigin(line)
		}
		b.WriteString(line + "\r\n")
	}
	flush()
	return []byte(b.String())
}

// bumpOrigin increments the sess-version of an o= line (RFC 4566 §5.2:
// o=<username> <sess-id> <sess-version> <nettype> <addrtype> <addr>).
func bumpOrigin(line string) string {
	f := strings.Fields(line[2:])
	if len(f) != 6 {
		return line
	}
	v, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return line
	}
	f[2] = strconv.FormatUint(v+1, 10)
	return "o=" + strings.Join(f, " ")
}

// sdpLines splits an SDP body into its lines without CR/LF, dropping empty
// ones.
func sdpLines(sdp []byte) []string {
	var out []string
	for _, l := range strings.Split(string(sdp), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out
}
