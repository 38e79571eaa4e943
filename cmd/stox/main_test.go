package main

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "stox.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExampleConfigLoads(t *testing.T) {
	if _, err := loadConfig("../../stox.example.toml"); err != nil {
		t.Fatalf("stox.example.toml: %v", err)
	}
}

// Config errors name the key and the reason; unknown keys are errors.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"[sip]\nlisten = [\"sctp:127.0.0.1:5060\"]\n", `sip.listen[0]: "sctp:127.0.0.1:5060": unknown transport "sctp"`},
		{"[sip]\ndomian = \"x\"\n", "unknown key sip.domian"},
		{"[xmpp]\nserver = \"localhost\"\n", "xmpp.server: want host:port"},
		{"[xmpp]\ndomain = \"bad domain\"\n", `xmpp.domain: "bad domain" is not a domain name`},
		{"[sip]\ntrusted_peers = [\"10.0.0.0/33\"]\n", "sip.trusted_peers[0]"},
		{"[sip]\nnonce_secret = \"short\"\n", "sip.nonce_secret: must be at least 16 bytes"},
		{"[log]\nlevel = \"loud\"\n", `log.level: "loud" is not one of`},
		{"[core]\nack_timeout = \"soon\"\n", "ack_timeout"},
		{"[sip]\nlisten = [\"tls:127.0.0.1:5061\"]\n", "tls listener needs sip.tls_cert and sip.tls_key"},
	} {
		_, err := loadConfig(writeConfig(t, tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: error %v, want it to contain %q", tc.body, err, tc.want)
		}
	}
}

// The account commands keep digests only: the password never reaches the
// accounts file.
func TestAccountCommands(t *testing.T) {
	dir := t.TempDir()
	accounts := filepath.Join(dir, "accounts")
	conf := writeConfig(t, "[store]\naccounts_file = \""+accounts+"\"\n[sip]\ndomain = \"sip.example\"\n")
	stox := func(stdin string, args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(t.Context(), args, strings.NewReader(stdin), &out, &errb)
		return out.String() + errb.String(), err
	}
	if _, err := stox("hunter2\n", "account", "add", "-config", conf, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := stox("x\n", "account", "add", "-config", conf, "bob"); err == nil {
		t.Error("adding bob twice succeeded")
	}
	if _, err := stox("x\n", "account", "add", "-config", conf, "bad:name"); err == nil {
		t.Error("a user with ':' was accepted")
	}
	b, _ := os.ReadFile(accounts)
	if strings.Contains(string(b), "hunter2") {
		t.Fatal("accounts file contains the password")
	}
	// HA1 = MD5("bob:sip.example:hunter2"), RFC 2617 §3.2.2.2.
	sum := md5.Sum([]byte("bob:sip.example:hunter2"))
	if !strings.Contains(string(b), "bob:sip.example:"+hex.EncodeToString(sum[:])+":") {
		t.Fatalf("accounts file lacks bob's HA1: %s", b)
	}
	before := string(b)
	if _, err := stox("new\n", "account", "passwd", "-config", conf, "bob"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(accounts); string(b) == before {
		t.Error("passwd did not change the digest")
	}
	out, err := stox("", "account", "list", "-config", conf)
	if err != nil || strings.TrimSpace(out) != "sip:bob@sip.example" {
		t.Errorf("list: %q %v", out, err)
	}
	if _, err := stox("", "account", "remove", "-config", conf, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := stox("", "account", "remove", "-config", conf, "bob"); err == nil {
		t.Error("removing a missing account succeeded")
	}
	if out, _ := stox("", "account", "list", "-config", conf); strings.TrimSpace(out) != "" {
		t.Errorf("list after remove: %q", out)
	}
}

func TestNewAccountDigests(t *testing.T) {
	// RFC 2617 §3.5: HA1 for Mufasa:testrealm@host.com:Circle Of Life.
	a := newAccount("Mufasa", "testrealm@host.com", "Circle Of Life")
	if a.HA1MD5 != "939e7578ed9e3c518a452acee763bce9" {
		t.Errorf("HA1 MD5 = %s", a.HA1MD5)
	}
	if len(a.HA1SHA256) != 64 {
		t.Errorf("HA1 SHA-256 = %s", a.HA1SHA256)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"version"}, nil, &out, &out); err != nil || !strings.HasPrefix(out.String(), "stox ") || !strings.Contains(out.String(), "schema") {
		t.Errorf("version: %q %v", out.String(), err)
	}
}
