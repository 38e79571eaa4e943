package mapping

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// PIDF namespaces (RFC 3863 §4, RFC 4479 §9, RFC 4480 §2, RFC 8048 §6.2).
const (
	NSPIDF      = "urn:ietf:params:xml:ns:pidf"
	NSDataModel = "urn:ietf:params:xml:ns:pidf:data-model"
	NSRPID      = "urn:ietf:params:xml:ns:pidf:rpid"
	NSJabber    = "jabber:client"
	nsXMLLang   = "http://www.w3.org/XML/1998/namespace"
)

// PIDFContentType is the media type of a PIDF document (RFC 3863 §3).
const PIDFContentType = "application/pidf+xml"

// Limits on documents ParsePIDF accepts. A NOTIFY body is attacker
// controlled and every tuple becomes one XMPP stanza, so the parser bounds
// size, nesting and fan-out rather than trusting the peer.
const (
	MaxPIDFSize   = 64 << 10 // bytes
	MaxPIDFDepth  = 32       // element nesting
	MaxPIDFTuples = 128
)

// ErrBadPIDF is wrapped by every error ParsePIDF returns: the body is not a
// PIDF document stox can use (a notifier should answer 400, RFC 3261 §21.4.1).
var ErrBadPIDF = errors.New("mapping: bad PIDF document")

func pidfError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadPIDF}, args...)...)
}

// ParsePIDF parses a PIDF document (RFC 3863) with the extensions RFC 8048
// §6 and deployed gateways use:
//   - <show xmlns='jabber:client'/> anywhere inside a tuple (RFC 8048 §6.2
//     note 7 puts it inside <status/>) becomes Tuple.Show;
//   - the children of any <activities/> element in the RPID namespace
//     (RFC 4480 §3.2, normally under <dm:person/>) or in a legacy RPID
//     namespace (Asterisk's "…:pidf:rpid:rpid-person", anywhere in the
//     document) become PIDF.Activities by local name ("away", "busy",
//     "on-the-phone", …);
//   - <note/> children of <presence/> and <dm:note/> children of
//     <dm:person/> become PIDF.Notes; tuple notes Tuple.Notes. Each note
//     carries its (inherited) xml:lang.
//
// Tuple.Priority is the <contact/> priority when it is a qvalue in [0, 1]
// (RFC 3863 §4.1.5), otherwise -1. Unknown elements and attributes are
// skipped (RFC 3863 §5: must-ignore extensibility). Documents over
// MaxPIDFSize, nested deeper than MaxPIDFDepth or with more than
// MaxPIDFTuples tuples, documents that are not well-formed and documents
// whose root is not {urn:ietf:params:xml:ns:pidf}presence are rejected with
// an error wrapping ErrBadPIDF. UTF-8, US-ASCII and ISO-8859-1 encodings are
// read (Asterisk declares ISO-8859-1).
func ParsePIDF(b []byte) (PIDF, error) {
	if len(b) > MaxPIDFSize {
		return PIDF{}, pidfError("document larger than %d bytes", MaxPIDFSize)
	}
	p := pidfParser{d: xml.NewDecoder(bytes.NewReader(b))}
	p.d.CharsetReader = charsetReader
	return p.parse()
}

// Element roles the parser tracks; everything else is roleOther.
const (
	roleOther uint8 = iota
	rolePresence
	roleTuple
	roleStatus
	roleBasic
	roleShow
	roleContact
	roleNote // a note whose text is kept
	rolePerson
	roleActivities
)

type pidfFrame struct {
	role uint8
	lang string
}

type pidfParser struct {
	d     *xml.Decoder
	stack [MaxPIDFDepth + 1]pidfFrame
	depth int
	text  []byte // character data of the innermost kept element
	doc   PIDF
	tuple *Tuple // the tuple being parsed, if any
	note  *[]Text
}

