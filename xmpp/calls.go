package xmpp

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"
	"stox.dev/stox/mapping"
)

// Calls (docs/xmpp-calls.md, "XMPP side"): the component carries the
// Jingle IQs (XEP-0166) and Jingle Message Initiation messages (XEP-0353)
// of SIP contacts, and makes those contacts look like phones to XMPP
// clients: disco#info (XEP-0030) and entity capabilities (XEP-0115) on
// their presence.

// CallHandler serves the calls of SIP contacts (package calls). Both
// methods run on the stream's reader: they must not block.
type CallHandler interface {
	// ReceiveJingle gets each Jingle IQ set addressed to a contact JID.
	// nil makes the component answer type=result; a non-nil error is
	// answered as an IQ error (RFC 6120 §8.3 condition plus the XEP-0166
	// §11 condition when set).
	ReceiveJingle(iq mapping.JingleIQ) *mapping.JingleError
	// ReceiveJMI gets each XEP-0353 message to a contact, and the error
	// bounce of one stox sent as Kind "error" (From the peer, To the
	// contact, ID the session id, Reason the stanza error condition).
	ReceiveJMI(m mapping.JMI)
}

// HandleCalls registers the calls capability. Without one, Jingle IQs get
// service-unavailable (the mux's answer to an unknown payload), JMI
// messages go to the MessageHandler like any message, and contacts
// advertise no call features.
func (c *Component) HandleCalls(h CallHandler) {
	c.register("calls", func() bool { ok := c.calls == nil; c.calls = h; return ok })
}

// The XEP-0115 node stox's contacts advertise.
const capsNode = "https://stox.dev/caps"

// callFeatures are what a SIP contact supports once calls are served:
// Jingle RTP audio over ICE-UDP with DTLS-SRTP (XEP-0166, 0167, 0176,
// 0320), JMI (XEP-0353), and XEP-0176 §3's urn:ietf:rfc:3264, which tells
// clients that stox gathers all its candidates before it answers
// (half-trickle, as a SIP gateway must).
var callFeatures = []string{
	mapping.NSJingle, mapping.NSJingleRTP, mapping.NSJingleAudio, mapping.NSJingleICE,
	mapping.NSJingleDTLS, mapping.NSJMI, mapping.NSRFC3264,
}

// contactDisco is the disco#info of a SIP contact with calls served.
type contactDisco struct {
	features []string // sorted, without duplicates
	ver      string   // XEP-0115 §5.1 verification string
}

func newContactDisco() contactDisco {
	f := slices.Concat(discoFeatures, callFeatures)
	slices.Sort(f)
	f = slices.Compact(f)
	return contactDisco{
		features: f,
		ver:      capsVer([]capsIdentity{{Category: "client", Type: "phone"}}, f),
	}
}

// capsIdentity is one disco identity as XEP-0115 §5.1 hashes it.
type capsIdentity struct {
	Category, Type, Lang, Name string
}

