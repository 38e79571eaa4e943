package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// client is a mellium c2s session that counts what it receives. The
// session is negotiated over plain TCP with SASL PLAIN: mellium offers
// PLAIN only on a Secure session, so the harness marks the loopback TCP
// connection Secure itself (Prosody allows it: allow_unencrypted_plain_auth).
type client struct {
	s *xmpp.Session

	mu        sync.Mutex
	got       int            // messages with a "T ..." body
	lat       []float64      // ms, from the send time in the body
	errs      map[string]int // error condition → count
	other     int
	lastRecv  time.Time
	firstRecv time.Time
}

type rmsg struct {
	XMLName xml.Name `xml:"message"`
	Type    string   `xml:"type,attr"`
	Body    string   `xml:"body"`
	Error   struct {
		Inner []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"error"`
}

type smsg struct {
	XMLName xml.Name `xml:"jabber:client message"`
	To      string   `xml:"to,attr"`
	Type    string   `xml:"type,attr"`
	ID      string   `xml:"id,attr"`
	Body    string   `xml:"body"`
}

type presence struct {
	XMLName  xml.Name `xml:"jabber:client presence"`
	Priority int      `xml:"priority"`
}

func dialClient(ctx context.Context, addr, user, pass, resource string) (*client, error) {
	origin, err := jid.Parse(user + "@localhost/" + resource)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	s, err := xmpp.NewSession(ctx, origin.Domain(), origin, conn, xmpp.Secure,
		xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
			return xmpp.StreamConfig{Features: []xmpp.StreamFeature{
				xmpp.SASL("", pass, sasl.Plain), xmpp.BindResource(),
			}}
		}))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("xmpp login %s: %w", user, err)
	}
	c := &client{s: s, errs: map[string]int{}}
	go func() {
		if err := s.Serve(xmpp.HandlerFunc(c.handle)); err != nil {
			fmt.Fprintf(os.Stderr, "xmpp %s: serve: %v\n", user, err)
		}
	}()
	if err := s.Encode(ctx, presence{Priority: 1}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *client) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if os.Getenv("LOAD_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "xmpp: got %v %v\n", start.Name, start.Attr)
	}
	if start.Name.Local != "message" {
		return nil
	}
	now := time.Now()
	var m rmsg
	if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(&m); err != nil {
		if os.Getenv("LOAD_DEBUG") != "" {
			fmt.Fprintf(os.Stderr, "xmpp: decode: %v\n", err)
		}
		return nil
	}
	if os.Getenv("LOAD_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "xmpp: body %q\n", m.Body)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.Type == "error" {
		cond := "undefined"
		for _, e := range m.Error.Inner {
			if e.XMLName.Local != "text" {
				cond = e.XMLName.Local
				break
			}
		}
		c.errs[cond]++
		return nil
	}
	// "T <sec> <usec> #n" from load_uac.xml (sipp prints doubles: "1700000000.000000").
	f := strings.Fields(m.Body)
	if len(f) >= 3 && f[0] == "T" {
		sec, e1 := strconv.ParseFloat(f[1], 64)
		usec, e2 := strconv.ParseFloat(f[2], 64)
		if e1 == nil && e2 == nil {
			sent := sec + usec/1e6
			recv := float64(now.UnixNano()) / 1e9
			c.lat = append(c.lat, (recv-sent)*1000)
		}
		c.got++
		if c.firstRecv.IsZero() {
			c.firstRecv = now
		}
		c.lastRecv = now
		return nil
	}
	c.other++
	return nil
}

func (c *client) counts() (got int, errs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.errs {
		errs += n
	}
	return c.got, errs
}

func (c *client) errSummary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for k, v := range c.errs {
		parts = append(parts, fmt.Sprintf("%s:%d", k, v))
	}
	return strings.Join(parts, " ")
}

func (c *client) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got, c.other, c.lat = 0, 0, nil
	c.errs = map[string]int{}
	c.firstRecv, c.lastRecv = time.Time{}, time.Time{}
}

func (c *client) close() {
	if c != nil && c.s != nil {
		_ = c.s.Close()
		_ = c.s.Conn().Close()
	}
}

// send sends n chat messages at rate per second to the JIDs in dests (round
// robin), body "T <unix ns>", pacing every millisecond. It returns how
// many it sent and how many Encode calls failed.
func (c *client) send(ctx context.Context, dests []string, rate int, d time.Duration) (sent, failed int) {
	total := int(float64(rate) * d.Seconds())
	begin := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for sent+failed < total {
		due := int(float64(rate) * time.Since(begin).Seconds())
		if due > total {
			due = total
		}
		for sent+failed < due {
			i := sent + failed
			m := smsg{To: dests[i%len(dests)], Type: "chat", ID: "l" + strconv.Itoa(i),
				Body: "T " + strconv.FormatInt(time.Now().UnixNano(), 10)}
			if err := c.s.Encode(ctx, m); err != nil {
				failed++
			} else {
				sent++
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	return
}
