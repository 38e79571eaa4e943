package xmpp

import (
	"encoding/xml"
	"io"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"mellium.im/xmlstream"
	"stox.dev/stox/mapping"
)

// SendPresence queues p for the XMPP server without blocking, on the same
// bounded queue and writer as Send (so presence and messages stay in
// order). It returns ErrLinkDown when no session is established and
// ErrQueueFull when the queue is full; there is no acknowledgement. A zero
// p.From is sent as the component domain; an empty p.ID gets a generated
// id.
//
// Once calls are served, presence from a SIP contact's bare JID is sent
// from its full JID with Config.ContactResource, and available presence
// from a contact carries XEP-0115 caps (calls.go).
func (c *Component) SendPresence(p mapping.Presence) error {
	caps := c.contactPresence(&p)
	return c.enqueue(&outItem{m: mapping.XMPPMessage{ID: p.ID}, p: &p, caps: caps})
}

// presenceTypes are the values of RFC 6121 §4.7.1 plus error (RFC 6120 §8.3).
func validPresenceType(t string) bool {
	switch t {
	case "", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error":
		return true
	}
	return false
}

type wirePresence struct {
	ID       string     `xml:"id,attr"`
	From     *string    `xml:"from,attr"`
	To       *string    `xml:"to,attr"`
	Type     string     `xml:"type,attr"`
	Lang     string     `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Show     []string   `xml:"show"`
	Status   []wireText `xml:"status"`
	Priority []string   `xml:"priority"`
	Error    *wireError `xml:"error"`
}

// maxStatuses bounds the <status/> children kept from one stanza.
const maxStatuses = 16

// decodePresence decodes the <presence/> element r yields (start element
// included), like decodeMessage: a *decodeError is a stanza-level problem
// that deserves an error reply; raw holds the addressing as received.
//
// Per RFC 6121 §4.7.2 a <show/> outside away/chat/dnd/xa, and a
// <priority/> that is not an integer, are ignored rather than bounced (a
// peer's presence must not fail on a cosmetic child); a priority outside
// -128..127 is clamped. Only the first <show/> and <priority/> count.
// Statuses keep their own xml:lang ("" when they inherit the stanza's).
func decodePresence(r xml.TokenReader, domain string, froms *jidCache) (p mapping.Presence, raw rawAddr, err error) {
	start, err := firstStart(r)
	if err != nil {
		return p, raw, err
	}
	return decodePresenceAt(start, r, domain, froms)
}

// decodePresenceAt is decodePresence for the element that start opened,
// r yielding the rest of it (its end element included).
func decodePresenceAt(start xml.StartElement, r xml.TokenReader, domain string, froms *jidCache) (p mapping.Presence, raw rawAddr, err error) {
	w, err := readWirePresence(start, r)
	if err != nil {
		return p, raw, err
	}
	raw.ID = w.ID
	if w.From != nil {
		raw.From, raw.HasFrom = *w.From, true
	}
	if w.To != nil {
		raw.To, raw.HasTo = *w.To, true
	}
	p.ID, p.Type, p.Lang = w.ID, w.Type, w.Lang
	if len(w.Show) > 0 {
		switch s := strings.TrimSpace(w.Show[0]); s {
		case "away", "chat", "dnd", "xa":
			p.Show = s
		}
	}
	for _, s := range w.Status {
		if len(p.Status) == maxStatuses {
			break
		}
		p.Status = append(p.Status, mapping.Text{Lang: s.Lang, Value: s.Text})
	}
	if len(w.Priority) > 0 {
		if n, err := strconv.ParseInt(strings.TrimSpace(w.Priority[0]), 10, 64); err == nil {
			p.Priority = int(min(max(n, -128), 127))
		}
	}
	if w.Type == "error" {
		p.Error = failureFromWire(w.Error)
	}
	if !validPresenceType(w.Type) {
		return p, raw, &decodeError{Cond: mapping.BadRequest, Text: "unknown presence type"}
	}
	if !raw.HasFrom || raw.From == "" || !raw.HasTo || raw.To == "" {
		return p, raw, &decodeError{Cond: mapping.BadRequest, Text: "missing from or to"}
	}
	if p.From, err = froms.parse(raw.From); err != nil {
		return p, raw, &decodeError{Cond: mapping.JIDMalformed, Text: "malformed from"}
	}
	if p.To, err = mapping.ParseJID(raw.To); err != nil {
		return p, raw, &decodeError{Cond: mapping.JIDMalformed, Text: "malformed to"}
	}
	if domain != "" && !strings.EqualFold(p.To.Domain, domain) {
		return p, raw, &decodeError{Cond: mapping.ItemNotFound, Text: "not an address of " + domain}
	}
	if p.Error != nil {
		p.Error.Status = mapping.StatusForCondition(p.Error.Condition, p.From.Resource != "", p.Error.Address != "")
	}
	return p, raw, nil
}

// jidCache remembers the last JID it parsed. A presence change reaches
// the component once per watcher at D (RFC 8048 §6.2), every copy from the
// same full JID: the from of the next stanza is most often the last one.
// A nil *jidCache parses every time.
type jidCache struct {
	s string
	j mapping.JID
}

func (c *jidCache) parse(s string) (mapping.JID, error) {
	if c != nil && c.s != "" && c.s == s {
		return c.j, nil
	}
	j, err := mapping.ParseJID(s)
	if err == nil && c != nil {
		c.s, c.j = s, j
	}
	return j, err
}

// readWirePresence fills a wirePresence from the element start opened (r
// yields the rest of it), as
// xml.Decoder.Decode would (attributes and children matched by local name
// in any namespace, xml:lang by its namespace; a child's text is its own
// character data, nested elements skipped; the last of repeated attributes
// wins; unknown children skipped), without reflection: one stanza arrives
// per watcher at D for every presence change (RFC 8048 §6.2), and Decode
// was a fifth of reading it (docs/perf.md, presence fan-out).
func readWirePresence(start xml.StartElement, r xml.TokenReader) (wirePresence, error) {
	var w wirePresence
	for _, a := range start.Attr {
		switch {
		case isXMLLang(a.Name):
			w.Lang = a.Value
		case a.Name.Local == "id":
			w.ID = a.Value
		case a.Name.Local == "from":
			v := a.Value
			w.From = &v
		case a.Name.Local == "to":
			v := a.Value
			w.To = &v
		case a.Name.Local == "type":
			w.Type = a.Value
		}
	}
	for {
		tok, err := r.Token()
		if err != nil {
			return w, eofIsUnexpected(err)
		}
		var child xml.StartElement
		switch t := tok.(type) {
		case xml.EndElement:
			return w, nil
		case xml.StartElement:
			child = t
		default:
			continue
		}
		switch child.Name.Local {
		case "show":
			text, err := ownText(r)
			if err != nil {
				return w, err
			}
			w.Show = append(w.Show, text)
		case "priority":
			text, err := ownText(r)
			if err != nil {
				return w, err
			}
			w.Priority = append(w.Priority, text)
		case "status":
			st := wireText{}
			for _, a := range child.Attr {
				if isXMLLang(a.Name) {
					st.Lang = a.Value
				}
			}
			if st.Text, err = ownText(r); err != nil {
				return w, err
			}
			w.Status = append(w.Status, st)
		case "error":
			if w.Error == nil {
				w.Error = &wireError{}
			}
			if err := readWireError(r, child, w.Error); err != nil {
				return w, err
			}
		default:
			if err := skipElement(r); err != nil {
				return w, err
			}
		}
	}
}

// firstStart skips to the first start element r yields.
func firstStart(r xml.TokenReader) (xml.StartElement, error) {
	for {
		tok, err := r.Token()
		if err != nil {
			return xml.StartElement{}, eofIsUnexpected(err)
		}
		if st, ok := tok.(xml.StartElement); ok {
			return st, nil
		}
	}
}

// readWireError adds the <error/> element that start opened to e (type
// attribute, and every child with its own text).
func readWireError(r xml.TokenReader, start xml.StartElement, e *wireError) error {
	for _, a := range start.Attr {
		if a.Name.Local == "type" {
			e.Type = a.Value
		}
	}
	for {
		tok, err := r.Token()
		if err != nil {
			return eofIsUnexpected(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			text, err := ownText(r)
			if err != nil {
				return err
			}
			e.Children = append(e.Children, wireAny{XMLName: t.Name, Text: text})
		}
	}
}

// isXMLLang reports whether n is xml:lang (the prefix bound to its
// namespace, or not yet translated).
func isXMLLang(n xml.Name) bool {
	return n.Local == "lang" && (n.Space == nsXML || n.Space == "xml")
}

// ownText reads up to the end of the element just opened and returns its
// own character data; nested elements are skipped.
func ownText(r xml.TokenReader) (string, error) {
	var text []byte
	for {
		tok, err := r.Token()
		if err != nil {
			return "", eofIsUnexpected(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			text = append(text, t...)
		case xml.StartElement:
			if err := skipElement(r); err != nil {
				return "", err
			}
		case xml.EndElement:
			return string(text), nil
		}
	}
}

// skipElement reads up to the end of the element just opened.
func skipElement(r xml.TokenReader) error {
	for depth := 1; depth > 0; {
		tok, err := r.Token()
		if err != nil {
			return eofIsUnexpected(err)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return nil
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// encodePresence writes p as a <presence/> stanza: from (defFrom when
// p.From is zero), to, id, type, xml:lang; then show, status (each with its
// xml:lang), priority (when not 0, RFC 6121 §4.7.2.3 default) and, for type
// error, the <error/> element. Text is escaped by the token writer;
// characters XML 1.0 cannot carry are stripped.
func encodePresence(w xmlstream.TokenWriter, p *mapping.Presence, id, defFrom string) error {
	return encodePresenceCaps(w, p, id, defFrom, "")
}

// encodePresenceCaps is encodePresence with a XEP-0115 <c/> element of
// verification string caps after the other children ("" for none).
func encodePresenceCaps(w xmlstream.TokenWriter, p *mapping.Presence, id, defFrom, caps string) error {
	start := stanzaStart("presence", p.From, p.To, id, p.Type, p.Lang, defFrom)
	if err := w.EncodeToken(start); err != nil {
		return err
	}
	if p.Show != "" {
		if err := textElement(w, xml.Name{Local: "show"}, p.Show); err != nil {
			return err
		}
	}
	for _, s := range p.Status {
		st := xml.StartElement{Name: xml.Name{Local: "status"}}
		if s.Lang != "" {
			st.Attr = []xml.Attr{{Name: xml.Name{Space: nsXML, Local: "lang"}, Value: clean(s.Lang)}}
		}
		if err := w.EncodeToken(st); err != nil {
			return err
		}
		if s.Value != "" {
			if err := w.EncodeToken(xml.CharData(clean(s.Value))); err != nil {
				return err
			}
		}
		if err := w.EncodeToken(st.End()); err != nil {
			return err
		}
	}
	if p.Priority != 0 {
		if err := textElement(w, xml.Name{Local: "priority"}, strconv.Itoa(min(max(p.Priority, -128), 127))); err != nil {
			return err
		}
	}
	if p.Type == "error" {
		if err := encodeError(w, p.Error); err != nil {
			return err
		}
	}
	if caps != "" {
		if err := encodeCaps(w, caps); err != nil {
			return err
		}
	}
	return w.EncodeToken(start.End())
}

// handlePresence decodes an inbound <presence/> and hands it to the
// PresenceHandler, or bounces it with a stanza error (never a stream
// error) when its addressing is unusable.
func (s *session) handlePresence(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	pr := s.c.presence
	if pr == nil {
		return nil // no presence capability: ignored (capabilities.go)
	}
	p, raw, err := decodePresenceAt(*start, t, s.c.domain, &s.presFrom) // t yields the rest of the stanza
	if err != nil {
		log := s.log.With(zap.String("stanza_id", raw.ID), zap.String("from", raw.From), zap.String("to", raw.To))
		de, ok := err.(*decodeError)
		if !ok {
			log.Warn("undecodable xmpp presence dropped", zap.Error(err))
			return nil
		}
		log.Info("bad xmpp presence rejected", zap.String("condition", string(de.Cond)), zap.String("reason", de.Text))
		if p.Type == "error" {
			return nil // never answer an error with an error (RFC 6120 §8.3.1)
		}
		return s.replyPresenceError(t, raw, de.Cond, de.Text)
	}
	// One stanza per watcher at D arrives for each change (RFC 8048 §6.2):
	// the fields are built only when the debug line is written
	// (docs/perf.md, presence fan-out).
	if ce := s.log.Check(zap.DebugLevel, "xmpp presence in"); ce != nil {
		ce.Write(zap.String("stanza_id", raw.ID), zap.String("from", raw.From), zap.String("to", raw.To), zap.String("type", p.Type))
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in PresenceHandler.ReceivePresence", zap.Any("panic", r), zap.String("stanza_id", p.ID), zap.Stack("stack"))
		}
	}()
	pr.ReceivePresence(p)
	return nil
}

// replyPresenceError bounces a presence we cannot accept (RFC 6120 §8.3).
func (s *session) replyPresenceError(w xmlstream.TokenWriter, raw rawAddr, cond mapping.Condition, text string) error {
	p := mapping.Presence{Type: "error", Error: &mapping.Failure{Condition: cond, Text: text}}
	if j, err := mapping.ParseJID(raw.To); err == nil && strings.EqualFold(j.Domain, s.c.domain) {
		p.From = j
	} else {
		p.From = mapping.JID{Domain: s.c.domain}
	}
	if raw.From != "" {
		p.To = mapping.JID{Domain: raw.From} // raw value; the server decides
	}
	s.c.met.stanzas.WithLabelValues("out", "error").Inc()
	return encodePresence(w, &p, raw.ID, s.c.domain)
}
