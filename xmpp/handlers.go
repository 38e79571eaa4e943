package xmpp

import (
	"encoding/xml"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"
	"stox.dev/stox/mapping"
)

// Features advertised in disco#info, for the component and for users under it.
var discoFeatures = []string{nsDisco, nsGateway, nsPing, featJID}

// handler returns the stream handler: it decodes messages itself, catches
// barrier replies, guards IQs against inputs that would make mellium's mux
// tear the stream down, and passes the rest of the IQs to a mux.
func (s *session) handler() xmpp.Handler {
	opts := []mux.Option{
		ping.Handle(),
		mux.IQFunc(stanza.GetIQ, xml.Name{Space: nsDisco, Local: "query"}, s.handleDiscoInfo),
		mux.IQFunc(stanza.GetIQ, xml.Name{Space: nsGateway, Local: "query"}, s.handleGatewayGet),
		mux.IQFunc(stanza.SetIQ, xml.Name{Space: nsGateway, Local: "query"}, s.handleGatewaySet),
	}
	if s.c.calls != nil {
		opts = append(opts, mux.IQFunc(stanza.SetIQ, xml.Name{Space: mapping.NSJingle, Local: "jingle"}, s.handleJingle))
	}
	m := mux.New(component.NSAccept, opts...)
	return xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		s.lastIn.Store(time.Now().UnixNano())
		if start.Name.Space != component.NSAccept {
			return nil
		}
		// mellium blanks a from equal to our own domain; put it back so that
		// replies to our own barrier pings are addressed to us.
		selfFrom := false
		for i, a := range start.Attr {
			if a.Name.Local == "from" && a.Name.Space == "" && a.Value == "" {
				start.Attr[i].Value = s.c.domain
				selfFrom = true
			}
		}
		switch start.Name.Local {
		case "message":
			s.c.met.stanzas.WithLabelValues("in", "message").Inc()
			return s.handleMessage(t, start)
		case "presence":
			s.c.met.stanzas.WithLabelValues("in", "presence").Inc()
			return s.handlePresence(t, start)
		case "iq":
			return s.handleIQ(m, t, start, selfFrom)
		}
		return nil
	})
}

func attrValue(start *xml.StartElement, local string) (string, bool) {
	for _, a := range start.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value, true
		}
	}
	return "", false
}

func (s *session) handleIQ(m *mux.ServeMux, t xmlstream.TokenReadEncoder, start *xml.StartElement, selfFrom bool) error {
	typ, _ := attrValue(start, "type")
	id, _ := attrValue(start, "id")
	if typ == "result" || typ == "error" {
		if selfFrom && strings.HasPrefix(id, barrierPrefix) {
			s.c.met.stanzas.WithLabelValues("in", "barrier").Inc()
			s.onBarrierReply(id)
			return nil
		}
		s.c.met.stanzas.WithLabelValues("in", "iq").Inc()
		from, _ := attrValue(start, "from")
		// A Jingle IQ's answer (calls.go); nothing else we send expects one.
		s.onIQAnswer(typ, id, from, start, t)
		return nil
	}
	s.c.met.stanzas.WithLabelValues("in", "iq").Inc()
	if typ != "get" && typ != "set" {
		return nil
	}
	from, _ := attrValue(start, "from")
	to, _ := attrValue(start, "to")
	reply := func(cond stanza.Condition, typ stanza.ErrorType) error {
		return s.replyIQError(t, start.Name, id, from, to, stanza.Error{Type: typ, Condition: cond})
	}
	if _, err := jid.Parse(from); err != nil {
		return reply(stanza.JIDMalformed, stanza.Modify)
	}
	if _, err := jid.Parse(to); err != nil {
		return reply(stanza.JIDMalformed, stanza.Modify)
	}
	// The mux returns an error (and mellium then kills the stream) for an IQ
	// without a payload: look ahead for the child element.
	var buf []xml.Token
	for {
		tok, err := t.Token()
		if err != nil {
			if err == io.EOF {
				return reply(stanza.BadRequest, stanza.Modify)
			}
			return err
		}
		buf = append(buf, xml.CopyToken(tok))
		if _, ok := tok.(xml.StartElement); ok {
			break
		}
		if _, ok := tok.(xml.EndElement); ok {
			return reply(stanza.BadRequest, stanza.Modify)
		}
	}
	rt := struct {
		xml.TokenReader
		xmlstream.Encoder
	}{xmlstream.MultiReader(tokens(buf...), t), t}
	return m.HandleXMPP(rt, start)
}

// replyIQError answers an IQ with a stanza error without parsing its JIDs.
func (s *session) replyIQError(w xmlstream.TokenWriter, name xml.Name, id, from, to string, e stanza.Error) error {
	if to == "" {
		to = s.c.domain
	}
	attrs := []xml.Attr{attr("type", "error"), attr("id", id), attr("from", to)}
	if from != "" {
		attrs = append(attrs, attr("to", from))
	}
	start := xml.StartElement{Name: name, Attr: attrs}
	_, err := xmlstream.Copy(w, xmlstream.Wrap(e.TokenReader(), start))
	return err
}

