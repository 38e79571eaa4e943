package mapping

import (
	"encoding/xml"
	"fmt"
)

// JMIElement is one XEP-0353 element (propose, ringing, proceed, reject,
// retract, accept, finish) in the shape encoding/xml reads and writes: the
// xmpp stack marshals it as a child of <message type="chat"> next to
// <store xmlns="urn:xmpp:hints"/> (XEP-0353 §3, XEP-0334), and decodes it
// with xml.Decoder.DecodeElement when IsJMI(start.Name).
type JMIElement struct {
	XMLName      xml.Name
	ID           string           `xml:"id,attr"`
	Descriptions []JMIDescription `xml:"urn:xmpp:jingle:apps:rtp:1 description,omitempty"`
	Reason       *JingleReason    `xml:"urn:xmpp:jingle:1 reason,omitempty"`
}

// JMIDescription is the <description media/> of a propose (XEP-0353 §3.1).
type JMIDescription struct {
	Media string `xml:"media,attr"`
}

// jmiKinds are the XEP-0353 element names stox knows.
var jmiKinds = map[string]bool{
	"propose": true, "ringing": true, "proceed": true, "reject": true,
	"retract": true, "accept": true, "finish": true,
}

// IsJMI reports whether name is a XEP-0353 element stox reads.
func IsJMI(name xml.Name) bool {
	return name.Space == NSJMI && jmiKinds[name.Local]
}

// EncodeJMI is the element of m; From and To are the message's and are not
// part of it. The reason goes only where XEP-0353 has one (reject, retract,
// finish), the descriptions only into a propose.
func EncodeJMI(m JMI) (JMIElement, error) {
	if !jmiKinds[m.Kind] {
		return JMIElement{}, fmt.Errorf("%w: unknown JMI kind %q", ErrJingle, m.Kind)
	}
	if m.ID == "" {
		return JMIElement{}, fmt.Errorf("%w: JMI %s without id", ErrJingle, m.Kind)
	}
	e := JMIElement{XMLName: xml.Name{Space: NSJMI, Local: m.Kind}, ID: m.ID}
	switch m.Kind {
	case "propose":
		for _, media := range m.Media {
			e.Descriptions = append(e.Descriptions, JMIDescription{Media: media})
		}
	case "reject", "retract", "finish":
		if m.Reason != "" {
			e.Reason = NewJingleReason(m.Reason, "")
		}
	}
	return e, nil
}

// DecodeJMI reads e into a JMI without From and To, which the caller takes
// from the message. A propose must name at least one media (XEP-0353 §3.1).
func DecodeJMI(e JMIElement) (JMI, error) {
	if !IsJMI(e.XMLName) {
		return JMI{}, fmt.Errorf("%w: %s %s is not a JMI element", ErrJingle, e.XMLName.Space, e.XMLName.Local)
	}
	if e.ID == "" {
		return JMI{}, fmt.Errorf("%w: JMI %s without id", ErrJingle, e.XMLName.Local)
	}
	m := JMI{Kind: e.XMLName.Local, ID: e.ID, Reason: e.Reason.Name()}
	for _, d := range e.Descriptions {
		if d.Media != "" {
			m.Media = append(m.Media, d.Media)
		}
	}
	if m.Kind == "propose" && len(m.Media) == 0 {
		return JMI{}, fmt.Errorf("%w: JMI propose %s without an RTP description", ErrJingle, e.ID)
	}
	return m, nil
}
