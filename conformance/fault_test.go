package conformance

import (
	"fmt"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
)

// docs/architecture.md durability contract, with the SIP peer failing:
// while the trunk's Kamailio is down, every message alice sends is answered with an error stanza (none
// is accepted and dropped); after Kamailio is back, delivery resumes
// without restarting stox.
func TestFaultKamailioRestart(t *testing.T) {
	peers.Require(t, "kamailio", "kamcmd", "sipp")
	stoxPort := peers.FreePort(t, "udp+tcp")
	kam := peers.StartKamailio(t, sipDomain, []string{"localhost"}, fmt.Sprintf("127.0.0.1:%d", stoxPort))
	// TCP toward Kamailio, so a dead peer is a refused connection rather
	// than 32 s of UDP retransmissions (RFC 3261 Timer F) per message.
	w := newWorld(t, StoxConfig{SIPPort: stoxPort, OutboundProxy: "tcp:" + kam.Addr(), TrustedPeers: []string{"127.0.0.1/32"}})
	uas := peers.StartSippUASRegistered(t, "message_uas.xml", kam.Addr(), "bob@"+sipDomain, "")
	kam.WaitRegistered(t, "bob", 5*time.Second)

	before := w.alice.Send(t, "bob@"+compDomain, "before")
	if m := uas.WaitMessages(t, 1, 10*time.Second); m[0].Body != "before" {
		t.Fatalf("got %v", m)
	}

	kam.Stop()
	ids := map[string]bool{}
	for i := range 3 {
		ids[w.alice.Send(t, "bob@"+compDomain, fmt.Sprintf("during %d", i))] = true
	}
	for len(ids) > 0 {
		e := w.alice.NextMessage(t, 40*time.Second)
		if e.ID == before && e.Type == "error" {
			// The UAS had "before" but its 200 was still on its way back
			// through Kamailio when Kamailio stopped: stox never got a final
			// response, so alice is told (RFC 3261 Timer F); not a loss.
			continue
		}
		if e.Type != "error" || !ids[e.ID] {
			t.Fatalf("while Kamailio is down: got %s, want an error for one of %v", e, ids)
		}
		delete(ids, e.ID)
	}

	kam.Start(t)
	uas2 := peers.StartSippUASRegistered(t, "message_uas.xml", kam.Addr(), "bob@"+sipDomain, "")
	kam.WaitRegistered(t, "bob", 5*time.Second)
	w.alice.Send(t, "bob@"+compDomain, "after")
	if m := uas2.WaitMessages(t, 1, 15*time.Second); m[0].Body != "after" {
		t.Fatalf("after the restart: got %v", m)
	}
}
