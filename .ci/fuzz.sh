#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (a count such as
# 200000x, or a duration).
# A failure that left a reproducer under testdata/fuzz is a finding: the
# run fails and prints the fuzzer's output. A failure without one (go1.26's
# coordinator race at a -fuzztime deadline, golang/go#75804: "context
# deadline exceeded") is retried once, then fails too.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-200000x}
for pkg in $($GO list ./...); do
  dir=$($GO list -f '{{.Dir}}' "$pkg")
  for f in $($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz $pkg $f"
    for attempt in 1 2; do
      before=$({ find "$dir/testdata/fuzz/$f" -type f 2>/dev/null || true; } | sort | md5sum)
      if out=$($GO test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1); then
        break
      fi
      after=$({ find "$dir/testdata/fuzz/$f" -type f 2>/dev/null || true; } | sort | md5sum)
      echo "$out"
      if [ "$before" != "$after" ] || [ "$attempt" = 2 ]; then
        echo "fuzz $pkg $f: FAILED (reproducer, if any, in $dir/testdata/fuzz/$f)"
        exit 1
      fi
      echo "fuzz $pkg $f: failed without a reproducer; retrying once"
    done
  done
done
