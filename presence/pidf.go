package presence

// Private stand-in for mapping/pidf.go, which another engineer is writing
// (ParsePIDF, PIDF.Marshal, Domains.PresenceToPIDF, Domains.PIDFToPresence).
// Every call site goes through these four functions so that switching to
// the mapping versions is a one-file change.

import (
	"encoding/xml"
	"fmt"
	"strings"

	"stox.dev/stox/mapping"
)

func presenceToPIDF(d mapping.Domains, ps []mapping.Presence, entity mapping.URI) mapping.PIDF {
	doc := mapping.PIDF{Entity: entity.String()}
	for _, p := range ps {
		t := mapping.Tuple{ID: "ID-" + p.From.Resource, Basic: "open", Show: p.Show, Priority: -1, Notes: p.Status}
		if p.Type == "unavailable" {
			t.Basic = "closed"
		}
		if p.Priority >= 0 {
			t.Priority = float64(p.Priority) / 127
		}
		doc.Tuples = append(doc.Tuples, t)
	}
	return doc
}

func pidfToPresence(d mapping.Domains, doc mapping.PIDF, from mapping.URI, to mapping.JID) []mapping.Presence {
	base := d.XMPPFrom(mapping.URI{Scheme: from.Scheme, User: from.User, Host: from.Host})
	var out []mapping.Presence
	for _, t := range doc.Tuples {
		p := mapping.Presence{From: base, To: to, Show: t.Show, Status: t.Notes}
		p.From.Resource = strings.TrimPrefix(t.ID, "ID-")
		if t.Basic != "open" {
			p.Type = "unavailable"
			p.Show = ""
		}
		if t.Priority >= 0 {
			p.Priority = int(t.Priority*127 + 0.5)
		}
		out = append(out, p)
	}
	return out
}

type xPIDF struct {
	XMLName xml.Name `xml:"urn:ietf:params:xml:ns:pidf presence"`
	Entity  string   `xml:"entity,attr"`
	Tuples  []xTuple `xml:"tuple"`
}

type xTuple struct {
	ID      string `xml:"id,attr"`
	Basic   string `xml:"status>basic"`
	Show    string `xml:"jabber:client status>show,omitempty"`
	Contact *struct {
		Priority string `xml:"priority,attr,omitempty"`
		URI      string `xml:",chardata"`
	} `xml:"contact,omitempty"`
	Notes []string `xml:"note"`
}

func parsePIDF(b []byte) (mapping.PIDF, error) {
	var x xPIDF
	if err := xml.Unmarshal(b, &x); err != nil {
		return mapping.PIDF{}, fmt.Errorf("presence: parse PIDF: %w", err)
	}
	doc := mapping.PIDF{Entity: x.Entity}
	for _, t := range x.Tuples {
		tt := mapping.Tuple{ID: t.ID, Basic: strings.TrimSpace(t.Basic), Show: t.Show, Priority: -1}
		if t.Contact != nil {
			tt.Contact = t.Contact.URI
			if _, err := fmt.Sscanf(t.Contact.Priority, "%g", &tt.Priority); err != nil {
				tt.Priority = -1
			}
		}
		for _, n := range t.Notes {
			tt.Notes = append(tt.Notes, mapping.Text{Value: n})
		}
		doc.Tuples = append(doc.Tuples, tt)
	}
	return doc, nil
}

func marshalPIDF(doc mapping.PIDF) ([]byte, error) {
	x := xPIDF{Entity: doc.Entity}
	for _, t := range doc.Tuples {
		xt := xTuple{ID: t.ID, Basic: t.Basic, Show: t.Show}
		if t.Priority >= 0 {
			xt.Contact = &struct {
				Priority string `xml:"priority,attr,omitempty"`
				URI      string `xml:",chardata"`
			}{Priority: fmt.Sprintf("%.3f", t.Priority), URI: t.Contact}
		}
		for _, n := range t.Notes {
			xt.Notes = append(xt.Notes, n.Value)
		}
		x.Tuples = append(x.Tuples, xt)
	}
	b, err := xml.Marshal(x)
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), b...), nil
}
