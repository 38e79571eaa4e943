package mapping

import "encoding/xml"

// The Jingle namespaces stox speaks.
const (
	NSJingle       = "urn:xmpp:jingle:1"                     // XEP-0166
	NSJingleErrors = "urn:xmpp:jingle:errors:1"              // XEP-0166 §11
	NSJingleRTP    = "urn:xmpp:jingle:apps:rtp:1"            // XEP-0167
	NSJingleInfo   = "urn:xmpp:jingle:apps:rtp:info:1"       // XEP-0167 §7
	NSJingleRTPErr = "urn:xmpp:jingle:apps:rtp:errors:1"     // XEP-0167 §8
	NSJingleICE    = "urn:xmpp:jingle:transports:ice-udp:1"  // XEP-0176
	NSJingleDTLS   = "urn:xmpp:jingle:apps:dtls:0"           // XEP-0320
	NSJingleGroup  = "urn:xmpp:jingle:apps:grouping:0"       // XEP-0338
	NSJingleFB     = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0"    // XEP-0293
	NSJingleHdrExt = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0" // XEP-0294
	NSJingleSSMA   = "urn:xmpp:jingle:apps:rtp:ssma:0"       // XEP-0339
	NSJMI          = "urn:xmpp:jingle-message:0"             // XEP-0353
	NSHints        = "urn:xmpp:hints"                        // XEP-0334
	NSRFC3264      = "urn:ietf:rfc:3264"                     // XEP-0176 §3: half-trickle gateways
	NSJingleAudio  = "urn:xmpp:jingle:apps:rtp:audio"        // XEP-0167 §10
	NSCaps         = "http://jabber.org/protocol/caps"       // XEP-0115
)

// Jingle actions (XEP-0166 §7.2).
const (
	ActSessionInitiate  = "session-initiate"
	ActSessionAccept    = "session-accept"
	ActSessionTerminate = "session-terminate"
	ActSessionInfo      = "session-info"
	ActTransportInfo    = "transport-info"
	ActContentAdd       = "content-add"
	ActContentAccept    = "content-accept"
	ActContentReject    = "content-reject"
	ActContentRemove    = "content-remove"
	ActContentModify    = "content-modify"
	ActDescriptionInfo  = "description-info"
	ActSecurityInfo     = "security-info"
	ActTransportAccept  = "transport-accept"
	ActTransportReject  = "transport-reject"
	ActTransportReplace = "transport-replace"
)

// Jingle is the <jingle/> element (XEP-0166 §7.1), decoded leniently: real
// clients omit attributes the XEPs call required (a candidate's id and
// generation, for one), and the translators decide what is fatal.
type Jingle struct {
	XMLName   xml.Name        `xml:"urn:xmpp:jingle:1 jingle"`
	Action    string          `xml:"action,attr"`
	SID       string          `xml:"sid,attr"`
	Initiator string          `xml:"initiator,attr,omitempty"`
	Responder string          `xml:"responder,attr,omitempty"`
	Contents  []JingleContent `xml:"content"`
	Group     *JingleGroup    `xml:"urn:xmpp:jingle:apps:grouping:0 group,omitempty"`
	Reason    *JingleReason   `xml:"reason,omitempty"`
	// Info holds the payloads of a session-info (XEP-0167 §7: ringing,
	// hold, unhold, active, mute, unmute) and any other child stox does not
	// model; an empty session-info is a ping (XEP-0166 §6.8).
	Info []JingleInfo `xml:",any"`
}

// JingleInfo is one informational payload, known by its name.
type JingleInfo struct {
	XMLName xml.Name
	Creator string `xml:"creator,attr,omitempty"`
	Name    string `xml:"name,attr,omitempty"`
}

// JingleContent is a <content/> (XEP-0166 §7.3).
type JingleContent struct {
	Creator     string           `xml:"creator,attr"`
	Name        string           `xml:"name,attr"`
	Senders     string           `xml:"senders,attr,omitempty"`
	Disposition string           `xml:"disposition,attr,omitempty"`
	Description *RTPDescription  `xml:"urn:xmpp:jingle:apps:rtp:1 description,omitempty"`
	Transport   *ICEUDPTransport `xml:"urn:xmpp:jingle:transports:ice-udp:1 transport,omitempty"`
}

// RTPDescription is <description xmlns='urn:xmpp:jingle:apps:rtp:1'/>
// (XEP-0167 §4).
type RTPDescription struct {
	Media        string           `xml:"media,attr"`
	SSRC         string           `xml:"ssrc,attr,omitempty"`
	PayloadTypes []JinglePayload  `xml:"payload-type"`
	Encryption   *JingleEncrypt   `xml:"encryption,omitempty"`
	Bandwidth    *JingleBandwidth `xml:"bandwidth,omitempty"`
	RTCPMux      *struct{}        `xml:"rtcp-mux,omitempty"`
	RTCPRsize    *struct{}        `xml:"rtcp-reduced-size,omitempty"`
	FB           []JingleRTCPFB   `xml:"urn:xmpp:jingle:apps:rtp:rtcp-fb:0 rtcp-fb,omitempty"`
	HdrExts      []JingleHdrExt   `xml:"urn:xmpp:jingle:apps:rtp:rtp-hdrext:0 rtp-hdrext,omitempty"`
	Sources      []JingleSource   `xml:"urn:xmpp:jingle:apps:rtp:ssma:0 source,omitempty"`
}