// capsVer computes the XEP-0115 §5.1 verification string with sha-1 for
// a disco#info without extended forms: identities sorted by category,
// type, then xml:lang, each as "category/type/lang/name<", then the
// features sorted, each followed by "<"; base64 of the SHA-1 of that.
func capsVer(ids []capsIdentity, features []string) string {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b capsIdentity) int {
		if c := strings.Compare(a.Category, b.Category); c != 0 {
			return c
		}
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return strings.Compare(a.Lang, b.Lang)
	})
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name + "<")
	}
	features = slices.Clone(features)
	slices.Sort(features) // "i;octet" collation (XEP-0115 §5.1 step 3) is byte order
	for _, f := range features {
		b.WriteString(f + "<")
	}
	sum := sha1.Sum([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// isContact reports whether j is a SIP contact: a JID with a localpart
// at the component's domain.
func (c *Component) isContact(j mapping.JID) bool {
	return j.Local != "" && strings.EqualFold(j.Domain, c.domain)
}

// contactPresence prepares a presence from a contact once calls are
// served: available and unavailable presence from the bare contact JID
// comes from its full JID with the contact resource, where the Jingle
// session will be (XEP-0353 §3.5 proceeds from a full JID), and available
// presence carries the caps. A presence from a resource of its own (a
// PIDF tuple's, mapping.PIDFToPresence) keeps it: each stands for a
// device of the SIP user. It returns the caps ver to add ("" for none).
func (c *Component) contactPresence(p *mapping.Presence) string {
	if c.calls == nil || !c.isContact(p.From) {
		return ""
	}
	if p.Type != "" && p.Type != "unavailable" {
		return "" // subscriptions and probes are between bare JIDs (RFC 6121 §3)
	}
	if p.From.Resource == "" {
		p.From.Resource = c.cfg.ContactResource
	}
	if p.Type == "" {
		return c.disco.ver
	}
	return ""
}

// encodeCaps writes the XEP-0115 <c/> element.
func encodeCaps(w xmlstream.TokenWriter, ver string) error {
	c := xml.StartElement{Name: xml.Name{Space: mapping.NSCaps, Local: "c"}, Attr: []xml.Attr{
		attr("hash", "sha-1"), attr("node", capsNode), attr("ver", ver),
	}}
	if err := w.EncodeToken(c); err != nil {
		return err
	}
	return w.EncodeToken(c.End())
}

// ---- Jingle IQs ----

// jingleActions are the XEP-0166 §7.2 actions, the label values of the
// Jingle metric (anything else counts as "other").
var jingleActions = map[string]bool{
	mapping.ActSessionInitiate: true, mapping.ActSessionAccept: true, mapping.ActSessionTerminate: true,
	mapping.ActSessionInfo: true, mapping.ActTransportInfo: true, mapping.ActContentAdd: true,
	mapping.ActContentAccept: true, mapping.ActContentReject: true, mapping.ActContentRemove: true,
	mapping.ActContentModify: true, mapping.ActDescriptionInfo: true, mapping.ActSecurityInfo: true,
	mapping.ActTransportAccept: true, mapping.ActTransportReject: true, mapping.ActTransportReplace: true,
}

func actionLabel(a string) string {
	if jingleActions[a] {
		return a
	}
	return "other"
}

// defaultIQTimeout bounds the wait for the answer to a Jingle IQ.
const defaultIQTimeout = 10 * time.Second

// pendingIQ is a Jingle IQ set waiting for its answer.
type pendingIQ struct {
	to mapping.JID
	ch chan error // cap 1
}

// SendJingle sends the IQ set <jingle/> from→to and waits for the answer,
// at most 10 s or until ctx is done. It returns nil for a result, a
// *mapping.JingleError for an IQ error, an error wrapping ErrLinkDown when
// there is no session or it is lost before the answer, one wrapping
// ErrQueueFull, and one wrapping context.DeadlineExceeded when no answer
// comes in time. The IQ goes through the send queue, so it stays in order
// with the messages (JMI proceed before session-initiate, XEP-0353 §3.5).
func (c *Component) SendJingle(ctx context.Context, from, to mapping.JID, j mapping.Jingle) error {
	if from.IsZero() || to.IsZero() || j.SID == "" || j.Action == "" {
		return fmt.Errorf("xmpp: jingle %q to %s: from, to, sid and action are required", j.Action, to)
	}
	payload, err := marshalPayload(j)
	if err != nil {
		return fmt.Errorf("xmpp: jingle %s to %s: encode: %w", j.Action, to, err)
	}
	id := c.newID()
	p := &pendingIQ{to: to, ch: make(chan error, 1)}
	it := &outItem{m: mapping.XMPPMessage{ID: id, From: from, To: to}, iq: true, action: j.Action, payload: payload}
	var s *session
	err = c.enqueueWith(it, func(cur *session) {
		s = cur
		cur.mu.Lock()
		cur.iqs[id] = p
		cur.mu.Unlock()
	})
	if err != nil {
		if s != nil {
			s.takeIQ(id)
		}
		return fmt.Errorf("xmpp: jingle %s to %s: %w", j.Action, to, err)
	}
	t := time.NewTimer(c.iqTimeout)
	defer t.Stop()
	select {
	case err := <-p.ch:
		return err
	case <-t.C:
		s.takeIQ(id)
		return fmt.Errorf("xmpp: jingle %s to %s: no answer within %s: %w", j.Action, to, c.iqTimeout, context.DeadlineExceeded)
	case <-ctx.Done():
		s.takeIQ(id)
		return fmt.Errorf("xmpp: jingle %s to %s: %w", j.Action, to, ctx.Err())
	}
}

// PostJingle queues the IQ set <jingle/> from→to, in order with every other
// stanza as SendJingle does, and does not wait for its answer, which is
// dropped when it comes: for a session-info (ringing, hold; XEP-0167 §7)
// that no answer changes. It returns an error wrapping ErrLinkDown or
// ErrQueueFull when the IQ was not queued.
func (c *Component) PostJingle(from, to mapping.JID, j mapping.Jingle) error {
	if from.IsZero() || to.IsZero() || j.SID == "" || j.Action == "" {
		return fmt.Errorf("xmpp: jingle %q to %s: from, to, sid and action are required", j.Action, to)
	}
	payload, err := marshalPayload(j)
	if err != nil {
		return fmt.Errorf("xmpp: jingle %s to %s: encode: %w", j.Action, to, err)
	}
	it := &outItem{m: mapping.XMPPMessage{ID: c.newID(), From: from, To: to}, iq: true, action: j.Action, payload: payload}
	if err := c.enqueueWith(it, nil); err != nil {
		return fmt.Errorf("xmpp: jingle %s to %s: %w", j.Action, to, err)
	}
	return nil
}

// takeIQ removes the pending IQ id and returns it (nil when unknown).
func (s *session) takeIQ(id string) *pendingIQ {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.iqs[id]
	delete(s.iqs, id)
	return p
}

// failIQs answers every pending IQ with err when the session ends.
func (s *session) failIQs(err error) {
	s.mu.Lock()
	iqs := s.iqs
	s.iqs = make(map[string]*pendingIQ)
	s.mu.Unlock()
	for _, p := range iqs {
		p.ch <- err
	}
}

// onIQAnswer matches a result or error IQ against the pending Jingle IQs
// and reports whether it was one. Only an answer from the address the IQ
// went to counts (RFC 6120 §8.2.3; a forged id from elsewhere is ignored),
// or from its bare JID or its domain, which is where a server answers
// for a resource or account that is not there (RFC 6120 §10.5.3, §10.4).
// r yields the rest of the IQ, for the error's details.
func (s *session) onIQAnswer(typ, id, from string, start *xml.StartElement, r xml.TokenReader) bool {
	s.mu.Lock()
	p := s.iqs[id]
	if p == nil {
		s.mu.Unlock()
		return false
	}
	f, err := mapping.ParseJID(from)
	if err != nil || !answersFor(f, p.to) {
		s.mu.Unlock()
		return false
	}
	delete(s.iqs, id)
	s.mu.Unlock()
	if typ == "result" {
		p.ch <- nil
		return true
	}
	var w struct {
		Error *wireError `xml:"error"`
	}
	_ = xml.NewTokenDecoder(xmlstream.MultiReader(tokens(start.Copy()), r)).Decode(&w)
	p.ch <- jingleErrorFromWire(w.Error)
	return true
}

// answersFor reports whether an answer from from may be the answer to an
// IQ sent to to (see onIQAnswer).
func answersFor(from, to mapping.JID) bool {
	return sameJID(from, to) || sameJID(from, to.Bare()) || sameJID(from, mapping.JID{Domain: to.Domain})
}

// sameJID compares JIDs as a server would route them: the domain is case
// insensitive (RFC 7622 §3.2); the rest stox compares as received.
func sameJID(a, b mapping.JID) bool {
	return strings.EqualFold(a.Local, b.Local) && strings.EqualFold(a.Domain, b.Domain) && a.Resource == b.Resource
}

// jingleErrorFromWire reads an IQ <error/>: its RFC 6120 condition and
// text, and the XEP-0166 §11 / XEP-0167 §8 condition when there is one.
func jingleErrorFromWire(e *wireError) *mapping.JingleError {
	f := failureFromWire(e)
	je := &mapping.JingleError{Condition: f.Condition, Text: f.Text}
	if e != nil {
		for _, c := range e.Children {
			if c.XMLName.Space == mapping.NSJingleErrors || c.XMLName.Space == mapping.NSJingleRTPErr {
				je.Jingle = c.XMLName.Local
				break
			}
		}
	}
	return je
}

// marshalPayload marshals v and checks that the result reads back as XML,
// so that the writer, which copies it into the stream, cannot fail on it
// (a name encoding/xml writes without checking, say, would otherwise end
// the session).
func marshalPayload(v any) ([]byte, error) {
	b, err := xml.Marshal(v)
	if err != nil {
		return nil, err
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		if _, err := d.Token(); err == io.EOF {
			return b, nil
		} else if err != nil {
			return nil, err
		}
	}
}

// copyPayload writes the tokens of the marshalled element b. Namespace
// declarations are dropped: the encoder declares each element's namespace
// itself.
func copyPayload(w xmlstream.TokenWriter, b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("payload: %w", err)
		}
		if st, ok := tok.(xml.StartElement); ok {
			st.Attr = slices.DeleteFunc(slices.Clone(st.Attr), func(a xml.Attr) bool {
				return a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns")
			})
			tok = st
		}
		if err := w.EncodeToken(tok); err != nil {
			return err
		}
	}
}