func (p *pidfParser) parse() (PIDF, error) {
	for {
		tok, err := p.d.Token()
		if err != nil {
			if err == io.EOF {
				if p.depth == 0 {
					return PIDF{}, pidfError("no root element")
				}
				err = io.ErrUnexpectedEOF
			}
			return PIDF{}, pidfError("%v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := p.start(&t); err != nil {
				return PIDF{}, err
			}
		case xml.EndElement:
			p.end()
			if p.depth == 0 {
				return p.doc, nil // ignore anything after the root
			}
		case xml.CharData:
			if p.keepsText() {
				p.text = append(p.text, t...)
			}
		}
	}
}

func (p *pidfParser) keepsText() bool {
	switch p.stack[p.depth].role {
	case roleBasic, roleShow, roleContact, roleNote:
		return true
	}
	return false
}

func (p *pidfParser) start(t *xml.StartElement) error {
	if p.depth == MaxPIDFDepth {
		return pidfError("elements nested deeper than %d", MaxPIDFDepth)
	}
	parent := p.stack[p.depth]
	lang := parent.lang
	for _, a := range t.Attr {
		if a.Name.Space == nsXMLLang && a.Name.Local == "lang" {
			lang = a.Value
		}
	}
	role := roleOther
	n := t.Name
	switch {
	case p.depth == 0:
		if n.Space != NSPIDF || n.Local != "presence" {
			return pidfError("root element is {%s}%s, not {%s}presence", n.Space, n.Local, NSPIDF)
		}
		role = rolePresence
		p.doc.Entity = attrOf(t, "entity")
	case parent.role == rolePresence && n.Space == NSPIDF && n.Local == "tuple":
		if len(p.doc.Tuples) == MaxPIDFTuples {
			return pidfError("more than %d tuples", MaxPIDFTuples)
		}
		role = roleTuple
		p.doc.Tuples = append(p.doc.Tuples, Tuple{ID: attrOf(t, "id"), Priority: -1})
		p.tuple = &p.doc.Tuples[len(p.doc.Tuples)-1]
	case parent.role == roleTuple && n.Space == NSPIDF && n.Local == "status":
		role = roleStatus
	case parent.role == roleStatus && n.Space == NSPIDF && n.Local == "basic":
		role = roleBasic
	case parent.role == roleTuple && n.Space == NSPIDF && n.Local == "contact":
		role = roleContact
		p.tuple.Priority = parseQValue(attrOf(t, "priority"))
	case p.tuple != nil && n.Space == NSJabber && n.Local == "show":
		role = roleShow
	case parent.role == roleTuple && n.Space == NSPIDF && n.Local == "note":
		role, p.note = roleNote, &p.tuple.Notes
	case parent.role == rolePresence && n.Space == NSPIDF && n.Local == "note",
		parent.role == rolePerson && n.Space == NSDataModel && n.Local == "note":
		role, p.note = roleNote, &p.doc.Notes
	case parent.role == rolePresence && n.Space == NSDataModel && n.Local == "person":
		role = rolePerson
	case n.Local == "activities" && isRPIDNamespace(n.Space):
		role = roleActivities
	case parent.role == roleActivities:
		// RFC 4480 §3.2: each child is one activity; <note/> describes them
		// and <other/> carries free text that has no XMPP equivalent.
		if n.Local != "note" && n.Local != "other" && n.Local != "unknown" && len(p.doc.Activities) < 16 {
			p.doc.Activities = appendUnique(p.doc.Activities, n.Local)
		}
	}
	p.depth++
	p.stack[p.depth] = pidfFrame{role: role, lang: lang}
	if role >= roleBasic && role <= roleNote {
		p.text = p.text[:0]
	}
	return nil
}

func (p *pidfParser) end() {
	f := p.stack[p.depth]
	p.depth--
	switch f.role {
	case roleTuple:
		p.tuple = nil
	case roleBasic:
		switch v := strings.ToLower(strings.TrimSpace(string(p.text))); v {
		case "open", "closed":
			p.tuple.Basic = v
		}
	case roleShow:
		p.tuple.Show = validShow(strings.TrimSpace(string(p.text)))
	case roleContact:
		p.tuple.Contact = strings.TrimSpace(string(p.text))
	case roleNote:
		if v := strings.TrimSpace(string(p.text)); v != "" && len(*p.note) < 16 {
			*p.note = append(*p.note, Text{Lang: f.lang, Value: v})
		}
	}
}

