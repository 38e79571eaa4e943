package xmpp

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// node is a parsed element for assertions.
type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Kids    []node     `xml:",any"`
}

func (n *node) attr(local string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

func (n *node) child(local string) *node {
	for i := range n.Kids {
		if n.Kids[i].XMLName.Local == local {
			return &n.Kids[i]
		}
	}
	return nil
}

// elem is one top-level element read from the component, parsed and raw.
type elem struct {
	node
	raw []byte
}

// fakeServer is a scripted XEP-0114 router (the server side of the component
// protocol) on 127.0.0.1:0.
type fakeServer struct {
	t      *testing.T
	ln     net.Listener
	domain string
	secret string
	conns  chan *fakeConn
	// autoRoute: stanzas the component addresses to its own domain are sent
	// straight back, as a real server routes them.
	autoRoute bool
	routedIQs atomic.Int64 // IQs sent straight back by autoRoute
	// A slow reader: at most readChunk bytes per read, one read every
	// readEvery (nanoseconds); 0 reads at full speed.
	readChunk, readEvery atomic.Int64

	mu      sync.Mutex
	rejectN int // reject the next N handshakes
}

type fakeConn struct {
	srv   *fakeServer
	conn  net.Conn
	wmu   sync.Mutex
	elems chan elem
	done  chan struct{}
}

func newFakeServer(t *testing.T, domain, secret string, autoRoute bool) *fakeServer {
	t.Helper()
	return newFakeServerOn(t, &net.ListenConfig{}, domain, secret, autoRoute)
}

func newFakeServerOn(t *testing.T, lc *net.ListenConfig, domain, secret string, autoRoute bool) *fakeServer {
	t.Helper()
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, domain: domain, secret: secret, conns: make(chan *fakeConn, 16), autoRoute: autoRoute}
	go s.accept()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) accept() {
	n := 0
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		n++
		go s.serve(conn, fmt.Sprintf("stream-%d", n))
	}
}

// recorder keeps every byte read so that elements can be routed back raw.
type recorder struct {
	r   io.Reader
	srv *fakeServer
	buf bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	if chunk := int(r.srv.readChunk.Load()); chunk > 0 {
		time.Sleep(time.Duration(r.srv.readEvery.Load()))
		p = p[:min(len(p), chunk)]
	}
	n, err := r.r.Read(p)
	r.buf.Write(p[:n])
	return n, err
}

func (s *fakeServer) serve(conn net.Conn, streamID string) {
	rec := &recorder{r: conn, srv: s}
	d := xml.NewDecoder(rec)
	fail := func(format string, args ...any) {
		s.t.Errorf("fake server: "+format, args...)
		conn.Close()
	}
	// Stream header from the component.
	for {
		tok, err := d.Token()
		if err != nil {
			conn.Close()
			return
		}
		if st, ok := tok.(xml.StartElement); ok {
			if st.Name.Local != "stream" || st.Name.Space != "http://etherx.jabber.org/streams" {
				fail("expected stream header, got %v", st.Name)
				return
			}
			var to string
			for _, a := range st.Attr {
				if a.Name.Local == "to" {
					to = a.Value
				}
			}
			if to != s.domain {
				fail("stream to=%q, want %q", to, s.domain)
				return
			}
			break
		}
	}
	fmt.Fprintf(conn, `<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='%s' id='%s'>`, s.domain, streamID)
	var hs struct {
		XMLName xml.Name `xml:"handshake"`
		Hash    string   `xml:",chardata"`
	}
	if err := d.Decode(&hs); err != nil {
		conn.Close()
		return
	}
	sum := sha1.Sum([]byte(streamID + s.secret))
	s.mu.Lock()
	reject := s.rejectN > 0
	if reject {
		s.rejectN--
	}
	s.mu.Unlock()
	if reject || !strings.EqualFold(hs.Hash, hex.EncodeToString(sum[:])) {
		io.WriteString(conn, `<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
		conn.Close()
		return
	}
	io.WriteString(conn, `<handshake/>`)
	fc := &fakeConn{srv: s, conn: conn, elems: make(chan elem, 1024), done: make(chan struct{})}
	s.conns <- fc
	defer close(fc.done)
	defer close(fc.elems)
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return
		}
		st, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		var e elem
		if err := d.DecodeElement(&e.node, &st); err != nil {
			return
		}
		e.raw = append([]byte(nil), rec.buf.Bytes()[off:d.InputOffset()]...)
		if s.autoRoute && (e.attr("to") == s.domain) {
			if e.XMLName.Local == "iq" {
				s.routedIQs.Add(1)
			}
			fc.send(string(e.raw))
			continue
		}
		fc.elems <- e
	}
}

// next waits for the first component connection.
func (s *fakeServer) next(t *testing.T) *fakeConn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no component connection")
		return nil
	}
}

func (c *fakeConn) send(raw string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, _ = io.WriteString(c.conn, raw)
}

// read returns the next element the component wrote.
func (c *fakeConn) read(t *testing.T) elem {
	t.Helper()
	select {
	case e, ok := <-c.elems:
		if !ok {
			t.Fatal("component connection closed")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("timeout waiting for a stanza from the component")
		return elem{}
	}
}

// readKind skips elements until one named local arrives.
func (c *fakeConn) readKind(t *testing.T, local string) elem {
	t.Helper()
	for {
		e := c.read(t)
		if e.XMLName.Local == local {
			return e
		}
	}
}