// encodeJingleIQ writes <iq type='set'> around the marshalled <jingle/>.
func encodeJingleIQ(w xmlstream.TokenWriter, it *outItem, defFrom string) error {
	start := stanzaStart("iq", it.m.From, it.m.To, it.id, "set", "", defFrom)
	if err := w.EncodeToken(start); err != nil {
		return err
	}
	if err := copyPayload(w, it.payload); err != nil {
		return err
	}
	return w.EncodeToken(start.End())
}

// decodeJingle decodes the <jingle/> element r yields (start element
// included). A missing sid or action is an error: XEP-0166 §7.1 makes both
// required, and the answer is bad-request (§6.3.2).
func decodeJingle(r xml.TokenReader) (mapping.Jingle, error) {
	var j mapping.Jingle
	if err := xml.NewTokenDecoder(r).Decode(&j); err != nil {
		return j, err
	}
	if j.SID == "" {
		return j, errors.New("jingle without sid")
	}
	if j.Action == "" {
		return j, errors.New("jingle without action")
	}
	return j, nil
}

// handleJingle serves an IQ set with a <jingle/> payload (the mux routes
// it here only when calls are served).
func (s *session) handleJingle(iq stanza.IQ, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	action, _ := attrValue(start, "action")
	s.c.met.jingle.WithLabelValues("in", actionLabel(action)).Inc()
	if iq.To.Localpart() == "" {
		// The gateway itself takes no calls, only its contacts do.
		return s.replyJingleError(t, iq, &mapping.JingleError{Condition: mapping.ServiceUnavailable})
	}
	j, err := decodeJingle(xmlstream.MultiReader(tokens(start.Copy()), t))
	if err != nil {
		return s.replyJingleError(t, iq, &mapping.JingleError{Condition: mapping.BadRequest, Text: err.Error()})
	}
	from, err1 := mapping.ParseJID(iq.From.String())
	to, err2 := mapping.ParseJID(iq.To.String())
	if err1 != nil || err2 != nil {
		return s.replyJingleError(t, iq, &mapping.JingleError{Condition: mapping.JIDMalformed})
	}
	je := s.c.routeJingle(mapping.JingleIQ{ID: iq.ID, From: from, To: to, Jingle: j})
	if je != nil {
		return s.replyJingleError(t, iq, je)
	}
	_, err = xmlstream.Copy(t, iq.Result(nil))
	return err
}

