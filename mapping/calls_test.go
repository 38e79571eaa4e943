package mapping

import (
	"encoding/xml"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func sdpLines(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n") + "\r\n") }

func TestParseSDPLenient(t *testing.T) {
	// LF line ends, a=rtpmap before c=, static types without rtpmap, a
	// session-level direction, a data channel and a video line.
	b := []byte("v=0\no=alice 2890844526 2890844527 IN IP4 host.example\ns=\nt=0 0\na=sendonly\n" +
		"m=audio 49170 RTP/AVP 0 8 97\na=rtpmap:97 iLBC/8000\nc=IN IP4 192.0.2.1/127\na=rtcp-fb:* nack\na=rtcp-fb:97 ccm fir\n" +
		"a=rtpmap:200 bogus/1\na=fmtp:1 x\na=candidate:garbage\na=crypto:x y\na=extmap:0 bad\n" +
		"m=video 0 RTP/AVP 31\n" +
		"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\nc=IN IP6 2001:db8::1\na=inactive\n")
	s, err := ParseSDP(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Media) != 3 {
		t.Fatalf("%d media, want 3", len(s.Media))
	}
	a := s.Media[0]
	wantCodecs := []Codec{
		{PT: 0, Name: "PCMU", Clock: 8000, FB: []RTCPFB{{Type: "nack"}}},
		{PT: 8, Name: "PCMA", Clock: 8000, FB: []RTCPFB{{Type: "nack"}}},
		{PT: 97, Name: "iLBC", Clock: 8000, FB: []RTCPFB{{Type: "nack"}, {Type: "ccm", Subtype: "fir"}}},
	}
	if !reflect.DeepEqual(a.Codecs, wantCodecs) {
		t.Errorf("codecs %+v, want %+v", a.Codecs, wantCodecs)
	}
	if a.Addr != "192.0.2.1" || a.Port != 49170 || a.Direction != SendOnly || len(a.Candidates) != 0 || len(a.Crypto) != 0 || len(a.HdrExts) != 0 {
		t.Errorf("audio %+v", a)
	}
	if v := s.Media[1]; v.Kind != "video" || v.Port != 0 || len(v.Codecs) != 1 || v.Direction != SendOnly {
		t.Errorf("video %+v", v)
	}
	if d := s.Media[2]; d.Kind != "application" || len(d.Codecs) != 0 || !reflect.DeepEqual(d.Fmt, []string{"webrtc-datachannel"}) ||
		d.Addr != "2001:db8::1" || d.Direction != Inactive {
		t.Errorf("application %+v", d)
	}
	if s.Origin != (Origin{User: "alice", ID: 2890844526, Version: 2890844527, Addr: "host.example"}) {
		t.Errorf("origin %+v", s.Origin)
	}
}

func TestParseSDPErrors(t *testing.T) {
	for _, in := range []string{
		"", "\r\n", "o=- 1 1 IN IP4 1.2.3.4\r\n", "v=0\r\nm=audio\r\n", "v=0\r\nm=audio x RTP/AVP 0\r\n",
		"v=0\r\nm=audio 70000 RTP/AVP 0\r\n", "v=0\r\nc=IN\r\n", "v=0\r\nxx\r\n", "hello",
	} {
		if _, err := ParseSDP([]byte(in)); !errors.Is(err, ErrSDP) {
			t.Errorf("ParseSDP(%q) = %v, want ErrSDP", in, err)
		}
	}
}

// TestMarshalSDPAnswer asserts the exact text of an answer with one
// accepted and two rejected streams, ICE lite, SDES and BUNDLE.
func TestMarshalSDPAnswer(t *testing.T) {
	s := Session{
		Origin: Origin{ID: 42, Version: 2, Addr: "203.0.113.1"},
		Bundle: []string{"a"},
		Media: []Media{
			{Mid: "a", Kind: "audio", Profile: "RTP/SAVP", Addr: "203.0.113.1", Port: 40000,
				Codecs:    []Codec{{PT: 0, Name: "PCMU", Clock: 8000, Ptime: 20}, {PT: 101, Name: "telephone-event", Clock: 8000, Fmtp: "0-16"}},
				Direction: RecvOnly, RTCPMux: true, SSRC: 7, CNAME: "stox",
				ICEUfrag: "uf", ICEPwd: "pw", ICELite: true, EndOfCandidates: true,
				Candidates: []Candidate{{Foundation: "1", Component: 1, Protocol: "udp", Priority: 100, IP: "203.0.113.1", Port: 40000, Type: "host"}},
				HdrExts:    []HdrExt{{ID: 1, URI: "urn:ietf:params:rtp-hdrext:ssrc-audio-level"}, {ID: 2, URI: "urn:x", Direction: SendOnly}},
				Crypto:     []Crypto{{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", KeyParams: "inline:abc"}}},
			{Mid: "v", Kind: "video", Profile: "RTP/AVP", Port: 0, Codecs: []Codec{{PT: 96, Name: "VP8", Clock: 90000}}},
			{Kind: "application", Profile: "UDP/DTLS/SCTP", Port: 0, Fmt: []string{"webrtc-datachannel"}},
		},
	}
	got, err := MarshalSDP(s)
	if err != nil {
		t.Fatal(err)
	}
	want := sdpLines("v=0", "o=- 42 2 IN IP4 203.0.113.1", "s=-", "c=IN IP4 203.0.113.1", "t=0 0", "a=ice-lite", "a=group:BUNDLE a",
		"m=audio 40000 RTP/SAVP 0 101", "a=mid:a", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16",
		"a=ptime:20", "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level", "a=extmap:2/sendonly urn:x", "a=recvonly", "a=rtcp-mux",
		"a=ice-ufrag:uf", "a=ice-pwd:pw", "a=candidate:1 1 udp 100 203.0.113.1 40000 typ host", "a=end-of-candidates",
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc", "a=ssrc:7 cname:stox",
		"m=video 0 RTP/AVP 96", "a=mid:v",
		"m=application 0 UDP/DTLS/SCTP webrtc-datachannel")
	if string(got) != string(want) {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	back, err := ParseSDP(got)
	if err != nil {
		t.Fatal(err)
	}
	if m := back.Media[0]; !m.ICELite || !m.EndOfCandidates || m.Direction != RecvOnly || m.Codecs[0].Ptime != 20 || len(back.Media) != 3 || back.Media[2].Port != 0 {
		t.Errorf("read back %+v", back)
	}
}

// TestMarshalSDPRefusesInjection: values from the XMPP side cannot add
// lines to the SDP.
func TestMarshalSDPRefusesInjection(t *testing.T) {
	for name, m := range map[string]Media{
		"ufrag":     {Port: 1, ICEUfrag: "a\r\na=evil"},
		"mid":       {Port: 1, Mid: "0 1"},
		"fmtp":      {Port: 1, Codecs: []Codec{{PT: 96, Name: "opus", Clock: 48000, Fmtp: "x\r\nm=video"}}},
		"addr":      {Port: 1, Addr: "1.2.3.4\nx"},
		"direction": {Port: 1, Direction: "sendrecv\r\na=x"},
		"candidate": {Port: 1, Candidates: []Candidate{{Foundation: "f\n", Component: 1}}},
		"port":      {Port: 70000},
	} {
		if _, err := MarshalSDP(Session{Media: []Media{m}}); !errors.Is(err, ErrSDP) {
			t.Errorf("%s: err %v, want ErrSDP", name, err)
		}
	}
}

func TestCandidate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Candidate
		out  string
	}{
		{"candidate:c6120001 1 UDP 2113929471 198.18.0.1 17100 typ host", Candidate{Foundation: "c6120001", Component: 1, Protocol: "udp", Priority: 2113929471, IP: "198.18.0.1", Port: 17100, Type: "host"},
			"candidate:c6120001 1 udp 2113929471 198.18.0.1 17100 typ host"},
		{"842163049 1 udp 1686052607 203.0.113.7 46351 typ srflx raddr 192.168.1.23 rport 46351 generation 2 network-id 1",
			Candidate{Foundation: "842163049", Component: 1, Protocol: "udp", Priority: 1686052607, IP: "203.0.113.7", Port: 46351, Type: "srflx", RelAddr: "192.168.1.23", RelPort: 46351, Generation: 2},
			"candidate:842163049 1 udp 1686052607 203.0.113.7 46351 typ srflx raddr 192.168.1.23 rport 46351 generation 2"},
		{"a=candidate:1 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active", Candidate{Foundation: "1", Component: 1, Protocol: "tcp", Priority: 1518280447, IP: "127.0.0.1", Port: 9, Type: "host", TCPType: "active"},
			"candidate:1 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active"},
	} {
		c, err := ParseCandidate(tc.in)
		if err != nil || c != tc.want {
			t.Errorf("ParseCandidate(%q) = %+v, %v; want %+v", tc.in, c, err, tc.want)
		}
		if got := CandidateAttr(c); got != tc.out {
			t.Errorf("CandidateAttr = %q, want %q", got, tc.out)
		}
	}
	for _, bad := range []string{"", "candidate:1 1 udp", "1 0 udp 1 1.2.3.4 5 typ host", "1 1 udp x 1.2.3.4 5 typ host",
		"1 1 udp 1 1.2.3.4 99999 typ host", "1 1 udp 1 1.2.3.4 5 type host", "1 1 udp 1 1.2.3.4 5 typ srflx raddr 1.1.1.1 rport x"} {
		if _, err := ParseCandidate(bad); !errors.Is(err, ErrSDP) {
			t.Errorf("ParseCandidate(%q) = %v, want ErrSDP", bad, err)
		}
	}
}

func TestSendersAndDirections(t *testing.T) {
	for _, tc := range []struct {
		senders string
		writer  JingleRole
		want    Direction
	}{
		{"", RoleInitiator, SendRecv}, {"both", RoleResponder, SendRecv}, {"none", RoleInitiator, Inactive},
		{"initiator", RoleInitiator, SendOnly}, {"initiator", RoleResponder, RecvOnly},
		{"responder", RoleInitiator, RecvOnly}, {"responder", RoleResponder, SendOnly},
	} {
		j := Jingle{Action: ActSessionInitiate, Contents: []JingleContent{{Name: "0", Senders: tc.senders, Description: &RTPDescription{Media: "audio"}}}}
		if tc.writer == RoleResponder {
			j.Action = ActSessionAccept
		}
		s, err := JingleToSession(j)
		if err != nil || s.Media[0].Direction != tc.want {
			t.Errorf("senders %q by %v: %+v %v, want %s", tc.senders, tc.writer, s.Media, err, tc.want)
			continue
		}
		cs, _ := SessionToJingle(s, RoleInitiator, tc.writer)
		wantSenders := tc.senders
		if wantSenders == "both" {
			wantSenders = ""
		}
		if cs[0].Senders != wantSenders {
			t.Errorf("direction %s by %v gave senders %q, want %q", tc.want, tc.writer, cs[0].Senders, wantSenders)
		}
	}
}

func TestJingleToSessionErrors(t *testing.T) {
	desc := func(p ...JinglePayload) *RTPDescription { return &RTPDescription{Media: "audio", PayloadTypes: p} }
	tr := func(c JingleCandidate) *ICEUDPTransport { return &ICEUDPTransport{Candidates: []JingleCandidate{c}} }
	good := JingleCandidate{Component: "1", Foundation: "1", IP: "192.0.2.1", Port: "1", Priority: "1", Protocol: "udp", Type: "host"}
	bad := func(f func(*JingleCandidate)) JingleCandidate { c := good; f(&c); return c }
	for name, j := range map[string]Jingle{
		"no content":       {},
		"no rtp content":   {Contents: []JingleContent{{Name: "ft"}}},
		"no name":          {Contents: []JingleContent{{Description: desc()}}},
		"bad senders":      {Contents: []JingleContent{{Name: "0", Senders: "all", Description: desc()}}},
		"pt 128":           {Contents: []JingleContent{{Name: "0", Description: desc(JinglePayload{ID: "128", Name: "x", ClockRate: "1"})}}},
		"dynamic unnamed":  {Contents: []JingleContent{{Name: "0", Description: desc(JinglePayload{ID: "96"})}}},
		"bad clock":        {Contents: []JingleContent{{Name: "0", Description: desc(JinglePayload{ID: "0", ClockRate: "x"})}}},
		"bad ssrc":         {Contents: []JingleContent{{Name: "0", Description: &RTPDescription{SSRC: "-1"}}}},
		"bad port":         {Contents: []JingleContent{{Name: "0", Description: desc(), Transport: tr(bad(func(c *JingleCandidate) { c.Port = "x" }))}}},
		"bad component":    {Contents: []JingleContent{{Name: "0", Description: desc(), Transport: tr(bad(func(c *JingleCandidate) { c.Component = "0" }))}}},
		"no ip":            {Contents: []JingleContent{{Name: "0", Description: desc(), Transport: tr(bad(func(c *JingleCandidate) { c.IP = "" }))}}},
		"bad generation":   {Contents: []JingleContent{{Name: "0", Description: desc(), Transport: tr(bad(func(c *JingleCandidate) { c.Generation = "x" }))}}},
		"bad hdrext id":    {Contents: []JingleContent{{Name: "0", Description: &RTPDescription{HdrExts: []JingleHdrExt{{ID: "0", URI: "u"}}}}}},
		"bad crypto tag":   {Contents: []JingleContent{{Name: "0", Description: &RTPDescription{Encryption: &JingleEncrypt{Crypto: []JingleCrypto{{Tag: "x"}}}}}}},
		"bad priority":     {Contents: []JingleContent{{Name: "0", Description: desc(), Transport: tr(bad(func(c *JingleCandidate) { c.Priority = "-3" }))}}},
		"bad payload ptme": {Contents: []JingleContent{{Name: "0", Description: desc(JinglePayload{ID: "0", Ptime: "x"})}}},
	} {
		if _, err := JingleToSession(j); !errors.Is(err, ErrJingle) {
			t.Errorf("%s: %v, want ErrJingle", name, err)
		}
	}
}

// TestTransportInfo: StanzaJS trickles one candidate per transport-info
// without id, generation or network, and ends with <gathering-complete/>.
func TestTransportInfo(t *testing.T) {
	in := `<jingle xmlns="urn:xmpp:jingle:1" action="transport-info" sid="s1"><content creator="initiator" name="0">` +
		`<transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="K002" pwd="p">` +
		`<candidate component="1" foundation="969810707" ip="127.0.0.1" port="48697" priority="2122260223" protocol="udp" type="host"/>` +
		`</transport></content></jingle>`
	var j Jingle
	if err := xml.Unmarshal([]byte(in), &j); err != nil {
		t.Fatal(err)
	}
	cc, err := CandidatesFromTransportInfo(j)
	if err != nil {
		t.Fatal(err)
	}
	want := []ContentCandidates{{Content: "0", Ufrag: "K002", Candidates: []Candidate{{Foundation: "969810707", Component: 1, Protocol: "udp",
		Priority: 2122260223, IP: "127.0.0.1", Port: 48697, Type: "host"}}}}
	if !reflect.DeepEqual(cc, want) {
		t.Errorf("got %+v, want %+v", cc, want)
	}

	end := `<jingle xmlns="urn:xmpp:jingle:1" action="transport-info" sid="s1"><content creator="initiator" name="0">` +
		`<transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="K002" pwd="p"><gathering-complete/></transport></content></jingle>`
	j = Jingle{}
	if err := xml.Unmarshal([]byte(end), &j); err != nil {
		t.Fatal(err)
	}
	if cc, err := CandidatesFromTransportInfo(j); err != nil || len(cc) != 1 || !cc[0].EndOfCandidates || len(cc[0].Candidates) != 0 {
		t.Errorf("gathering-complete: %+v %v", cc, err)
	}
	if _, err := CandidatesFromTransportInfo(Jingle{Contents: []JingleContent{{Name: "0"}}}); !errors.Is(err, ErrJingle) {
		t.Errorf("content without transport: %v, want ErrJingle", err)
	}

	// What stox sends: the exact element, with a stable generated id.
	c := TransportInfoContent("0", RoleResponder, "uf", "pw", want[0].Candidates, true)
	out, err := xml.Marshal(Jingle{Action: ActTransportInfo, SID: "s1", Contents: []JingleContent{c}})
	if err != nil {
		t.Fatal(err)
	}
	wantXML := `<jingle xmlns="urn:xmpp:jingle:1" action="transport-info" sid="s1"><content creator="responder" name="0">` +
		`<transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="uf" pwd="pw">` +
		`<candidate component="1" foundation="969810707" generation="0" id="` + c.Transport.Candidates[0].ID + `" ip="127.0.0.1" port="48697" priority="2122260223" protocol="udp" type="host"></candidate>` +
		`<gathering-complete></gathering-complete></transport></content></jingle>`
	if string(out) != wantXML {
		t.Errorf("got  %s\nwant %s", out, wantXML)
	}
	if id := c.Transport.Candidates[0].ID; !strings.HasPrefix(id, "c") || len(id) != 17 {
		t.Errorf("candidate id %q", id)
	}
	again := TransportInfoContent("0", RoleResponder, "uf", "pw", want[0].Candidates, false)
	if again.Transport.Candidates[0].ID != c.Transport.Candidates[0].ID || again.Transport.GatheringComplete != nil {
		t.Errorf("ids differ between runs or end marker set: %+v", again.Transport)
	}
}

func TestCodecs(t *testing.T) {
	opus := Codec{PT: 111, Name: "opus", Clock: 48000, Channels: 2}
	pcmu := Codec{PT: 0, Name: "PCMU", Clock: 8000}
	pcma := Codec{PT: 8, Name: "PCMA", Clock: 8000, Channels: 1}
	te8 := Codec{PT: 126, Name: "telephone-event", Clock: 8000}
	te48 := Codec{PT: 110, Name: "telephone-event", Clock: 48000}
	red := Codec{PT: 63, Name: "red", Clock: 48000, Channels: 2}
	cn := Codec{PT: 13, Name: "CN", Clock: 8000}
	ilbc := Codec{PT: 97, Name: "iLBC", Clock: 8000}

	if !SameCodec(Codec{Name: "pcmu", Clock: 8000, Channels: 1}, pcmu) || SameCodec(opus, Codec{Name: "opus", Clock: 48000}) || SameCodec(pcmu, pcma) {
		t.Error("SameCodec")
	}
	if c, ok := FindCodec(SupportedCodecs(), Codec{Name: "OPUS", Clock: 48000, Channels: 2}); !ok || c.PT != 111 {
		t.Errorf("FindCodec opus = %+v %v", c, ok)
	}
	if !IsTelephoneEvent(Codec{Name: "Telephone-Event"}) || IsTelephoneEvent(pcmu) {
		t.Error("IsTelephoneEvent")
	}
	stanza := []Codec{opus, red, {PT: 9, Name: "G722", Clock: 8000}, pcmu, pcma, cn, te48, te8}
	if got := CommonCodecs(stanza, SupportedCodecs()); len(got) != 6 || !reflect.DeepEqual(got[0], opus) || !reflect.DeepEqual(got[4], te48) {
		t.Errorf("CommonCodecs = %+v", got)
	}
	if c, ok := VoiceCodec([]Codec{te8, red, cn, pcma}); !ok || !reflect.DeepEqual(c, pcma) {
		t.Errorf("VoiceCodec = %+v %v", c, ok)
	}
	if _, ok := VoiceCodec([]Codec{te8, cn}); ok {
		t.Error("VoiceCodec found a voice codec in events and CN")
	}
	if c, ok := EventCodec(stanza, 8000); !ok || !reflect.DeepEqual(c, te8) {
		t.Errorf("EventCodec 8000 = %+v", c)
	}
	for _, tc := range []struct {
		name         string
		offer, other []Codec
		want         []Codec
	}{
		{"opus both", stanza, []Codec{opus, pcmu, te8}, []Codec{opus}}, // no telephone-event/48000 on the other leg
		{"pcmu with events", stanza, []Codec{pcmu, {PT: 101, Name: "telephone-event", Clock: 8000}}, []Codec{pcmu, te8}},
		{"offer order wins", []Codec{pcma, pcmu, te8}, []Codec{pcmu, pcma, te8}, []Codec{pcma, te8}},
		{"nothing common", []Codec{ilbc, te8}, []Codec{pcmu, te8}, nil},
		{"events only", []Codec{te8}, []Codec{te8}, nil},
	} {
		if got := AnswerCodecs(tc.offer, tc.other); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: AnswerCodecs = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestReasonTables(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
	}{
		{"busy", 486}, {"decline", 603}, {"cancel", 487}, {"timeout", 480}, {"expired", 408}, {"gone", 410},
		{"unsupported-applications", 415}, {"incompatible-parameters", 488}, {"media-error", 488},
		{"failed-transport", 480}, {"connectivity-error", 480}, {"security-error", 488}, {"general-error", 500},
		{"alternative-session", 486}, {"success", 603}, {"no-such-reason", 500},
	} {
		if st, phrase := StatusForJingleReason(tc.name); st != tc.status || phrase == "" {
			t.Errorf("StatusForJingleReason(%s) = %d %q, want %d", tc.name, st, phrase, tc.status)
		}
	}
	for status, want := range map[int]string{
		200: "success", 302: "alternative-session", 486: "busy", 600: "busy", 603: "decline", 403: "decline", 487: "cancel",
		408: "timeout", 480: "timeout", 404: "gone", 410: "gone", 604: "gone", 415: "unsupported-applications",
		488: "incompatible-parameters", 606: "incompatible-parameters", 493: "security-error", 401: "general-error",
		500: "general-error", 503: "general-error", 0: "general-error",
	} {
		if got := JingleReasonForStatus(status); got != want {
			t.Errorf("JingleReasonForStatus(%d) = %s, want %s", status, got, want)
		}
	}
	for _, tc := range []struct {
		status int
		header string
		want   string
	}{
		{0, "", "success"}, {0, `Q.850;cause=16;text="Normal call clearing"`, "success"}, {0, "Q.850;cause=17", "busy"},
		{0, "Q.850 ; cause=19", "timeout"}, {0, "Q.850;cause=21", "decline"}, {0, "Q.850;cause=58", "incompatible-parameters"},
		{0, "Q.850;cause=41", "connectivity-error"}, {0, "Q.850;cause=99", "general-error"},
		{0, `SIP;cause=486;text="Busy Here"`, "busy"}, {0, "SIP;cause=200", "success"},
		{0, "garbage;;", "success"}, {486, "", "busy"}, {0, "X-Foo;cause=1", "success"}, {603, "Q.850", "decline"},
	} {
		if got := JingleReasonForSIP(tc.status, tc.header); got != tc.want {
			t.Errorf("JingleReasonForSIP(%d, %q) = %s, want %s", tc.status, tc.header, got, tc.want)
		}
	}
}

func TestReasonHeader(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"success", "", "Q.850;cause=16"},
		{"busy", "User busy", `Q.850;cause=17;text="User busy"`},
		{"decline", "say \"no\"\r\nInjected: 1\\", `Q.850;cause=21;text="say noInjected: 1"`},
		{"timeout", "  ", "Q.850;cause=19"},
		{"failed-transport", "ICE failed", `Q.850;cause=41;text="ICE failed"`},
		{"whatever", "", "Q.850;cause=31"},
	} {
		got := ReasonHeaderForJingle(tc.name, tc.text)
		if got != tc.want {
			t.Errorf("ReasonHeaderForJingle(%s, %q) = %s, want %s", tc.name, tc.text, got, tc.want)
		}
		if _, _, _, err := ParseReasonHeader(got); err != nil {
			t.Errorf("ParseReasonHeader(%s): %v", got, err)
		}
	}
	for _, tc := range []struct {
		in, proto string
		cause     int
		text      string
	}{
		{`Q.850;cause=16;text="Terminated"`, "Q.850", 16, "Terminated"},
		{`SIP ;cause=200 ;text="Call completed elsewhere"`, "SIP", 200, "Call completed elsewhere"},
		{`SIP;text="a \"quoted\"; text, with comma";cause=487`, "SIP", 487, `a "quoted"; text, with comma`},
		{`Q.850;cause=16, SIP;cause=200`, "Q.850", 16, ""},
		{`Q.850;foo=bar;cause=17;baz`, "Q.850", 17, ""},
		{`preemption`, "preemption", 0, ""},
	} {
		p, c, tx, err := ParseReasonHeader(tc.in)
		if err != nil || p != tc.proto || c != tc.cause || tx != tc.text {
			t.Errorf("ParseReasonHeader(%q) = %q %d %q %v", tc.in, p, c, tx, err)
		}
	}
	for _, bad := range []string{"", ";cause=1", "Q.850;cause=x", `Q.850;text="open`, "Q 850", "Q.850;cause=16 junk", "Q.850;cause=1000"} {
		if _, _, _, err := ParseReasonHeader(bad); !errors.Is(err, ErrReason) {
			t.Errorf("ParseReasonHeader(%q) = %v, want ErrReason", bad, err)
		}
	}
}

func TestJingleReasonXML(t *testing.T) {
	out, err := xml.Marshal(Jingle{Action: ActSessionTerminate, SID: "s", Reason: NewJingleReason("busy", "on the phone")})
	if err != nil {
		t.Fatal(err)
	}
	want := `<jingle xmlns="urn:xmpp:jingle:1" action="session-terminate" sid="s"><reason><busy xmlns="urn:xmpp:jingle:1"></busy><text xmlns="urn:xmpp:jingle:1">on the phone</text></reason></jingle>`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	var j Jingle
	if err := xml.Unmarshal([]byte(`<jingle xmlns="urn:xmpp:jingle:1" action="session-terminate" sid="s"><reason><text>x</text><decline/></reason></jingle>`), &j); err != nil {
		t.Fatal(err)
	}
	if j.Reason.Name() != "decline" || j.Reason.Text != "x" {
		t.Errorf("reason %+v", j.Reason)
	}
	var none *JingleReason
	if none.Name() != "" {
		t.Error("nil reason has a name")
	}
}

func TestJMI(t *testing.T) {
	for _, tc := range []struct {
		m    JMI
		want string
	}{
		{JMI{Kind: "propose", ID: "jmi-1", Media: []string{"audio"}},
			`<propose xmlns="urn:xmpp:jingle-message:0" id="jmi-1"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"></description></propose>`},
		{JMI{Kind: "ringing", ID: "jmi-1"}, `<ringing xmlns="urn:xmpp:jingle-message:0" id="jmi-1"></ringing>`},
		{JMI{Kind: "proceed", ID: "jmi-1"}, `<proceed xmlns="urn:xmpp:jingle-message:0" id="jmi-1"></proceed>`},
		{JMI{Kind: "accept", ID: "jmi-1"}, `<accept xmlns="urn:xmpp:jingle-message:0" id="jmi-1"></accept>`},
		{JMI{Kind: "reject", ID: "jmi-1", Reason: "busy"},
			`<reject xmlns="urn:xmpp:jingle-message:0" id="jmi-1"><reason xmlns="urn:xmpp:jingle:1"><busy xmlns="urn:xmpp:jingle:1"></busy></reason></reject>`},
		{JMI{Kind: "retract", ID: "jmi-1", Reason: "cancel"},
			`<retract xmlns="urn:xmpp:jingle-message:0" id="jmi-1"><reason xmlns="urn:xmpp:jingle:1"><cancel xmlns="urn:xmpp:jingle:1"></cancel></reason></retract>`},
		{JMI{Kind: "finish", ID: "jmi-1", Reason: "success"},
			`<finish xmlns="urn:xmpp:jingle-message:0" id="jmi-1"><reason xmlns="urn:xmpp:jingle:1"><success xmlns="urn:xmpp:jingle:1"></success></reason></finish>`},
	} {
		e, err := EncodeJMI(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		out, err := xml.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != tc.want {
			t.Errorf("%s: got  %s\nwant %s", tc.m.Kind, out, tc.want)
		}
		var back JMIElement
		if err := xml.Unmarshal(out, &back); err != nil {
			t.Fatal(err)
		}
		m, err := DecodeJMI(back)
		if err != nil || !reflect.DeepEqual(m, tc.m) {
			t.Errorf("%s: decoded %+v %v, want %+v", tc.m.Kind, m, err, tc.m)
		}
	}
	// The XEP-0353 example shape with a reason text, and StanzaJS's propose.
	for in, want := range map[string]JMI{
		`<reject xmlns='urn:xmpp:jingle-message:0' id='ca3c'><reason xmlns="urn:xmpp:jingle:1"><busy/><text>Busy</text></reason></reject>`: {Kind: "reject", ID: "ca3c", Reason: "busy"},
		`<propose xmlns="urn:xmpp:jingle-message:0" id="jmi-x"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"/></propose>`:  {Kind: "propose", ID: "jmi-x", Media: []string{"audio"}},
	} {
		var e JMIElement
		if err := xml.Unmarshal([]byte(in), &e); err != nil {
			t.Fatal(err)
		}
		if m, err := DecodeJMI(e); err != nil || !reflect.DeepEqual(m, want) {
			t.Errorf("DecodeJMI(%s) = %+v %v, want %+v", in, m, err, want)
		}
	}
	for _, bad := range []string{
		`<propose xmlns="urn:xmpp:jingle-message:0" id="x"/>`,
		`<propose xmlns="urn:xmpp:jingle-message:1" id="x"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"/></propose>`,
		`<ringing xmlns="urn:xmpp:jingle-message:0"/>`,
		`<ring xmlns="urn:xmpp:jingle-message:0" id="x"/>`,
	} {
		var e JMIElement
		if err := xml.Unmarshal([]byte(bad), &e); err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeJMI(e); !errors.Is(err, ErrJingle) {
			t.Errorf("DecodeJMI(%s) = %v, want ErrJingle", bad, err)
		}
	}
	if _, err := EncodeJMI(JMI{Kind: "ring", ID: "x"}); !errors.Is(err, ErrJingle) {
		t.Errorf("EncodeJMI(ring) = %v", err)
	}
	if _, err := EncodeJMI(JMI{Kind: "proceed"}); !errors.Is(err, ErrJingle) {
		t.Errorf("EncodeJMI without id = %v", err)
	}
}

// TestParseSDPPhones: the shapes of sipp's default UAC, an Asterisk
// answer and a Kamailio/rtpproxy-relayed offer read into the same few
// fields.
func TestParseSDPPhones(t *testing.T) {
	for _, tc := range []struct {
		name, sdp string
		addr      string
		port      int
		codecs    []string
		dir       Direction
	}{
		{"sipp", "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.1.1\r\ns=-\r\nc=IN IP4 127.0.1.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
			"127.0.1.1", 6000, []string{"PCMU/8000"}, SendRecv},
		{"asterisk", "v=0\r\no=- 1712 1714 IN IP4 192.0.2.10\r\ns=Asterisk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 12826 RTP/AVP 8 0 101\r\n" +
			"a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=maxptime:150\r\na=sendonly\r\n",
			"192.0.2.10", 12826, []string{"PCMA/8000", "PCMU/8000", "telephone-event/8000"}, SendOnly},
		{"kamailio-rtpproxy", "v=0\r\no=- 3 3 IN IP4 10.0.0.5\r\ns=-\r\nt=0 0\r\nm=audio 35000 RTP/AVP 0 8 18 101\r\nc=IN IP4 203.0.113.5\r\nb=AS:64\r\n" +
			"a=rtcp:35001\r\na=nortpproxy:yes\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\n",
			"203.0.113.5", 35000, []string{"PCMU/8000", "PCMA/8000", "G729/8000", "telephone-event/8000"}, SendRecv},
	} {
		s, err := ParseSDP([]byte(tc.sdp))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		m := s.Media[0]
		var names []string
		for _, c := range m.Codecs {
			names = append(names, c.Name+"/"+strconvU(c.Clock))
		}
		if m.Addr != tc.addr || m.Port != tc.port || !reflect.DeepEqual(names, tc.codecs) || m.Direction != tc.dir {
			t.Errorf("%s: %s:%d %v %s, want %s:%d %v %s", tc.name, m.Addr, m.Port, names, m.Direction, tc.addr, tc.port, tc.codecs, tc.dir)
		}
	}
}

func strconvU(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// TestStanzaJSAccept: Chrome's session-accept through StanzaJS answers
// with setup="active" (it is the DTLS client) and is read as the
// responder's description.
func TestStanzaJSAccept(t *testing.T) {
	in := `<jingle xmlns="urn:xmpp:jingle:1" action="session-accept" sid="s" responder="bob@localhost/web">` +
		`<content creator="initiator" name="0" senders="initiator"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio">` +
		`<payload-type channels="1" clockrate="8000" id="0" name="PCMU"/><payload-type clockrate="8000" id="126" name="telephone-event"/><rtcp-mux/></description>` +
		`<transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="B0b1" pwd="pw"><fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="active">ab:cd</fingerprint></transport>` +
		`</content><group xmlns="urn:xmpp:jingle:apps:grouping:0" semantics="BUNDLE"><content name="0"/></group></jingle>`
	var j Jingle
	if err := xml.Unmarshal([]byte(in), &j); err != nil {
		t.Fatal(err)
	}
	s, err := JingleToSession(j)
	if err != nil {
		t.Fatal(err)
	}
	m := s.Media[0]
	if m.Fingerprint == nil || *m.Fingerprint != (Fingerprint{Hash: "sha-256", Value: "AB:CD", Setup: "active"}) {
		t.Errorf("fingerprint %+v", m.Fingerprint)
	}
	// senders="initiator" written by the responder: the responder only receives.
	if m.Direction != RecvOnly || !m.RTCPMux || len(m.Codecs) != 2 || m.Codecs[0].Channels != 0 {
		t.Errorf("media %+v", m)
	}
}

func TestJingleReasonForQ850(t *testing.T) {
	for cause, want := range map[int]string{16: "success", 31: "success", 17: "busy", 19: "timeout", 21: "decline", 1: "gone", 41: "connectivity-error", 88: "incompatible-parameters", 127: "general-error"} {
		if got := JingleReasonForQ850(cause); got != want {
			t.Errorf("JingleReasonForQ850(%d) = %s, want %s", cause, got, want)
		}
	}
}