func attrOf(t *xml.StartElement, local string) string {
	for _, a := range t.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// isRPIDNamespace accepts RFC 4480's namespace and the draft-era ones
// still sent by Asterisk and old SIP phones
// (urn:ietf:params:xml:ns:pidf:rpid:rpid-person, …:status:rpid-status).
func isRPIDNamespace(ns string) bool {
	return ns == NSRPID || strings.HasPrefix(ns, NSRPID+":")
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// parseQValue reads a contact priority (RFC 3863 §4.1.5: qvalue, 0 to 1
// with at most three decimals); anything else is -1 (absent).
func parseQValue(s string) float64 {
	s = strings.TrimSpace(s)
	if s == "" {
		return -1
	}
	q, err := strconv.ParseFloat(s, 64)
	if err != nil || !(q >= 0 && q <= 1) {
		return -1
	}
	return q
}

// validShow returns s if it is one of RFC 6121 §4.7.2.1's show values.
func validShow(s string) string {
	switch s {
	case "away", "chat", "dnd", "xa":
		return s
	}
	return ""
}

// charsetReader lets the decoder read the encodings SIP presence agents
// declare besides UTF-8: US-ASCII and ISO-8859-1 (Asterisk).
func charsetReader(charset string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "us-ascii", "ascii", "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1":
		b, err := io.ReadAll(io.LimitReader(in, MaxPIDFSize+1))
		if err != nil {
			return nil, err
		}
		out := make([]byte, 0, len(b)+len(b)/8)
		for _, c := range b {
			out = utf8.AppendRune(out, rune(c)) // ISO-8859-1 is the first 256 code points
		}
		return bytes.NewReader(out), nil
	}
	return nil, fmt.Errorf("unsupported charset %q", charset)
}

// Marshal renders p as a PIDF document (RFC 3863 §4) in UTF-8:
//
//	<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="…">
//	  <tuple id="…"><status><basic>open</basic><show xmlns="jabber:client">away</show></status>
//	    <contact priority="0.5">…</contact><note xml:lang="en">…</note></tuple>
//	  <note>…</note>
//	  <dm:person id="p"><rpid:activities><rpid:away/></rpid:activities></dm:person>
//	</presence>
//
// Element order follows the RFC 3863 §4.1 schema (status, extensions,
// contact, note in a tuple; tuples, notes, then foreign elements in
// presence). The dm and rpid prefixes are declared only when activities are
// present. <show/> sits inside <status/> as RFC 8048 §6.2 note 7 shows.
// <contact/> is written when the tuple has a contact or a priority in
// [0, 1]; a priority without a contact uses the entity as contact URI.
// All text and attribute values are escaped with encoding/xml's EscapeText;
// characters XML cannot carry become U+FFFD. Marshal fails only for a
// tuple id that is not an xs:ID, a Basic other than "open"/"closed"/"",
// an empty entity, or an activity name that is not an XML name.
func (p PIDF) Marshal() ([]byte, error) {
	if p.Entity == "" {
		return nil, errors.New("mapping: PIDF without entity")
	}
	for i := range p.Tuples {
		t := &p.Tuples[i]
		if !isNCName(t.ID) {
			return nil, fmt.Errorf("mapping: PIDF tuple id %q is not an xs:ID", t.ID)
		}
		if t.Basic != "" && t.Basic != "open" && t.Basic != "closed" {
			return nil, fmt.Errorf("mapping: PIDF basic %q", t.Basic)
		}
	}
	for _, a := range p.Activities {
		if !isNCName(a) {
			return nil, fmt.Errorf("mapping: RPID activity %q is not an XML name", a)
		}
	}
	b := bytes.NewBuffer(make([]byte, 0, 256+192*len(p.Tuples)))
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<presence xmlns="` + NSPIDF + `"`)
	if len(p.Activities) > 0 {
		b.WriteString(` xmlns:dm="` + NSDataModel + `" xmlns:rpid="` + NSRPID + `"`)
	}
	b.WriteString(` entity="`)
	escape(b, p.Entity)
	b.WriteString("\">\n")
	for i := range p.Tuples {
		t := &p.Tuples[i]
		b.WriteString(` <tuple id="`)
		b.WriteString(t.ID) // an NCName needs no escaping
		b.WriteString(`">`)
		if t.Basic != "" || t.Show != "" {
			b.WriteString(`<status>`)
			if t.Basic != "" {
				b.WriteString(`<basic>` + t.Basic + `</basic>`)
			}
			if t.Show != "" {
				b.WriteString(`<show xmlns="` + NSJabber + `">`)
				escape(b, t.Show)
				b.WriteString(`</show>`)
			}
			b.WriteString(`</status>`)
		}
		q := math.Round(t.Priority*1000) / 1000
		hasQ := q >= 0 && q <= 1
		if t.Contact != "" || hasQ {
			b.WriteString(`<contact`)
			if hasQ {
				b.WriteString(` priority="`)
				var num [24]byte
				b.Write(strconv.AppendFloat(num[:0], q, 'f', -1, 64))
				b.WriteByte('"')
			}
			b.WriteByte('>')
			if t.Contact != "" {
				escape(b, t.Contact)
			} else {
				escape(b, p.Entity)
			}
			b.WriteString(`</contact>`)
		}
		writeNotes(b, "note", t.Notes)
		b.WriteString("</tuple>\n")
	}
	if len(p.Notes) > 0 {
		b.WriteByte(' ')
		writeNotes(b, "note", p.Notes)
		b.WriteByte('\n')
	}
	if len(p.Activities) > 0 {
		// RFC 4479 §3.4: the person id is an xs:ID; one person per document.
		b.WriteString(` <dm:person id="p"><rpid:activities>`)
		for _, a := range p.Activities {
			b.WriteString(`<rpid:` + a + `/>`)
		}
		b.WriteString("</rpid:activities></dm:person>\n")
	}
	b.WriteString("</presence>\n")
	return b.Bytes(), nil
}

func writeNotes(b *bytes.Buffer, name string, notes []Text) {
	for _, n := range notes {
		b.WriteString(`<` + name)
		if n.Lang != "" {
			b.WriteString(` xml:lang="`)
			escape(b, n.Lang)
			b.WriteByte('"')
		}
		b.WriteByte('>')
		escape(b, n.Value)
		b.WriteString(`</` + name + `>`)
	}
}

// escape writes s with encoding/xml's escaping, which covers < > & ' " and
// the whitespace characters an attribute would normalise away, and turns
// characters XML 1.0 cannot carry into U+FFFD.
func escape(b *bytes.Buffer, s string) {
	_ = xml.EscapeText(b, []byte(s)) // bytes.Buffer writes cannot fail
}

// isNCName reports whether s is an XML non-colonised name (Namespaces in
// XML §3, names per XML 1.0 fifth edition §2.3), the lexical space of
// xs:ID.
func isNCName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == utf8.RuneError {
			return false
		}
		if !isNameStartChar(r) && (i == 0 || !isNameChar(r)) {
			return false
		}
	}
	return true
}

func isNameStartChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
		return true
	case r < 0xC0:
		return false
	}
	return r <= 0xD6 || r >= 0xD8 && r <= 0xF6 || r >= 0xF8 && r <= 0x2FF ||
		r >= 0x370 && r <= 0x37D || r >= 0x37F && r <= 0x1FFF || r >= 0x200C && r <= 0x200D ||
		r >= 0x2070 && r <= 0x218F || r >= 0x2C00 && r <= 0x2FEF || r >= 0x3001 && r <= 0xD7FF ||
		r >= 0xF900 && r <= 0xFDCF || r >= 0xFDF0 && r <= 0xFFFD || r >= 0x10000 && r <= 0xEFFFF
}

func isNameChar(r rune) bool {
	return r >= '0' && r <= '9' || r == '-' || r == '.' || r == 0xB7 ||
		r >= 0x300 && r <= 0x36F || r >= 0x203F && r <= 0x2040 || isNameStartChar(r)
}

// tupleIDPrefix is RFC 8048 §6.2 note 2's RECOMMENDED prefix: a resourcepart
// may start with a digit, an xs:ID may not.
const tupleIDPrefix = "ID-"

// TupleID returns the PIDF tuple id for an XMPP resource: "ID-" + resource
// (RFC 8048 §6.2 note 2) when that is an xs:ID, and otherwise a stable
// "H-" + 24 hex digits of SHA-256(resource), which PIDFToPresence does not
// map back to a resource. The empty resource gives "ID-".
func TupleID(resource string) string {
	if isNCNameTail(resource) {
		return tupleIDPrefix + resource
	}
	sum := sha256.Sum256([]byte(resource))
	return "H-" + hex.EncodeToString(sum[:12])
}