// routeJingle hands a Jingle IQ to the CallHandler; a panic there answers
// internal-server-error and leaves the link up.
func (c *Component) routeJingle(iq mapping.JingleIQ) (je *mapping.JingleError) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic in CallHandler.ReceiveJingle", zap.Any("panic", r), zap.String("sid", iq.Jingle.SID), zap.Stack("stack"))
			je = &mapping.JingleError{Condition: mapping.InternalServerError}
		}
	}()
	return c.calls.ReceiveJingle(iq)
}

// replyJingleError answers iq with e: the RFC 6120 §8.3 condition and text,
// and the XEP-0166 §11 condition (<unknown-session/>, <out-of-order/>,
// <tie-break/>, <unsupported-info/>) when set.
func (s *session) replyJingleError(w xmlstream.TokenWriter, iq stanza.IQ, e *mapping.JingleError) error {
	iq.Type = stanza.ErrorIQ
	iq.From, iq.To = iq.To, iq.From
	cond := e.Condition
	if cond == "" {
		cond = mapping.UndefinedCondition
	}
	errStart := xml.StartElement{Name: xml.Name{Local: "error"}, Attr: []xml.Attr{attr("type", mapping.ErrorType(cond))}}
	toks := []xml.Token{errStart}
	el := func(space, local, text string) {
		st := xml.StartElement{Name: xml.Name{Space: space, Local: clean(local)}}
		toks = append(toks, st)
		if text != "" {
			toks = append(toks, xml.CharData(clean(text)))
		}
		toks = append(toks, st.End())
	}
	el(nsStanzas, string(cond), "")
	if e.Text != "" {
		el(nsStanzas, "text", e.Text)
	}
	if e.Jingle != "" {
		space := mapping.NSJingleErrors
		if e.Jingle == "crypto-required" || e.Jingle == "invalid-crypto" {
			space = mapping.NSJingleRTPErr // XEP-0167 §8
		}
		el(space, e.Jingle, "")
	}
	toks = append(toks, errStart.End())
	s.c.met.stanzas.WithLabelValues("out", "error").Inc()
	_, err := xmlstream.Copy(w, iq.Wrap(tokens(toks...)))
	return err
}

