package mapping

import (
	"bytes"
	"encoding/xml"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// RFC 8048 §6.2 Example 19 (the PIDF body of the NOTIFY).
const rfc8048Ex19 = `<?xml version='1.0' encoding='UTF-8'?>
<presence xmlns='urn:ietf:params:xml:ns:pidf'
          entity='pres:juliet@example.com'>
  <tuple id='ID-yn0cl4bnw0yr3vym'>
    <status>
      <basic>open</basic>
      <show xmlns='jabber:client'>away</show>
    </status>
  </tuple>
</presence>`

// RFC 8048 §6.3 Example 20.
const rfc8048Ex20 = `<?xml version='1.0' encoding='UTF-8'?>
<presence xmlns='urn:ietf:params:xml:ns:pidf'
          entity='pres:romeo@example.net'>
  <tuple id='ID-dr4hcr0st3lup4c'>
    <status>
      <basic>closed</basic>
    </status>
  </tuple>
</presence>`

// RFC 3863 §4.3.1.
const rfc3863Ex1 = `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
     xmlns:im="urn:ietf:params:xml:ns:pidf:im"
     xmlns:myex="http://id.example.com/presence/"
     entity="pres:someone@example.com">
  <tuple id="bs35r9">
    <status>
      <basic>open</basic>
      <im:im>busy</im:im>
      <myex:location>home</myex:location>
    </status>
    <contact priority="0.8">im:someone@mobilecarrier.net</contact>
    <note xml:lang="en">Don't Disturb Please!</note>
    <note xml:lang="fr">Ne derangez pas, s'il vous plait</note>
    <timestamp>2001-10-27T16:49:29Z</timestamp>
  </tuple>
  <tuple id="eg92n8">
    <status>
      <basic>open</basic>
    </status>
    <contact priority="1.0">mailto:someone@example.com</contact>
  </tuple>
  <note>I'll be in Tokyo next week</note>
</presence>`

// RFC 3863 §4.3.2: prefixed PIDF namespace and foreign extensions.
const rfc3863Ex2 = `<?xml version="1.0" encoding="UTF-8"?>
<impp:presence xmlns:impp="urn:ietf:params:xml:ns:pidf"
     xmlns:myex="http://id.example.com/presence/"
     entity="pres:someone@example.com">
  <impp:tuple id="ck38g9">
    <impp:status>
      <impp:basic>open</impp:basic>
    </impp:status>
    <myex:mytupletag>Extended value in tuple</myex:mytupletag>
    <impp:contact priority="0.65">tel:+09012345678</impp:contact>
  </impp:tuple>
  <impp:tuple id="md66je">
    <impp:status>
      <impp:basic>open</impp:basic>
    </impp:status>
    <impp:contact priority="1.0">
       im:someone@mobilecarrier.net</impp:contact>
  </impp:tuple>
  <myex:mytag>My extended presentity information</myex:mytag>
</impp:presence>`

// RFC 4480 §4 (abridged: devices and most person elements dropped).
const rfc4480Ex = `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
  xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
  xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
  entity="pres:someone@example.com">
 <tuple id="bs35r9">
   <status><basic>open</basic></status>
   <dm:deviceID>urn:device:0003ba4811e3</dm:deviceID>
   <rpid:relationship><rpid:self/></rpid:relationship>
   <contact priority="0.8">im:someone@mobile.example.net</contact>
   <note xml:lang="en">Don't Disturb Please!</note>
 </tuple>
 <note>I'll be in Tokyo next week</note>
 <dm:person id="p1">
   <rpid:activities from="2005-05-30T12:00:00+05:00" until="2005-05-30T17:00:00+05:00">
      <rpid:note>Far away</rpid:note>
      <rpid:away/>
   </rpid:activities>
   <rpid:mood><rpid:angry/><rpid:other>brooding</rpid:other></rpid:mood>
   <dm:note xml:lang="en">Busy with the project</dm:note>
 </dm:person>
</presence>`

// Asterisk's PIDF for a device in use (chan_sip / res_pjsip_pidf_body_generator,
// docs/interworking.md): legacy RPID namespaces, ISO-8859-1, note at the top.
const asteriskBusy = `<?xml version="1.0" encoding="ISO-8859-1"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:pp="urn:ietf:params:xml:ns:pidf:person" xmlns:es="urn:ietf:params:xml:ns:pidf:rpid:status:rpid-status" xmlns:ep="urn:ietf:params:xml:ns:pidf:rpid:rpid-person" entity="sip:1000@pbx.example">
<pp:person><status><ep:activities><ep:busy/></ep:activities></status></pp:person>
<note>On the phone</note>
<tuple id="1000">
<contact priority="1">sip:1000@pbx.example</contact>
<status><basic>open</basic></status>
</tuple>
</presence>`

// Kamailio presence_xml / pua style minimal document.
const kamailioMinimal = `<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:bob@sip.example"><tuple id="0x7f3c"><status><basic>open</basic></status></tuple></presence>`

func TestParsePIDF(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want PIDF
	}{
		{"RFC 8048 example 19", rfc8048Ex19, PIDF{Entity: "pres:juliet@example.com",
			Tuples: []Tuple{{ID: "ID-yn0cl4bnw0yr3vym", Basic: "open", Show: "away", Priority: -1}}}},
		{"RFC 8048 example 20", rfc8048Ex20, PIDF{Entity: "pres:romeo@example.net",
			Tuples: []Tuple{{ID: "ID-dr4hcr0st3lup4c", Basic: "closed", Priority: -1}}}},
		{"RFC 3863 §4.3.1", rfc3863Ex1, PIDF{Entity: "pres:someone@example.com",
			Tuples: []Tuple{
				{ID: "bs35r9", Basic: "open", Contact: "im:someone@mobilecarrier.net", Priority: 0.8,
					Notes: []Text{{"en", "Don't Disturb Please!"}, {"fr", "Ne derangez pas, s'il vous plait"}}},
				{ID: "eg92n8", Basic: "open", Contact: "mailto:someone@example.com", Priority: 1},
			},
			Notes: []Text{{"", "I'll be in Tokyo next week"}}}},
		{"RFC 3863 §4.3.2 prefixed", rfc3863Ex2, PIDF{Entity: "pres:someone@example.com",
			Tuples: []Tuple{
				{ID: "ck38g9", Basic: "open", Contact: "tel:+09012345678", Priority: 0.65},
				{ID: "md66je", Basic: "open", Contact: "im:someone@mobilecarrier.net", Priority: 1},
			}}},
		{"RFC 4480 §4", rfc4480Ex, PIDF{Entity: "pres:someone@example.com",
			Tuples: []Tuple{{ID: "bs35r9", Basic: "open", Contact: "im:someone@mobile.example.net", Priority: 0.8,
				Notes: []Text{{"en", "Don't Disturb Please!"}}}},
			Activities: []string{"away"},
			Notes:      []Text{{"", "I'll be in Tokyo next week"}, {"en", "Busy with the project"}}}},
		{"Asterisk busy", asteriskBusy, PIDF{Entity: "sip:1000@pbx.example",
			Tuples:     []Tuple{{ID: "1000", Basic: "open", Contact: "sip:1000@pbx.example", Priority: 1}},
			Activities: []string{"busy"},
			Notes:      []Text{{"", "On the phone"}}}},
		{"Kamailio minimal", kamailioMinimal, PIDF{Entity: "sip:bob@sip.example",
			Tuples: []Tuple{{ID: "0x7f3c", Basic: "open", Priority: -1}}}},
		{"no tuples", `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b"/>`, PIDF{Entity: "pres:a@b"}},
		{"inherited xml:lang, bad priority, bad show, odd basic",
			`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b" xml:lang="de"><tuple id="t">` +
				`<status><basic> OPEN </basic><show xmlns="jabber:client">sleepy</show></status>` +
				`<contact priority="1.5">sip:a@b</contact><note>Hallo</note><note xml:lang="en">Hello</note></tuple></presence>`,
			PIDF{Entity: "pres:a@b", Tuples: []Tuple{{ID: "t", Basic: "open", Contact: "sip:a@b", Priority: -1,
				Notes: []Text{{"de", "Hallo"}, {"en", "Hello"}}}}}},
		{"show in jabber:client outside status, activities in a tuple (draft RPID)",
			`<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" entity="pres:a@b"><tuple id="t">` +
				`<status><basic>open</basic><r:activities><r:on-the-phone/><r:other>x</r:other><r:on-the-phone/></r:activities></status>` +
				`<j:show xmlns:j="jabber:client">dnd</j:show></tuple></presence>`,
			PIDF{Entity: "pres:a@b", Tuples: []Tuple{{ID: "t", Basic: "open", Show: "dnd", Priority: -1}},
				Activities: []string{"on-the-phone"}}},
		{"elements of other namespaces with PIDF names are ignored",
			`<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:x="urn:x" entity="pres:a@b"><x:tuple id="no"/><tuple id="t">` +
				`<x:status><basic>closed</basic></x:status><status><x:basic>closed</x:basic><basic>open</basic></status>` +
				`<show>away</show></tuple></presence>`,
			PIDF{Entity: "pres:a@b", Tuples: []Tuple{{ID: "t", Basic: "open", Priority: -1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePIDF([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePIDF =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParsePIDFRejects(t *testing.T) {
	deep := `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b">` + strings.Repeat("<x>", MaxPIDFDepth) +
		strings.Repeat("</x>", MaxPIDFDepth) + `</presence>`
	many := `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b">` +
		strings.Repeat(`<tuple id="t"/>`, MaxPIDFTuples+1) + `</presence>`
	big := `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b"><note>` +
		strings.Repeat("a", MaxPIDFSize) + `</note></presence>`
	tests := []struct{ name, doc string }{
		{"empty", ""},
		{"text only", "hello"},
		{"wrong root", `<presence xmlns="jabber:client"/>`},
		{"no namespace", `<presence entity="pres:a@b"><tuple id="a"/></presence>`},
		{"not PIDF (dialog-info)", `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:a@b"/>`},
		{"truncated", `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b"><tuple id="a">`},
		{"mismatched tags", `<presence xmlns="urn:ietf:params:xml:ns:pidf"><tuple></status></presence>`},
		{"undeclared prefix entity", `<presence xmlns="urn:ietf:params:xml:ns:pidf">&bogus;</presence>`},
		{"too deep", deep},
		{"too many tuples", many},
		{"too big", big},
		{"unknown charset", `<?xml version="1.0" encoding="EBCDIC"?><presence xmlns="urn:ietf:params:xml:ns:pidf"/>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePIDF([]byte(tt.doc))
			if !errors.Is(err, ErrBadPIDF) {
				t.Fatalf("ParsePIDF = %v, want ErrBadPIDF", err)
			}
		})
	}
	// Exactly at the limits is fine.
	ok := `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b">` + strings.Repeat("<x>", MaxPIDFDepth-1) +
		strings.Repeat("</x>", MaxPIDFDepth-1) + `</presence>`
	if _, err := ParsePIDF([]byte(ok)); err != nil {
		t.Fatalf("depth %d: %v", MaxPIDFDepth, err)
	}
}

func TestParsePIDFLatin1(t *testing.T) {
	doc := []byte(`<?xml version="1.0" encoding="ISO-8859-1"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b"><note>Gr` + "\xfc\xdf" + `e</note></presence>`)
	p, err := ParsePIDF(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Notes) != 1 || p.Notes[0].Value != "Grüße" {
		t.Fatalf("notes = %+v", p.Notes)
	}
}

// RFC 8048 §6.2 note 6: the example values and the required properties.
func TestPriorityScale(t *testing.T) {
	tests := []struct {
		xmpp int
		pidf float64
	}{
		{-128, -1}, {-1, -1}, {0, 0}, {1, 0.007}, {2, 0.015}, {3, 0.023}, {64, 0.503},
		{100, 0.787}, {126, 0.992}, {127, 1}, {128, 1}, {1000, 1},
	}
	for _, tt := range tests {
		if got := PriorityToPIDF(tt.xmpp); got != tt.pidf {
			t.Errorf("PriorityToPIDF(%d) = %v, want %v", tt.xmpp, got, tt.pidf)
		}
	}
	prev := -1.0
	for p := 0; p <= 127; p++ {
		q := PriorityToPIDF(p)
		if q <= prev || q < 0 || q > 1 {
			t.Fatalf("PriorityToPIDF(%d) = %v after %v: not strictly increasing in [0,1]", p, q, prev)
		}
		if q*1000 != float64(int(q*1000+0.5)) {
			t.Fatalf("PriorityToPIDF(%d) = %v has more than three decimals", p, q)
		}
		if back := PriorityFromPIDF(q); back != p {
			t.Fatalf("PriorityFromPIDF(PriorityToPIDF(%d)) = %d", p, back)
		}
		prev = q
	}
	for _, tt := range []struct {
		q    float64
		want int
	}{{-1, 0}, {0, 0}, {0.5, 64}, {0.8, 102}, {1, 127}, {1.5, 0}, {0.0039, 0}, {0.004, 1}} {
		if got := PriorityFromPIDF(tt.q); got != tt.want {
			t.Errorf("PriorityFromPIDF(%v) = %d, want %d", tt.q, got, tt.want)
		}
	}
}

func TestTupleID(t *testing.T) {
	tests := []struct{ res, want string }{
		{"yn0cl4bnw0yr3vym", "ID-yn0cl4bnw0yr3vym"},
		{"balcony", "ID-balcony"},
		{"1234", "ID-1234"},
		{"Gajim.X4Q", "ID-Gajim.X4Q"},
		{"télé", "ID-télé"},
		{"", "ID-"},
	}
	for _, tt := range tests {
		if got := TupleID(tt.res); got != tt.want {
			t.Errorf("TupleID(%q) = %q, want %q", tt.res, got, tt.want)
		}
	}
	for _, res := range []string{"my phone", "a:b", "a/b", "<x>", "a\"b", "x\u00d7y"} {
		id := TupleID(res)
		if !strings.HasPrefix(id, "H-") || len(id) != 26 || !isNCName(id) || TupleID(res) != id {
			t.Errorf("TupleID(%q) = %q, want a stable H- hash", res, id)
		}
	}
	if TupleID("a b") == TupleID("a  b") {
		t.Error("hash ids collide")
	}
}

// RFC 8048 §6.2 Example 18 → Example 19, plus Table 1's other rows.
func TestPresenceToPIDF(t *testing.T) {
	d := Domains{XMPP: "x2s.example.com", SIP: "example.net"}
	juliet := JID{Local: "juliet", Domain: "example.com", Resource: "yn0cl4bnw0yr3vym"}
	pres := URI{Scheme: "pres", User: "juliet", Host: "example.com"}
	tests := []struct {
		name string
		ps   []Presence
		want PIDF
	}{
		{"example 18/19 (show away)", []Presence{{From: juliet, Show: "away", Priority: -1}},
			PIDF{Entity: "pres:juliet@example.com", Activities: []string{"away"},
				Tuples: []Tuple{{ID: "ID-yn0cl4bnw0yr3vym", Basic: "open", Show: "away", Priority: -1}}}},
		{"unavailable → closed, no priority, status kept", []Presence{{From: juliet, Type: "unavailable", Priority: 5,
			Status: []Text{{"", "gone"}}}},
			PIDF{Entity: "pres:juliet@example.com",
				Tuples: []Tuple{{ID: "ID-yn0cl4bnw0yr3vym", Basic: "closed", Priority: -1, Notes: []Text{{"", "gone"}}}}}},
		{"priority, statuses per lang, xa → away", []Presence{{From: juliet, Show: "xa", Priority: 127, Lang: "en",
			Status: []Text{{"en", "Gone fishing"}, {"fr", "Partie pêcher"}, {"", ""}}}},
			PIDF{Entity: "pres:juliet@example.com", Activities: []string{"away"},
				Tuples: []Tuple{{ID: "ID-yn0cl4bnw0yr3vym", Basic: "open", Show: "xa", Priority: 1,
					Contact: "sip:juliet@example.com;gr=yn0cl4bnw0yr3vym",
					Notes:   []Text{{"en", "Gone fishing"}, {"fr", "Partie pêcher"}}}}}},
		{"dnd → busy; other types skipped; most available resource wins",
			[]Presence{
				{From: JID{"juliet", "example.com", "desk"}, Show: "dnd", Priority: 1},
				{From: JID{"juliet", "example.com", "phone"}, Show: "away", Priority: 0},
				{From: juliet, Type: "subscribe"},
				{From: juliet, Type: "probe"},
			},
			PIDF{Entity: "pres:juliet@example.com", Activities: []string{"away"}, Tuples: []Tuple{
				{ID: "ID-desk", Basic: "open", Show: "dnd", Priority: 0.007, Contact: "sip:juliet@example.com;gr=desk"},
				{ID: "ID-phone", Basic: "open", Show: "away", Priority: 0, Contact: "sip:juliet@example.com;gr=phone"},
			}}},
		{"dnd alone → busy", []Presence{{From: juliet, Show: "dnd", Priority: -5}},
			PIDF{Entity: "pres:juliet@example.com", Activities: []string{"busy"},
				Tuples: []Tuple{{ID: "ID-yn0cl4bnw0yr3vym", Basic: "open", Show: "dnd", Priority: -1}}}},
		{"chat: show only, no activity; invalid show dropped", []Presence{
			{From: juliet, Show: "chat", Priority: -1},
			{From: JID{"juliet", "example.com", "x"}, Show: "bogus", Priority: -1}},
			PIDF{Entity: "pres:juliet@example.com", Tuples: []Tuple{
				{ID: "ID-yn0cl4bnw0yr3vym", Basic: "open", Show: "chat", Priority: -1},
				{ID: "ID-x", Basic: "open", Priority: -1}}}},
		{"no presence → empty document", nil, PIDF{Entity: "pres:juliet@example.com", Tuples: []Tuple{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := d.PresenceToPIDF(tt.ps, pres)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PresenceToPIDF =\n%+v\nwant\n%+v", got, tt.want)
			}
			if _, err := got.Marshal(); err != nil {
				t.Errorf("Marshal: %v", err)
			}
		})
	}
	// A sip: entity is used as given (its AOR).
	got := d.PresenceToPIDF(nil, URI{Scheme: "sip", User: "juliet", Host: "Example.COM", Port: 5060, GR: "x"})
	if got.Entity != "sip:juliet@example.com" {
		t.Errorf("entity = %q", got.Entity)
	}
}

// The body for RFC 8048 Example 19 matches the RFC's document element for
// element once whitespace is ignored.
func TestMarshalExample19(t *testing.T) {
	d := Domains{XMPP: "x2s.example.com", SIP: "example.net"}
	ps := []Presence{{From: JID{"juliet", "example.com", "yn0cl4bnw0yr3vym"}, Show: "away", Priority: -1}}
	doc := d.PresenceToPIDF(ps, URI{Scheme: "pres", User: "juliet", Host: "example.com"})
	doc.Activities = nil // RFC 8048 shows only the <show/> extension
	b, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if a, b := canonicalXML(t, b), canonicalXML(t, []byte(rfc8048Ex19)); a != b {
		t.Errorf("Marshal =\n%s\nwant\n%s", a, b)
	}
}

// canonicalXML renders a document as namespace-qualified tokens without
// insignificant whitespace, for comparing documents with different prefixes
// and quoting.
func canonicalXML(t *testing.T, doc []byte) string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.CharsetReader = charsetReader
	var sb strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				return sb.String()
			}
			t.Fatalf("not well-formed: %v\n%s", err, doc)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			sb.WriteString("<{" + x.Name.Space + "}" + x.Name.Local)
			for _, a := range x.Attr {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
					continue
				}
				sb.WriteString(" {" + a.Name.Space + "}" + a.Name.Local + "=" + a.Value)
			}
			sb.WriteString(">")
		case xml.EndElement:
			sb.WriteString("</>")
		case xml.CharData:
			sb.WriteString(strings.TrimSpace(string(x)))
		}
	}
}

func TestMarshal(t *testing.T) {
	doc := PIDF{
		Entity: "pres:a&b@example.com",
		Tuples: []Tuple{{ID: "ID-r1", Basic: "open", Show: "dnd", Contact: "sip:a@example.com;gr=r1", Priority: 0.5,
			Notes: []Text{{"en", "In a meeting"}, {"", "x"}}},
			{ID: "ID-r2", Basic: "closed", Priority: -1},
			{ID: "ID-r3", Priority: 0.0071}},
		Activities: []string{"busy", "meeting"},
		Notes:      []Text{{"", "doc note"}},
	}
	b, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="pres:a&amp;b@example.com">
 <tuple id="ID-r1"><status><basic>open</basic><show xmlns="jabber:client">dnd</show></status><contact priority="0.5">sip:a@example.com;gr=r1</contact><note xml:lang="en">In a meeting</note><note>x</note></tuple>
 <tuple id="ID-r2"><status><basic>closed</basic></status></tuple>
 <tuple id="ID-r3"><contact priority="0.007">pres:a&amp;b@example.com</contact></tuple>
 <note>doc note</note>
 <dm:person id="p"><rpid:activities><rpid:busy/><rpid:meeting/></rpid:activities></dm:person>
</presence>
`
	if string(b) != want {
		t.Errorf("Marshal =\n%s\nwant\n%s", b, want)
	}
	back, err := ParsePIDF(b)
	if err != nil {
		t.Fatal(err)
	}
	doc.Tuples[2].Priority = 0.007
	doc.Tuples[2].Contact = doc.Entity
	if !reflect.DeepEqual(back, doc) {
		t.Errorf("round trip =\n%+v\nwant\n%+v", back, doc)
	}
	// Without activities no dm/rpid declarations.
	b, _ = PIDF{Entity: "pres:a@b"}.Marshal()
	if bytes.Contains(b, []byte("rpid")) || bytes.Contains(b, []byte("data-model")) {
		t.Errorf("unused namespaces declared: %s", b)
	}
	for _, bad := range []PIDF{
		{},
		{Entity: "pres:a@b", Tuples: []Tuple{{ID: "1abc", Basic: "open"}}},
		{Entity: "pres:a@b", Tuples: []Tuple{{ID: "", Basic: "open"}}},
		{Entity: "pres:a@b", Tuples: []Tuple{{ID: "a", Basic: "maybe"}}},
		{Entity: "pres:a@b", Activities: []string{"x/><evil"}},
	} {
		if _, err := bad.Marshal(); err == nil {
			t.Errorf("Marshal(%+v) succeeded", bad)
		}
	}
}

// Status text and addresses never escape their element (XML injection).
func TestMarshalInjection(t *testing.T) {
	evil := `</note></tuple><tuple id="x"><status><basic>open</basic></status></tuple><!-- ]]> & <![CDATA[ "' ` + "\x00\x1b\ufffe"
	d := Domains{XMPP: "gw.example", SIP: "sip.example"}
	ps := []Presence{{From: JID{"a", "example.com", "r"}, Priority: -1, Show: "away",
		Status: []Text{{evil, evil}}}}
	doc := d.PresenceToPIDF(ps, URI{Scheme: "pres", User: `a"><x`, Host: "example.com"})
	b, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePIDF(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(back.Tuples) != 1 || len(back.Tuples[0].Notes) != 1 {
		t.Fatalf("injection changed the structure:\n%s\n%+v", b, back)
	}
	n := back.Tuples[0].Notes[0].Value
	if !strings.HasPrefix(n, `</note></tuple><tuple id="x">`) || !strings.Contains(n, `]]> & <![CDATA[ "'`) {
		t.Errorf("note text = %q", n)
	}
	if strings.ContainsAny(n, "\x00\x1b") {
		t.Errorf("control characters survived: %q", n)
	}
	if back.Entity != doc.Entity {
		t.Errorf("entity %q != %q", back.Entity, doc.Entity)
	}
}

// RFC 8048 §6.3 Example 20 → Example 21, and Table 2's other rows.
func TestPIDFToPresence(t *testing.T) {
	d := Domains{XMPP: "x2s.example.com", SIP: "example.net"}
	romeo := URI{Scheme: "sip", User: "romeo", Host: "example.net"}
	juliet := JID{Local: "juliet", Domain: "example.com", Resource: "yn0cl4bnw0yr3vym"}
	from := func(res string) JID { return JID{Local: "romeo", Domain: "x2s.example.com", Resource: res} }
	parse := func(s string) PIDF {
		p, err := ParsePIDF([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		doc  PIDF
		want []Presence
	}{
		{"example 20/21", parse(rfc8048Ex20), []Presence{{From: from("dr4hcr0st3lup4c"), To: juliet, Type: "unavailable"}}},
		{"example 19 reversed: show copied", parse(rfc8048Ex19), []Presence{{From: from("yn0cl4bnw0yr3vym"), To: juliet, Show: "away"}}},
		{"Asterisk on the phone → dnd + status", parse(asteriskBusy), []Presence{{From: from(""), To: juliet, Show: "dnd", Priority: 127,
			Status: []Text{{"", "On the phone"}}}}},
		{"Kamailio minimal", parse(kamailioMinimal), []Presence{{From: from(""), To: juliet}}},
		{"RFC 3863: notes per tuple, document note as fallback, priorities", parse(rfc3863Ex1), []Presence{
			{From: from(""), To: juliet, Priority: 102, Status: []Text{{"en", "Don't Disturb Please!"}, {"fr", "Ne derangez pas, s'il vous plait"}}},
			{From: from(""), To: juliet, Priority: 127, Status: []Text{{"", "I'll be in Tokyo next week"}}},
		}},
		{"RFC 4480 away", parse(rfc4480Ex), []Presence{{From: from(""), To: juliet, Show: "away", Priority: 102,
			Status: []Text{{"en", "Don't Disturb Please!"}}}}},
		{"no tuples → unavailable", PIDF{Entity: "pres:romeo@example.net"}, []Presence{{From: from(""), To: juliet, Type: "unavailable"}}},
		{"activities: strongest wins, jabber show beats them, closed has no show",
			PIDF{Activities: []string{"away", "vacation", "meeting"}, Tuples: []Tuple{
				{ID: "ID-a", Basic: "open", Priority: -1},
				{ID: "ID-b", Basic: "open", Show: "chat", Priority: 0.5},
				{ID: "ID-c", Basic: "closed", Show: "away", Priority: 1},
				{ID: "ID-", Priority: -1},
			}}, []Presence{
				{From: from("a"), To: juliet, Show: "dnd"},
				{From: from("b"), To: juliet, Show: "chat", Priority: 64},
				{From: from("c"), To: juliet, Type: "unavailable"},
				{From: from(""), To: juliet, Show: "dnd"}, // no <basic/>: taken as open
			}},
		{"holiday → xa, unknown activities ignored",
			PIDF{Activities: []string{"working", "holiday"}, Tuples: []Tuple{{ID: "x", Basic: "open", Priority: -1}}},
			[]Presence{{From: from(""), To: juliet, Show: "xa"}}},
		{"busy → dnd", PIDF{Activities: []string{"busy"}, Tuples: []Tuple{{ID: "x", Basic: "open", Priority: -1}}},
			[]Presence{{From: from(""), To: juliet, Show: "dnd"}}},
		{"tuple id resource that is not a valid resourcepart is dropped",
			PIDF{Tuples: []Tuple{{ID: "ID-a\u0000", Basic: "open", Priority: -1}}},
			[]Presence{{From: from(""), To: juliet}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := d.PIDFToPresence(tt.doc, romeo, juliet)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PIDFToPresence =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
	// A user of a foreign SIP domain carries it in the localpart; gr is
	// not used for the resource (the tuple id is).
	got := d.PIDFToPresence(parse(kamailioMinimal), URI{Scheme: "sip", User: "bob", Host: "sip.other", GR: "g"}, juliet)
	if want := (JID{Local: `bob\40sip.other`, Domain: "x2s.example.com"}); got[0].From != want {
		t.Errorf("from = %v, want %v", got[0].From, want)
	}
}

// XMPP → PIDF → XMPP keeps what Tables 1 and 2 map.
func TestPresencePIDFRoundTrip(t *testing.T) {
	d := Domains{XMPP: "gw.example", SIP: "sip.example"}
	to := JID{Local: "bob", Domain: "xmpp.example"}
	for _, p := range []Presence{
		{From: JID{"alice", "sip.example", "desk"}, To: to},
		{From: JID{"alice", "sip.example", "desk"}, To: to, Show: "away", Priority: 5, Status: []Text{{"en", "Lunch"}, {"de", "Mittag"}}},
		{From: JID{"alice", "sip.example", "12"}, To: to, Show: "dnd", Priority: 127},
		{From: JID{"alice", "sip.example", "Gajim.X"}, To: to, Show: "xa", Status: []Text{{"", "<b>&amp;</b> ]]>"}}},
		{From: JID{"alice", "sip.example", "desk"}, To: to, Type: "unavailable", Status: []Text{{"", "bye"}}},
		{From: JID{"alice", "sip.example", ""}, To: to, Show: "chat", Priority: 1},
	} {
		doc := d.PresenceToPIDF([]Presence{p}, d.SIPFrom(p.From.Bare()))
		b, err := doc.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := ParsePIDF(b)
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		got := d.PIDFToPresence(parsed, URI{Scheme: "sip", User: "alice", Host: "sip.example"}, to)
		p.From.Domain = d.XMPP // sip:alice@S is alice@D on the way back
		if len(got) != 1 || !reflect.DeepEqual(got[0], p) {
			t.Errorf("round trip of %+v =\n%+v\n%s", p, got, b)
		}
	}
}

// FuzzParsePIDF: ParsePIDF never panics; a parsed document that Marshal
// accepts re-parses to the same document (modulo Marshal's documented
// normalisation), and the translators take anything ParsePIDF returns.
func FuzzParsePIDF(f *testing.F) {
	for _, s := range []string{rfc8048Ex19, rfc8048Ex20, rfc3863Ex1, rfc3863Ex2, rfc4480Ex, asteriskBusy, kamailioMinimal,
		`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b" xml:lang="de"><tuple id="t"><status><basic>open</basic><show xmlns="jabber:client">dnd</show></status><contact priority="0.0005"/><note>&lt;&amp;]]&gt;</note></tuple></presence>`,
	} {
		f.Add([]byte(s))
	}
	d := Domains{XMPP: "gw.example", SIP: "sip.example"}
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := ParsePIDF(b)
		if err != nil {
			if !errors.Is(err, ErrBadPIDF) {
				t.Fatalf("error %v does not wrap ErrBadPIDF", err)
			}
			return
		}
		if len(doc.Tuples) > MaxPIDFTuples {
			t.Fatalf("%d tuples", len(doc.Tuples))
		}
		ps := d.PIDFToPresence(doc, URI{Scheme: "sip", User: "a", Host: "sip.example"}, JID{Local: "b", Domain: "x.example"})
		if len(ps) == 0 || len(ps) != max(1, len(doc.Tuples)) {
			t.Fatalf("%d presences for %d tuples", len(ps), len(doc.Tuples))
		}
		out, err := doc.Marshal()
		if err != nil {
			return // ids or activity names Marshal cannot write
		}
		again, err := ParsePIDF(out)
		if err != nil {
			t.Fatalf("Marshal output does not parse: %v\n%s", err, out)
		}
		want := doc
		want.Tuples = append([]Tuple(nil), doc.Tuples...)
		for i := range want.Tuples {
			tp := &want.Tuples[i]
			if tp.Priority >= 0 {
				tp.Priority = float64(int(tp.Priority*1000+0.5)) / 1000
				if tp.Contact == "" {
					tp.Contact = doc.Entity
				}
			}
		}
		if len(want.Tuples) == 0 {
			want.Tuples = nil
		}
		if !reflect.DeepEqual(again, want) {
			t.Fatalf("round trip:\n%+v\nwant\n%+v\n%s", again, want, out)
		}
	})
}

func BenchmarkPresenceToPIDFMarshal(b *testing.B) {
	d := Domains{XMPP: "gw.example", SIP: "sip.example"}
	ps := []Presence{{
		From: JID{Local: "juliet", Domain: "example.com", Resource: "yn0cl4bnw0yr3vym"}, To: JID{Local: "romeo", Domain: "gw.example"},
		Show: "away", Priority: 5, Status: []Text{{"en", "Out to lunch & back at 2 <pm>"}},
	}}
	entity := URI{Scheme: "pres", User: "juliet", Host: "example.com"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.PresenceToPIDF(ps, entity).Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePIDF(b *testing.B) {
	for _, bc := range []struct{ name, doc string }{{"rfc8048", rfc8048Ex19}, {"asterisk", asteriskBusy}, {"rfc4480", rfc4480Ex}} {
		b.Run(bc.name, func(b *testing.B) {
			doc := []byte(bc.doc)
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if _, err := ParsePIDF(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