// isNCNameTail reports whether "ID-"+s is an NCName.
func isNCNameTail(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !isNameChar(r) {
			return false
		}
	}
	return true
}

// PriorityToPIDF maps an XMPP <priority/> to a PIDF contact priority
// (RFC 8048 §6.2 note 6): negative values MUST NOT be mapped (-1: omit),
// 0 → 0, 127 → 1, and p in between → ⌊1000·p/127⌋/1000, which gives the
// RFC's example values (1 → 0.007, 2 → 0.015, …, 126 → 0.992), keeps three
// decimals and is strictly increasing, hence unique (the step 1000/127 > 1).
// Values above 127 are treated as 127.
func PriorityToPIDF(p int) float64 {
	switch {
	case p < 0:
		return -1
	case p >= 127:
		return 1
	}
	return math.Floor(float64(p)*1000/127) / 1000
}

// PriorityFromPIDF is the inverse scale (RFC 8048 §6.3 note 2):
// round(127·q). PriorityFromPIDF(PriorityToPIDF(p)) == p for 0 ≤ p ≤ 127,
// because the truncation loses less than 0.127 of a step. A missing or
// invalid priority (q < 0, q > 1, NaN) is XMPP's default 0.
func PriorityFromPIDF(q float64) int {
	if !(q >= 0 && q <= 1) {
		return 0
	}
	return int(math.Round(q * 127))
}

// showRank orders show values from most to least available, for the one
// person-level activity a multi-resource document carries (RFC 8048 §6.2:
// a SIP UA typically renders the "most available" resource).
func showRank(show string) int {
	switch show {
	case "chat":
		return 0
	case "":
		return 1
	case "away":
		return 2
	case "xa":
		return 3
	}
	return 4 // dnd
}

// showActivity is the show → RPID activity mapping of docs/interworking.md.
func showActivity(show string) string {
	switch show {
	case "away", "xa":
		return "away"
	case "dnd":
		return "busy"
	}
	return "" // chat and plain available: basic open only
}

// PresenceToPIDF builds the PIDF body of the NOTIFY that carries an XMPP
// user's presence to a SIP watcher (RFC 8048 §6.2, Table 1). ps holds the
// latest presence of each of the user's resources; entity is the
// presentity as the watcher subscribed to it (pres: or sip:) and is written
// as its AOR.
//
//   - Only available and unavailable presence is mapped (note 1); other
//     types are skipped.
//   - One tuple per resource, id TupleID(resource) (note 2).
//   - No type → <basic>open</basic>, unavailable → closed (note 4, MUST).
//   - <show/> → <show xmlns='jabber:client'/> inside <status/> (note 7,
//     RECOMMENDED) and, for the most available open resource, the RPID
//     activity of docs/interworking.md (away, xa → away; dnd → busy; chat →
//     none), "both the <show/> element and the custom extension" (note 7).
//   - <status/> → one tuple <note/> per xml:lang (Table 1).
//   - <priority/> → <contact priority/> via PriorityToPIDF, omitted when
//     negative (note 6) and for closed tuples; the contact URI is the
//     resource's SIP form, sip:user@domain;gr=resource (RFC 7247 §6.5).
//   - id and xml:lang are not in the body (note 3; xml:lang is the NOTIFY's
//     Content-Language).
func (d Domains) PresenceToPIDF(ps []Presence, entity URI) PIDF {
	doc := PIDF{Entity: entity.AOR(), Tuples: make([]Tuple, 0, len(ps))}
	best := -1
	for i := range ps {
		p := &ps[i]
		if p.Type != "" && p.Type != "unavailable" {
			continue
		}
		t := Tuple{ID: TupleID(p.From.Resource), Basic: "closed", Priority: -1}
		if p.Type == "" {
			t.Basic = "open"
			t.Show = validShow(p.Show)
			if t.Priority = PriorityToPIDF(p.Priority); t.Priority >= 0 {
				t.Contact = d.SIPFrom(p.From).String()
			}
			if best < 0 || showRank(t.Show) < showRank(ps[best].Show) {
				best = i
			}
		}
		for _, s := range p.Status {
			if s.Value != "" {
				t.Notes = append(t.Notes, s)
			}
		}
		doc.Tuples = append(doc.Tuples, t)
	}
	if best >= 0 {
		if a := showActivity(validShow(ps[best].Show)); a != "" {
			doc.Activities = []string{a}
		}
	}
	return doc
}