// ---- Jingle Message Initiation (XEP-0353) ----

// jmiFromWire finds the JMI element among a message's children
// (mapping.IsJMI). found reports there is one; err that it does not
// decode (no id, a propose without media: mapping.DecodeJMI).
func jmiFromWire(exts []mapping.JMIElement) (m mapping.JMI, found bool, err error) {
	for _, e := range exts {
		if mapping.IsJMI(e.XMLName) {
			m, err = mapping.DecodeJMI(e)
			return m, true, err
		}
	}
	return mapping.JMI{}, false, nil
}

// maxSentJMI bounds the JMI message ids remembered for matching bounces.
const maxSentJMI = 4096

// sentJMI remembers the ids of the JMI messages sent, so that an error
// bounce, which need not carry the original payload (RFC 6120 §8.3.1),
// still reaches the calls capability with its session id.
type sentJMI struct {
	mu    sync.Mutex
	byID  map[string]mapping.JMI
	order []string // FIFO of byID's keys
}

func (s *sentJMI) add(id string, m mapping.JMI) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = make(map[string]mapping.JMI)
	}
	if len(s.order) >= maxSentJMI {
		delete(s.byID, s.order[0])
		s.order = s.order[1:]
	}
	s.byID[id] = m
	s.order = append(s.order, id)
}

func (s *sentJMI) take(id string) (mapping.JMI, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.byID[id]
	if ok {
		delete(s.byID, id) // order keeps the id until it is evicted
	}
	return m, ok
}

