package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"stox.dev/stox/mapping"
	"stox.dev/stox/store"
)

// watchAccountsFile replaces the store's accounts (added, changed and
// removed ones) when the file changes or on a reload signal; a file that
// does not parse keeps the accounts loaded and logs an error.
func TestWatchAccountsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts")
	mem := store.NewMemory()
	write := func(as ...mapping.Account) { writeAccounts(t, path, as...) }
	alice, bob := newAccount("alice", "sip.example", "a"), newAccount("bob", "sip.example", "b")
	write(alice)

	core, logs := observer.New(zapcore.InfoLevel)
	ctx, cancel := context.WithCancel(t.Context())
	reload := make(chan os.Signal, 1)
	done := make(chan error, 1)
	// A poll of an hour: only the start and the reload signal read the file.
	go func() { done <- watchAccountsFile(ctx, path, mem, time.Hour, reload, zap.New(core)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitAccounts(t, mem, "at start", alice)

	write(alice, bob)
	reload <- os.Interrupt
	waitAccounts(t, mem, "after the reload signal", alice, bob)

	must(t, os.WriteFile(path, []byte("bob:sip.example:not-a-digest\n"), 0o600))
	reload <- os.Interrupt
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessage("accounts file not reloaded; keeping the accounts loaded").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no error logged for a malformed accounts file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitAccounts(t, mem, "after a malformed file", alice, bob)

	bob2 := newAccount("bob", "sip.example", "new")
	write(bob2)
	reload <- os.Interrupt
	waitAccounts(t, mem, "after alice's removal and bob's passwd", bob2)
}

// Without a signal, a change of the file is seen at the next poll, even one
// that keeps its size (a new password).
func TestWatchAccountsFilePolls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts")
	mem := store.NewMemory()
	write := func(a mapping.Account) { writeAccounts(t, path, a) }
	old, changed := newAccount("bob", "sip.example", "old"), newAccount("bob", "sip.example", "new")
	write(old)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- watchAccountsFile(ctx, path, mem, 20*time.Millisecond, nil, zap.NewNop()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitAccounts(t, mem, "at start", old)
	write(changed)
	waitAccounts(t, mem, "after passwd", changed)
}

// writeAccounts writes as to the accounts file at path as `stox account` does.
func writeAccounts(t *testing.T, path string, as ...mapping.Account) {
	t.Helper()
	src := store.NewMemory()
	for _, a := range as {
		must(t, src.PutAccount(t.Context(), a))
	}
	must(t, saveAccountsFile(t.Context(), path, src))
}

// waitAccounts waits up to 5 s for the store to hold exactly want (by user
// and digests).
func waitAccounts(t *testing.T, mem *store.Memory, what string, want ...mapping.Account) {
	t.Helper()
	key := func(as []mapping.Account) []string {
		var k []string
		for _, a := range as {
			k = append(k, a.User+":"+a.Realm+":"+a.HA1MD5+":"+a.HA1SHA256)
		}
		slices.Sort(k)
		return k
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := mem.Accounts(t.Context())
		must(t, err)
		if slices.Equal(key(got), key(want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: accounts %v, want %v", what, key(got), key(want))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