// activityShow maps an RPID activity (RFC 4480 §3.2) to XMPP show,
// following docs/interworking.md (busy, on-the-phone, meeting → dnd; away →
// away; vacation, holiday → xa) and extending it in the same spirit to the
// other RFC 4480 activities that clearly mean "not now" (dnd), "not for a
// long while" (xa) or "stepped out" (away). Unlisted activities (working,
// playing, tv, …) leave show unset. The lower the rank, the stronger.
func activityShow(a string) (show string, rank int) {
	switch a {
	case "busy", "on-the-phone", "meeting", "appointment", "presentation", "performance":
		return "dnd", 0
	case "vacation", "holiday", "permanent-absence", "sleeping":
		return "xa", 1
	case "away", "meal", "breakfast", "lunch", "dinner", "in-transit", "travel", "shopping":
		return "away", 2
	}
	return "", 3
}

// PIDFToPresence translates the PIDF body of a NOTIFY from a SIP presentity
// into XMPP presence stanzas for the watcher to (RFC 8048 §6.3, Table 2),
// one per tuple, from d.XMPPFrom(from):
//
//   - The resource is the tuple id without its "ID-" prefix (RFC 8048 §6.2
//     note 2, reversed); a tuple id without the prefix gives no resource.
//   - basic open → no type; closed → type unavailable (note 1, MUST). A
//     tuple without <basic/> is taken as open.
//   - show: the tuple's <show xmlns='jabber:client'/> when valid (note 3),
//     else the strongest RPID activity (busy/on-the-phone/meeting → dnd,
//     vacation/holiday → xa, away → away; activityShow); only for open
//     tuples.
//   - <note/>s → <status/>s with their xml:lang; a tuple without notes gets
//     the document's (Asterisk puts "On the phone" there).
//   - contact priority → PriorityFromPIDF; absent → 0.
//
// A document without tuples means the presentity has no reachable device:
// one unavailable presence from the bare address. Lang is left to the
// caller (Content-Language, Table 2).
func (d Domains) PIDFToPresence(doc PIDF, from URI, to JID) []Presence {
	base := d.XMPPFrom(from)
	base.Resource = ""
	if len(doc.Tuples) == 0 {
		return []Presence{{From: base, To: to, Type: "unavailable", Status: doc.Notes}}
	}
	actShow, rank := "", 3
	for _, a := range doc.Activities {
		if s, r := activityShow(a); r < rank {
			actShow, rank = s, r
		}
	}
	out := make([]Presence, 0, len(doc.Tuples))
	for i := range doc.Tuples {
		t := &doc.Tuples[i]
		p := Presence{From: base, To: to}
		if res, ok := strings.CutPrefix(t.ID, tupleIDPrefix); ok && res != "" {
			p.From.Resource = res
			if validateJID(p.From) != nil {
				p.From.Resource = ""
			}
		}
		if t.Basic == "closed" {
			p.Type = "unavailable"
		} else {
			p.Show = validShow(t.Show)
			if p.Show == "" {
				p.Show = actShow
			}
			p.Priority = PriorityFromPIDF(t.Priority)
		}
		p.Status = t.Notes
		if len(p.Status) == 0 {
			p.Status = doc.Notes
		}
		out = append(out, p)
	}
	return out
}
