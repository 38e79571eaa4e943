package xmpp

import (
	"encoding/xml"
	"io"
	"strings"
	"unicode/utf8"

	"mellium.im/xmlstream"
	"stox.dev/stox/mapping"
)

const (
	nsXML     = "http://www.w3.org/XML/1998/namespace"
	nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsPing    = "urn:xmpp:ping"
	nsDisco   = "http://jabber.org/protocol/disco#info"
	nsGateway = "jabber:iq:gateway"
	featJID   = `jid\20escaping`
)

// validXMLRune reports whether r may appear in an XML 1.0 document.
func validXMLRune(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) ||
		(r >= 0x10000 && r <= 0x10FFFF)
}

// clean removes characters that are invalid in XML 1.0 and bytes that are not
// UTF-8. It returns s itself when there is nothing to remove.
func clean(s string) string {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf {
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && w == 1) || !validXMLRune(r) {
			return stripSlow(s)
		}
		i += w
	}
	return s
}

func stripSlow(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if !(r == utf8.RuneError && w == 1) && validXMLRune(r) {
			b.WriteString(s[i : i+w])
		}
		i += w
	}
	return b.String()
}

func attr(local, v string) xml.Attr {
	return xml.Attr{Name: xml.Name{Local: local}, Value: clean(v)}
}

// textElement writes <name>text</name> (in the stream's default namespace).
func textElement(w xmlstream.TokenWriter, name xml.Name, text string) error {
	start := xml.StartElement{Name: name}
	if err := w.EncodeToken(start); err != nil {
		return err
	}
	if text != "" {
		if err := w.EncodeToken(xml.CharData(clean(text))); err != nil {
			return err
		}
	}
	return w.EncodeToken(start.End())
}

// stanzaStart builds the start element of a stanza: from (defFrom when
// from is zero), to, id, type and xml:lang, each only when set.
func stanzaStart(name string, from, to mapping.JID, id, typ, lang, defFrom string) xml.StartElement {
	attrs := make([]xml.Attr, 0, 5)
	f := defFrom
	if !from.IsZero() {
		f = from.String()
	}
	attrs = append(attrs, attr("from", f))
	if !to.IsZero() {
		attrs = append(attrs, attr("to", to.String()))
	}
	if id != "" {
		attrs = append(attrs, attr("id", id))
	}
	if typ != "" {
		attrs = append(attrs, attr("type", typ))
	}
	if lang != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Space: nsXML, Local: "lang"}, Value: clean(lang)})
	}
	return xml.StartElement{Name: xml.Name{Local: name}, Attr: attrs}
}

// encodeMessage writes m as a <message/> stanza. id is the wire id (m.ID is
// ignored); defFrom is used when m.From is zero. Attribute values and text are
// escaped by the token writer; characters invalid in XML 1.0 are stripped.
func encodeMessage(w xmlstream.TokenWriter, m *mapping.XMPPMessage, id, defFrom string) error {
	start := stanzaStart("message", m.From, m.To, id, m.Type, m.Lang, defFrom)
	if err := w.EncodeToken(start); err != nil {
		return err
	}
	if m.Subject != "" {
		if err := textElement(w, xml.Name{Local: "subject"}, m.Subject); err != nil {
			return err
		}
	}
	if m.Body != "" {
		if err := textElement(w, xml.Name{Local: "body"}, m.Body); err != nil {
			return err
		}
	}
	if m.Thread != "" {
		if err := textElement(w, xml.Name{Local: "thread"}, m.Thread); err != nil {
			return err
		}
	}
	if m.Type == "error" {
		if err := encodeError(w, m.Error); err != nil {
			return err
		}
	}
	return w.EncodeToken(start.End())
}

// encodeError writes an RFC 6120 §8.3 <error/> element for f (nil f gives
// undefined-condition).
func encodeError(w xmlstream.TokenWriter, f *mapping.Failure) error {
	cond := mapping.UndefinedCondition
	var text string
	if f != nil {
		if f.Condition != "" {
			cond = f.Condition
		}
		text = f.Text
	}
	start := xml.StartElement{Name: xml.Name{Local: "error"}, Attr: []xml.Attr{attr("type", mapping.ErrorType(cond))}}
	if err := w.EncodeToken(start); err != nil {
		return err
	}
	if err := textElement(w, xml.Name{Space: nsStanzas, Local: clean(string(cond))}, ""); err != nil {
		return err
	}
	if text != "" {
		if err := textElement(w, xml.Name{Space: nsStanzas, Local: "text"}, text); err != nil {
			return err
		}
	}
	return w.EncodeToken(start.End())
}

type wireText struct {
	Lang string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Text string `xml:",chardata"`
}

type wireAny struct {
	XMLName xml.Name
	Text    string `xml:",chardata"`
}