// JinglePayload is a <payload-type/> (XEP-0167 §4).
type JinglePayload struct {
	ID        string         `xml:"id,attr"`
	Name      string         `xml:"name,attr,omitempty"`
	ClockRate string         `xml:"clockrate,attr,omitempty"`
	Channels  string         `xml:"channels,attr,omitempty"`
	Ptime     string         `xml:"ptime,attr,omitempty"`
	MaxPtime  string         `xml:"maxptime,attr,omitempty"`
	Params    []JingleParam  `xml:"parameter"`
	FB        []JingleRTCPFB `xml:"urn:xmpp:jingle:apps:rtp:rtcp-fb:0 rtcp-fb,omitempty"`
}

// JingleParam is a <parameter name value/>.
type JingleParam struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr,omitempty"`
}

// JingleRTCPFB is <rtcp-fb type subtype/> (XEP-0293).
type JingleRTCPFB struct {
	Type    string `xml:"type,attr"`
	Subtype string `xml:"subtype,attr,omitempty"`
}

// JingleHdrExt is <rtp-hdrext id uri senders/> (XEP-0294).
type JingleHdrExt struct {
	ID      string `xml:"id,attr"`
	URI     string `xml:"uri,attr"`
	Senders string `xml:"senders,attr,omitempty"`
}

// JingleSource is <source ssrc/> with its parameters (XEP-0339).
type JingleSource struct {
	SSRC   string        `xml:"ssrc,attr"`
	Params []JingleParam `xml:"parameter"`
}

// JingleEncrypt is <encryption required/> with SDES keys (XEP-0167 §7).
type JingleEncrypt struct {
	Required string         `xml:"required,attr,omitempty"`
	Crypto   []JingleCrypto `xml:"crypto"`
}

// JingleCrypto is <crypto/> (XEP-0167 §7, RFC 4568).
type JingleCrypto struct {
	Suite         string `xml:"crypto-suite,attr"`
	KeyParams     string `xml:"key-params,attr"`
	SessionParams string `xml:"session-params,attr,omitempty"`
	Tag           string `xml:"tag,attr"`
}

// JingleBandwidth is <bandwidth type>value</bandwidth> (XEP-0167 §4).
type JingleBandwidth struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

// ICEUDPTransport is <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'/>
// (XEP-0176 §5) with its DTLS fingerprint (XEP-0320).
type ICEUDPTransport struct {
	Ufrag       string             `xml:"ufrag,attr,omitempty"`
	Pwd         string             `xml:"pwd,attr,omitempty"`
	Fingerprint *JingleFingerprint `xml:"urn:xmpp:jingle:apps:dtls:0 fingerprint,omitempty"`
	Candidates  []JingleCandidate  `xml:"candidate"`
	// GatheringComplete is StanzaJS's non-standard end-of-candidates
	// marker (docs/calls.md).
	GatheringComplete *struct{} `xml:"gathering-complete,omitempty"`
}

// JingleFingerprint is <fingerprint hash setup>HEX</fingerprint> (XEP-0320 §3).
type JingleFingerprint struct {
	Hash  string `xml:"hash,attr"`
	Setup string `xml:"setup,attr,omitempty"`
	Value string `xml:",chardata"`
}

// JingleCandidate is <candidate/> (XEP-0176 §5).
type JingleCandidate struct {
	Component  string `xml:"component,attr"`
	Foundation string `xml:"foundation,attr"`
	Generation string `xml:"generation,attr,omitempty"`
	ID         string `xml:"id,attr,omitempty"`
	IP         string `xml:"ip,attr"`
	Network    string `xml:"network,attr,omitempty"`
	Port       string `xml:"port,attr"`
	Priority   string `xml:"priority,attr"`
	Protocol   string `xml:"protocol,attr"`
	RelAddr    string `xml:"rel-addr,attr,omitempty"`
	RelPort    string `xml:"rel-port,attr,omitempty"`
	Type       string `xml:"type,attr,omitempty"`
	TCPType    string `xml:"tcptype,attr,omitempty"`
}

// JingleGroup is <group semantics/> (XEP-0338).
type JingleGroup struct {
	Semantics string              `xml:"semantics,attr"`
	Contents  []JingleGroupMember `xml:"content"`
}

// JingleGroupMember names one content of a group.
type JingleGroupMember struct {
	Name string `xml:"name,attr"`
}

// JingleReason is <reason/> (XEP-0166 §7.4): Condition is the element name
// of the first child (busy, decline, success, …), Text the optional <text/>.
type JingleReason struct {
	Condition JingleCondition `xml:",any"`
	Text      string          `xml:"urn:xmpp:jingle:1 text,omitempty"`
}

// JingleCondition is the condition element inside <reason/>.
type JingleCondition struct {
	XMLName xml.Name
}