func (s *session) handleMessage(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	// t yields the inside of the stanza and its end element: put the start
	// element in front so that encoding/xml sees a balanced element.
	msg, raw, ext, err := decodeMessageExt(xmlstream.MultiReader(tokens(start.Copy()), t))
	log := s.log.WithLazy(zap.String("stanza_id", raw.ID), zap.String("from", raw.From), zap.String("to", raw.To))
	if err != nil {
		de, ok := err.(*decodeError)
		if !ok {
			// Not well-formed for our decoder: drop, keep the stream.
			log.Warn("undecodable xmpp message dropped", zap.Error(err))
			return nil
		}
		log.Info("bad xmpp message rejected", zap.String("condition", string(de.Cond)), zap.String("reason", de.Text))
		if msg.Type == "error" {
			return nil // never answer an error with an error
		}
		return s.replyMessageError(t, raw, de.Cond, de.Text)
	}
	if s.callsMessage(&msg, ext) {
		return nil
	}
	if msg.Type == "error" {
		if s.onBounce(msg.ID, msg.Error) {
			log.Info("xmpp message bounced", zap.String("condition", string(msg.Error.Condition)), zap.String("text", msg.Error.Text))
			return nil
		}
	}
	if s.c.messages == nil {
		if msg.Type == "error" {
			return nil
		}
		return s.replyMessageError(t, raw, mapping.ServiceUnavailable, "")
	}
	log.Debug("xmpp message in", zap.String("type", msg.Type))
	s.c.routeIn(msg)
	return nil
}

// replyMessageError bounces a message we cannot accept (RFC 6120 §8.3).
func (s *session) replyMessageError(w xmlstream.TokenWriter, raw rawAddr, cond mapping.Condition, text string) error {
	from := raw.To
	if from == "" {
		from = s.c.domain
	}
	m := mapping.XMPPMessage{Type: "error", Error: &mapping.Failure{Condition: cond, Text: text}}
	if j, err := mapping.ParseJID(from); err == nil {
		m.From = j
	} else {
		m.From = mapping.JID{Domain: s.c.domain}
	}
	if raw.From != "" {
		// Address the reply to the raw value; the server decides what to do
		// with a malformed address.
		m.To = mapping.JID{Domain: raw.From}
	}
	s.c.met.stanzas.WithLabelValues("out", "error").Inc()
	return encodeMessage(w, &m, raw.ID, s.c.domain)
}

func (s *session) handleDiscoInfo(iq stanza.IQ, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	contact := iq.To.Localpart() != ""
	features := discoFeatures
	if contact && s.c.calls != nil {
		features = s.c.disco.features
	}
	node, _ := attrValue(start, "node")
	// The one node stox knows is a contact's caps node#ver (XEP-0115 §6.2).
	if node != "" && (!contact || s.c.calls == nil || node != capsNode+"#"+s.c.disco.ver) {
		_, err := xmlstream.Copy(t, iq.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}))
		return err
	}
	cat, typ, name := "gateway", "sip", "stox"
	if contact {
		cat, typ, name = "client", "phone", ""
	}
	q := xml.StartElement{Name: xml.Name{Space: nsDisco, Local: "query"}}
	if node != "" {
		q.Attr = []xml.Attr{attr("node", node)}
	}
	identAttrs := []xml.Attr{attr("category", cat), attr("type", typ)}
	if name != "" {
		identAttrs = append(identAttrs, attr("name", name))
	}
	ident := xml.StartElement{Name: xml.Name{Space: nsDisco, Local: "identity"}, Attr: identAttrs}
	toks := []xml.Token{q, ident, ident.End()}
	for _, f := range features {
		fe := xml.StartElement{Name: xml.Name{Space: nsDisco, Local: "feature"}, Attr: []xml.Attr{attr("var", f)}}
		toks = append(toks, fe, fe.End())
	}
	toks = append(toks, q.End())
	_, err := xmlstream.Copy(t, iq.Result(tokens(toks...)))
	return err
}

func (s *session) handleGatewayGet(iq stanza.IQ, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	q := xml.StartElement{Name: xml.Name{Space: nsGateway, Local: "query"}}
	desc := xml.StartElement{Name: xml.Name{Space: nsGateway, Local: "desc"}}
	prompt := xml.StartElement{Name: xml.Name{Space: nsGateway, Local: "prompt"}}
	_, err := xmlstream.Copy(t, iq.Result(tokens(
		q,
		desc, xml.CharData("Enter the SIP address of the contact (user@host)."), desc.End(),
		prompt, xml.CharData("SIP address"), prompt.End(),
		q.End(),
	)))
	return err
}

func (s *session) handleGatewaySet(iq stanza.IQ, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	var req struct {
		Prompt *string `xml:"prompt"`
	}
	if err := xml.NewTokenDecoder(xmlstream.MultiReader(tokens(start.Copy()), t)).Decode(&req); err != nil || req.Prompt == nil || strings.TrimSpace(*req.Prompt) == "" {
		_, err := xmlstream.Copy(t, iq.Error(stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}))
		return err
	}
	j, err := s.c.cfg.Domains.PromptToJID(*req.Prompt)
	if err != nil {
		_, err := xmlstream.Copy(t, iq.Error(stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound,
			Text: map[string]string{"": clean(err.Error())}}))
		return err
	}
	q := xml.StartElement{Name: xml.Name{Space: nsGateway, Local: "query"}}
	jt := xml.StartElement{Name: xml.Name{Space: nsGateway, Local: "jid"}}
	_, err = xmlstream.Copy(t, iq.Result(tokens(q, jt, xml.CharData(j.String()), jt.End(), q.End())))
	return err
}