// SendJMI queues a XEP-0353 message without blocking: <message
// type='chat'> with the m.Kind element and a XEP-0334 <store/> hint
// (XEP-0353 §3). m.Media gives a propose its <description/>s, m.Reason a
// reject, retract or finish its <reason/>. It returns ErrLinkDown or
// ErrQueueFull like Send; a bounce comes back to ReceiveJMI as Kind
// "error".
func (c *Component) SendJMI(m mapping.JMI) error {
	if m.From.IsZero() || m.To.IsZero() {
		return fmt.Errorf("xmpp: JMI %s %q: from and to are required", m.Kind, m.ID)
	}
	el, err := mapping.EncodeJMI(m)
	if err != nil {
		return fmt.Errorf("xmpp: JMI to %s: %w", m.To, err)
	}
	payload, err := marshalPayload(el)
	if err != nil {
		return fmt.Errorf("xmpp: JMI %s to %s: encode: %w", m.Kind, m.To, err)
	}
	id := c.newID()
	c.jmiSent.add(id, m)
	err = c.enqueue(&outItem{m: mapping.XMPPMessage{ID: id, From: m.From, To: m.To, Type: "chat"}, jmi: &m, payload: payload})
	if err != nil {
		c.jmiSent.take(id)
		return fmt.Errorf("xmpp: JMI %s to %s: %w", m.Kind, m.To, err)
	}
	return nil
}

// encodeJMI writes the JMI message of it: <message type='chat'> with the
// marshalled element and the <store/> hint.
func encodeJMI(w xmlstream.TokenWriter, it *outItem, defFrom string) error {
	start := stanzaStart("message", it.m.From, it.m.To, it.id, "chat", "", defFrom)
	if err := w.EncodeToken(start); err != nil {
		return err
	}
	if err := copyPayload(w, it.payload); err != nil {
		return err
	}
	store := xml.StartElement{Name: xml.Name{Space: mapping.NSHints, Local: "store"}}
	for _, t := range []xml.Token{store, store.End(), start.End()} {
		if err := w.EncodeToken(t); err != nil {
			return err
		}
	}
	return nil
}

// routeJMI hands a JMI message to the CallHandler, containing a panic.
func (c *Component) routeJMI(m mapping.JMI) {
	c.met.jmi.WithLabelValues("in", m.Kind).Inc()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic in CallHandler.ReceiveJMI", zap.Any("panic", r), zap.String("sid", m.ID), zap.Stack("stack"))
		}
	}()
	c.calls.ReceiveJMI(m)
}

// callsMessage takes the messages that belong to the calls capability
// and reports whether it did: JMI messages to a contact, and error bounces
// of JMI messages stox sent. A message to a contact's full JID with the
// contact resource goes on to the MessageHandler as addressed to the bare
// JID, as it was before the resource existed (the resource would otherwise
// read as a SIP GRUU, mapping.Domains.SIPTarget).
func (s *session) callsMessage(msg *mapping.XMPPMessage, exts []mapping.JMIElement) bool {
	c := s.c
	if c.calls == nil {
		return false
	}
	if msg.Type == "error" {
		sent, ok := c.jmiSent.take(msg.ID)
		if !ok {
			// A bounce that carries the original payload.
			j, found, err := jmiFromWire(exts)
			if !found || err != nil {
				return false
			}
			sent = j
		}
		s.onBounce(msg.ID, msg.Error) // settle the in-flight entry, if still there
		m := mapping.JMI{From: msg.From, To: msg.To, Kind: "error", ID: sent.ID, Media: sent.Media}
		if msg.Error != nil {
			m.Reason = string(msg.Error.Condition)
		}
		c.routeJMI(m)
		return true
	}
	if !c.isContact(msg.To) {
		return false
	}
	j, found, err := jmiFromWire(exts)
	if found {
		if err != nil {
			// A call signal stox cannot act on; no chat either.
			s.log.Info("malformed JMI message dropped", zap.String("stanza_id", msg.ID),
				zap.Stringer("from", msg.From), zap.Stringer("to", msg.To), zap.Error(err))
			return true
		}
		j.From, j.To = msg.From, msg.To
		c.routeJMI(j)
		return true
	}
	if msg.To.Resource == c.cfg.ContactResource {
		msg.To.Resource = ""
	}
	return false
}
