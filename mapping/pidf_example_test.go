package mapping_test

import (
	"fmt"

	"stox.dev/stox/mapping"
)

// An XMPP user's presence becomes the PIDF body of a NOTIFY (RFC 8048 §6.2,
// Examples 18 and 19): one tuple per resource, <show/> inside <status/>,
// plus the RPID activity a SIP phone renders.
func ExampleDomains_PresenceToPIDF() {
	d := mapping.Domains{XMPP: "x2s.example.com", SIP: "example.net"}
	juliet, _ := mapping.ParseJID("juliet@example.com/yn0cl4bnw0yr3vym")
	ps := []mapping.Presence{{From: juliet, Show: "away", Priority: 1, Status: []mapping.Text{{Lang: "en", Value: "Out & about"}}}}
	doc := d.PresenceToPIDF(ps, mapping.URI{Scheme: "pres", User: "juliet", Host: "example.com"})
	body, _ := doc.Marshal()
	fmt.Print(string(body))
	// Output:
	// <?xml version="1.0" encoding="UTF-8"?>
	// <presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="pres:juliet@example.com">
	//  <tuple id="ID-yn0cl4bnw0yr3vym"><status><basic>open</basic><show xmlns="jabber:client">away</show></status><contact priority="0.007">sip:juliet@example.com;gr=yn0cl4bnw0yr3vym</contact><note xml:lang="en">Out &amp; about</note></tuple>
	//  <dm:person id="p"><rpid:activities><rpid:away/></rpid:activities></dm:person>
	// </presence>
}

// A SIP phone's NOTIFY body becomes XMPP presence (RFC 8048 §6.3, Examples
// 20 and 21; Asterisk's "on the phone" document).
func ExampleDomains_PIDFToPresence() {
	d := mapping.Domains{XMPP: "x2s.example.com", SIP: "example.net"}
	juliet, _ := mapping.ParseJID("juliet@example.com/yn0cl4bnw0yr3vym")
	romeo := mapping.URI{Scheme: "sip", User: "romeo", Host: "example.net"}
	for _, body := range []string{
		`<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:romeo@example.net'>
		   <tuple id='ID-dr4hcr0st3lup4c'><status><basic>closed</basic></status></tuple></presence>`,
		`<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:pp="urn:ietf:params:xml:ns:pidf:person"
		   xmlns:ep="urn:ietf:params:xml:ns:pidf:rpid:rpid-person" entity="sip:romeo@example.net">
		   <pp:person><status><ep:activities><ep:busy/></ep:activities></status></pp:person>
		   <note>On the phone</note>
		   <tuple id="romeo"><contact priority="1">sip:romeo@example.net</contact><status><basic>open</basic></status></tuple></presence>`,
	} {
		doc, err := mapping.ParsePIDF([]byte(body))
		if err != nil {
			fmt.Println(err)
			continue
		}
		for _, p := range d.PIDFToPresence(doc, romeo, juliet) {
			fmt.Printf("from=%s type=%q show=%q priority=%d status=%v\n", p.From, p.Type, p.Show, p.Priority, p.Status)
		}
	}
	// Output:
	// from=romeo@x2s.example.com/dr4hcr0st3lup4c type="unavailable" show="" priority=0 status=[]
	// from=romeo@x2s.example.com type="" show="dnd" priority=127 status=[{ On the phone}]
}

// RFC 8048 §6.2 note 6: XMPP priority -128..127 to PIDF 0..1 and back.
func ExamplePriorityToPIDF() {
	for _, p := range []int{-1, 0, 1, 2, 64, 126, 127} {
		q := mapping.PriorityToPIDF(p)
		fmt.Println(p, q, mapping.PriorityFromPIDF(q))
	}
	// Output:
	// -1 -1 0
	// 0 0 0
	// 1 0.007 1
	// 2 0.015 2
	// 64 0.503 64
	// 126 0.992 126
	// 127 1 127
}

func ExampleParsePIDF() {
	_, err := mapping.ParsePIDF([]byte(`<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info"/>`))
	fmt.Println(err)
	// Output:
	// mapping: bad PIDF document: root element is {urn:ietf:params:xml:ns:dialog-info}dialog-info, not {urn:ietf:params:xml:ns:pidf}presence
}
