package main

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"stox.dev/stox/mapping"
	"stox.dev/stox/store"
)

// accounts is the part of the store the account commands use.
type accounts interface {
	PutAccount(ctx context.Context, a mapping.Account) error
	Account(ctx context.Context, user string) (mapping.Account, bool, error)
	Accounts(ctx context.Context) ([]mapping.Account, error)
	DeleteAccount(ctx context.Context, user string) (bool, error)
}

func accountCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("account: want add, passwd, list or remove")
	}
	verb := args[0]
	fs, path, _, err := configFlags("account "+verb, args[1:], stderr)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	var user string
	switch verb {
	case "add", "passwd", "remove":
		if fs.NArg() != 1 {
			return fmt.Errorf("account %s: want exactly one USER", verb)
		}
		user = fs.Arg(0)
		if err := validUser(user); err != nil {
			return fmt.Errorf("account %s: %w", verb, err)
		}
	case "list":
	default:
		return fmt.Errorf("account: unknown verb %q (want add, passwd, list or remove)", verb)
	}
	st, save, closeStore, err := openAccounts(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore()

	switch verb {
	case "add", "passwd":
		_, exists, err := st.Account(ctx, user)
		if err != nil {
			return fmt.Errorf("account %s %s: %w", verb, user, err)
		}
		if verb == "add" && exists {
			return fmt.Errorf("account add %s: already exists (use passwd)", user)
		}
		if verb == "passwd" && !exists {
			return fmt.Errorf("account passwd %s: no such account", user)
		}
		pw, err := readPassword(stdin)
		if err != nil {
			return fmt.Errorf("account %s %s: %w", verb, user, err)
		}
		a := newAccount(user, cfg.SIP.Domain, pw)
		if err := st.PutAccount(ctx, a); err != nil {
			return fmt.Errorf("account %s %s: %w", verb, user, err)
		}
		return save()
	case "remove":
		ok, err := st.DeleteAccount(ctx, user)
		if err != nil {
			return fmt.Errorf("account remove %s: %w", user, err)
		}
		if !ok {
			return fmt.Errorf("account remove %s: no such account", user)
		}
		return save()
	default: // list
		as, err := st.Accounts(ctx)
		if err != nil {
			return fmt.Errorf("account list: %w", err)
		}
		for _, a := range as {
			fmt.Fprintf(stdout, "sip:%s@%s\n", a.User, a.Realm)
		}
		return nil
	}
}

// newAccount derives the digest secrets; the password itself is dropped
// here and never stored (RFC 7616 §3.4.2, HA1 = H(user:realm:password)).
func newAccount(user, realm, password string) mapping.Account {
	m := md5.Sum([]byte(user + ":" + realm + ":" + password))
	s := sha256.Sum256([]byte(user + ":" + realm + ":" + password))
	return mapping.Account{
		User: user, Realm: realm,
		HA1MD5: hex.EncodeToString(m[:]), HA1SHA256: hex.EncodeToString(s[:]),
		Created: time.Now().UTC(),
	}
}

func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("empty password on stdin")
	}
	return pw, nil
}

// validUser keeps account names to what a digest username and the
// accounts file can carry unambiguously.
func validUser(u string) error {
	if u == "" || len(u) > 64 {
		return fmt.Errorf("user %q: want 1 to 64 characters", u)
	}
	if strings.ContainsAny(u, ":@ \t\r\n\"\\<>") {
		return fmt.Errorf("user %q: must not contain : @ space quote backslash or angle brackets", u)
	}
	return nil
}

// openAccounts opens the configured store for the account commands. With
// no DSN the accounts live in store.accounts_file, loaded into a memory
// store and written back by save.
func openAccounts(ctx context.Context, cfg Config) (st accounts, save func() error, closeFn func(), err error) {
	if cfg.Store.DSN != "" {
		pg, err := store.OpenPostgres(ctx, cfg.Store.DSN, zap.NewNop())
		if err != nil {
			return nil, nil, nil, err
		}
		return pg, func() error { return nil }, pg.Close, nil
	}
	if cfg.Store.AccountsFile == "" {
		return nil, nil, nil, errors.New("accounts need a store: set store.dsn, or store.accounts_file for the in-memory store")
	}
	mem := store.NewMemory()
	if err := loadAccountsFile(ctx, cfg.Store.AccountsFile, mem); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, err
	}
	save = func() error { return saveAccountsFile(ctx, cfg.Store.AccountsFile, mem) }
	return mem, save, func() {}, nil
}

// The accounts file has one account per line: user:realm:ha1-md5:ha1-sha256
// (like Apache's htdigest, plus the SHA-256 digest of RFC 7616).
func loadAccountsFile(ctx context.Context, path string, st accounts) error {
	as, err := readAccountsFile(path)
	if err != nil {
		return err
	}
	for _, a := range as {
		if err := st.PutAccount(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// readAccountsFile parses the whole accounts file; any bad line fails it.
func readAccountsFile(path string) ([]mapping.Account, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("accounts file: %w", err)
	}
	defer f.Close()
	var as []mapping.Account
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.Split(line, ":")
		if len(p) != 4 || p[0] == "" || len(p[2]) != 32 || len(p[3]) != 64 {
			return nil, fmt.Errorf("accounts file %s:%d: want user:realm:ha1-md5:ha1-sha256", path, n)
		}
		as = append(as, mapping.Account{User: p[0], Realm: p[1], HA1MD5: p[2], HA1SHA256: p[3]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("accounts file %s: %w", path, err)
	}
	return as, nil
}

func saveAccountsFile(ctx context.Context, path string, st accounts) error {
	as, err := st.Accounts(ctx)
	if err != nil {
		return err
	}
	sort.Slice(as, func(i, j int) bool { return as[i].User < as[j].User })
	var b strings.Builder
	b.WriteString("# stox SIP accounts: user:realm:ha1-md5:ha1-sha256 (digests only, never passwords)\n")
	for _, a := range as {
		fmt.Fprintf(&b, "%s:%s:%s:%s\n", a.User, a.Realm, a.HA1MD5, a.HA1SHA256)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("accounts file: %w", err)
	}
	return os.Rename(tmp, path)
}
