package store

import (
	"testing"

	"stox.dev/stox/mapping"
)

// ReplaceAccounts swaps the whole set (added, changed and removed accounts)
// or nothing, and every change of the accounts moves AccountsVersion.
func TestMemoryReplaceAccounts(t *testing.T) {
	ctx := t.Context()
	m := NewMemory()
	v := m.AccountsVersion()
	moved := func(what string) {
		t.Helper()
		if nv := m.AccountsVersion(); nv == v {
			t.Errorf("%s: AccountsVersion still %d", what, v)
		} else {
			v = nv
		}
	}
	must(t, m.PutAccount(ctx, mapping.Account{User: "alice", HA1MD5: "1"}))
	moved("put")
	must(t, m.PutAccount(ctx, mapping.Account{User: "bob", HA1MD5: "1"}))
	moved("put")
	must(t, m.ReplaceAccounts(ctx, []mapping.Account{{User: "bob", HA1MD5: "2"}, {User: "carol", HA1MD5: "3"}}))
	moved("replace")
	as, err := m.Accounts(ctx)
	must(t, err)
	if len(as) != 2 || as[0].User != "bob" || as[0].HA1MD5 != "2" || as[1].User != "carol" {
		t.Fatalf("after replace: %+v", as)
	}
	if err := m.ReplaceAccounts(ctx, []mapping.Account{{User: "dave"}, {}}); err == nil {
		t.Fatal("replace with an empty user succeeded")
	}
	if as, _ := m.Accounts(ctx); len(as) != 2 || m.AccountsVersion() != v {
		t.Errorf("a refused replace changed the accounts: %+v", as)
	}
	if _, err := m.DeleteAccount(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	moved("delete")
}
