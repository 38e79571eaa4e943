package conformance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"stox.dev/stox/conformance/peers"
	"stox.dev/stox/internal/testenv"
)

// privatePostgres is a throwaway PostgreSQL cluster of this test alone, so
// a fault case can stop and start it without touching the shared server
// other packages' tests use. It runs Debian's binaries as user postgres
// (initdb refuses root) on a free loopback port with trust auth.
type privatePostgres struct {
	bin, dir string
	port     int
}

func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		testenv.Missing(t, "no PostgreSQL server binaries under /usr/lib/postgresql")
	}
	peers.Require(t, "runuser")
	dir, err := os.MkdirTemp("", "stox-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	p := &privatePostgres{bin: filepath.Dir(bins[len(bins)-1]), dir: dir, port: peers.FreePort(t, "tcp")}
	p.asPostgres(t, filepath.Join(p.bin, "initdb"), "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync")
	p.Start(t)
	t.Cleanup(func() { p.Stop(t) })
	return p
}

func (p *privatePostgres) asPostgres(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// DSN is the connection string of the cluster's postgres database.
func (p *privatePostgres) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// Start starts (or restarts) the cluster and waits until it accepts.
func (p *privatePostgres) Start(t *testing.T) {
	t.Helper()
	p.asPostgres(t, filepath.Join(p.bin, "pg_ctl"), "-D", filepath.Join(p.dir, "data"), "-w", "-l", filepath.Join(p.dir, "log"),
		"-o", "-p "+strconv.Itoa(p.port)+" -c listen_addresses=127.0.0.1 -c unix_socket_directories="+p.dir+" -c fsync=off", "start")
}

// Stop stops the cluster at once (fast mode: connections are cut).
func (p *privatePostgres) Stop(t *testing.T) {
	t.Helper()
	cmd := exec.Command("runuser", "-u", "postgres", "--", filepath.Join(p.bin, "pg_ctl"), "-D", filepath.Join(p.dir, "data"), "-m", "fast", "-w", "stop")
	_ = cmd.Run() // already stopped is fine
}

// docs/architecture.md durability contract, with the store failing: while
// Postgres is down, messages from XMPP are refused with an error (never accepted and lost), /healthz
// says so, SIP→XMPP (no database on that path) keeps working, and after
// Postgres is back stox recovers without a restart.
func TestFaultPostgresRestart(t *testing.T) {
	peers.Require(t, "sipp")
	pg := startPrivatePostgres(t)
	w := newWorld(t, StoxConfig{DSN: pg.DSN(), Accounts: map[string]string{"bob": "bobpw"}})
	uas := peers.StartSippUASRegistered(t, "message_uas.xml", w.stox.SIPAddr(), "bob@"+sipDomain, "bobpw")
	w.alice.Send(t, "bob@"+compDomain, "before")
	uas.WaitMessages(t, 1, 10*time.Second)

	pg.Stop(t)
	for deadline := time.Now().Add(10 * time.Second); w.stox.Healthy(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("/healthz still 200 with Postgres down")
		}
	}
	id := w.alice.Send(t, "bob@"+compDomain, "during")
	if e := w.alice.NextMessage(t, 20*time.Second); e.Type != "error" || e.ID != id {
		t.Fatalf("with Postgres down: got %s, want an error for %s", e, id)
	}
	sippSend(t, w.stox, "bob", "bobpw", "alice", "localhost", "sip side still works", 202)
	if m := w.alice.NextMessage(t, 10*time.Second); m.Body != "sip side still works" {
		t.Fatalf("got %s", m)
	}

	pg.Start(t)
	w.stox.WaitHealthy(t, 30*time.Second)
	w.alice.Send(t, "bob@"+compDomain, "after")
	ms := uas.WaitMessages(t, 2, 15*time.Second)
	if ms[len(ms)-1].Body != "after" {
		t.Fatalf("after Postgres came back: %v", ms)
	}
	for _, m := range ms {
		if m.Body == "during" {
			t.Errorf("a message answered with an error was delivered too: %v", ms)
		}
	}
}
