package mapping

import (
	"encoding/xml"
	"fmt"
	"strings"
)

// A PCMU-only offer from an XMPP client becomes the SDP of the INVITE: the
// content name is the mid, the ICE and DTLS parameters move to a= lines,
// and the default candidate goes into c= and m=.
func ExampleJingleToSession() {
	const si = `<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="s1">
 <content creator="initiator" name="0">
  <description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio">
   <payload-type id="0" name="PCMU" clockrate="8000"/>
   <payload-type id="126" name="telephone-event" clockrate="8000"><parameter name="0-15"/></payload-type>
   <rtcp-mux/>
  </description>
  <transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="K002" pwd="xfsB1szefPItdRRoMDrmk/VY">
   <fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">E9:A5:71:63</fingerprint>
   <candidate component="1" foundation="969810707" ip="192.0.2.7" port="48697" priority="2122260223" protocol="udp" type="host"/>
  </transport>
 </content>
</jingle>`
	var j Jingle
	if err := xml.Unmarshal([]byte(si), &j); err != nil {
		fmt.Println(err)
		return
	}
	s, err := JingleToSession(j)
	if err != nil {
		fmt.Println(err)
		return
	}
	sdp, err := MarshalSDP(s)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(strings.ReplaceAll(string(sdp), "\r\n", "\n")) // lines end in CRLF on the wire
	// Output:
	// v=0
	// o=- 0 0 IN IP4 192.0.2.7
	// s=-
	// c=IN IP4 192.0.2.7
	// t=0 0
	// m=audio 48697 UDP/TLS/RTP/SAVPF 0 126
	// a=mid:0
	// a=rtpmap:0 PCMU/8000
	// a=rtpmap:126 telephone-event/8000
	// a=fmtp:126 0-15
	// a=sendrecv
	// a=rtcp-mux
	// a=ice-ufrag:K002
	// a=ice-pwd:xfsB1szefPItdRRoMDrmk/VY
	// a=fingerprint:sha-256 E9:A5:71:63
	// a=setup:actpass
	// a=candidate:969810707 1 udp 2122260223 192.0.2.7 48697 typ host
}