type wireError struct {
	Type     string    `xml:"type,attr"`
	Children []wireAny `xml:",any"`
}

type wireMessage struct {
	ID      string               `xml:"id,attr"`
	From    *string              `xml:"from,attr"`
	To      *string              `xml:"to,attr"`
	Type    string               `xml:"type,attr"`
	Lang    string               `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Subject []wireText           `xml:"subject"`
	Body    []wireText           `xml:"body"`
	Thread  string               `xml:"thread"`
	Error   *wireError           `xml:"error"`
	Ext     []mapping.JMIElement `xml:",any"` // what else it carries: JMI (calls.go)
}

// pickText chooses the text whose xml:lang matches lang (or has none), else
// the first one (RFC 6121 §5.2.3).
func pickText(ts []wireText, lang string) string {
	if len(ts) == 0 {
		return ""
	}
	for _, t := range ts {
		if t.Lang == "" || t.Lang == lang {
			return t.Text
		}
	}
	return ts[0].Text
}

// decodeError is a problem with an inbound stanza that deserves a stanza
// error reply rather than a torn-down stream.
type decodeError struct {
	Cond mapping.Condition
	Text string
}

func (e *decodeError) Error() string { return string(e.Cond) + ": " + e.Text }

// failureFromWire converts a received <error/> into a Failure.
func failureFromWire(e *wireError) *mapping.Failure {
	f := &mapping.Failure{Condition: mapping.UndefinedCondition}
	if e == nil {
		return f
	}
	found := false
	for _, c := range e.Children {
		if c.XMLName.Space != nsStanzas {
			continue
		}
		switch {
		case c.XMLName.Local == "text":
			f.Text = strings.TrimSpace(c.Text)
		case !found:
			f.Condition = mapping.Condition(c.XMLName.Local)
			found = true
			if f.Condition == mapping.Gone || f.Condition == mapping.Redirect {
				f.Address = strings.TrimSpace(c.Text)
			}
		}
	}
	return f
}

// decodeMessage decodes the <message/> element that r yields, start element
// included. The returned message is valid only when err is nil; a *decodeError
// describes a stanza-level problem (the stream itself is fine); raw holds the
// from/to/id attributes as received, for an error reply.
func decodeMessage(r xml.TokenReader) (m mapping.XMPPMessage, raw rawAddr, err error) {
	m, raw, _, err = decodeMessageExt(r)
	return m, raw, err
}

// decodeMessageExt is decodeMessage that also returns the children the
// message model has no field for.
func decodeMessageExt(r xml.TokenReader) (m mapping.XMPPMessage, raw rawAddr, ext []mapping.JMIElement, err error) {
	var w wireMessage
	if err := xml.NewTokenDecoder(r).Decode(&w); err != nil {
		return m, raw, nil, err
	}
	m, raw, err = messageFromWire(&w)
	return m, raw, w.Ext, err
}

func messageFromWire(w *wireMessage) (m mapping.XMPPMessage, raw rawAddr, err error) {
	raw.ID = w.ID
	if w.From != nil {
		raw.From, raw.HasFrom = *w.From, true
	}
	if w.To != nil {
		raw.To, raw.HasTo = *w.To, true
	}
	m.ID = w.ID
	m.Type = w.Type
	m.Lang = w.Lang
	m.Body = pickText(w.Body, w.Lang)
	m.Subject = pickText(w.Subject, w.Lang)
	m.Thread = w.Thread
	if w.Type == "error" {
		m.Error = failureFromWire(w.Error)
	}
	if !raw.HasFrom || raw.From == "" || !raw.HasTo || raw.To == "" {
		return m, raw, &decodeError{Cond: mapping.BadRequest, Text: "missing from or to"}
	}
	if m.From, err = mapping.ParseJID(raw.From); err != nil {
		return m, raw, &decodeError{Cond: mapping.JIDMalformed, Text: "malformed from"}
	}
	if m.To, err = mapping.ParseJID(raw.To); err != nil {
		return m, raw, &decodeError{Cond: mapping.JIDMalformed, Text: "malformed to"}
	}
	if m.Error != nil {
		// The bounce comes from the address the failed stanza was sent to.
		m.Error.Status = mapping.StatusForCondition(m.Error.Condition, m.From.Resource != "", m.Error.Address != "")
	}
	return m, raw, nil
}

// rawAddr holds a stanza's addressing attributes as received.
type rawAddr struct {
	ID, From, To   string
	HasFrom, HasTo bool
}

// sliceReader replays a fixed list of tokens.
type sliceReader struct {
	toks []xml.Token
}

func (r *sliceReader) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		return nil, io.EOF
	}
	t := r.toks[0]
	r.toks = r.toks[1:]
	return t, nil
}

func tokens(toks ...xml.Token) xml.TokenReader { return &sliceReader{toks: toks} }
