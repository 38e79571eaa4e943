# stox — common tasks. `make test` is the one command CI runs.
GO        ?= go
STATICCHECK_VERSION ?= v0.8.2
# A count, not a duration: with -fuzztime 10s, go1.26's fuzz coordinator
# fails at the deadline now and then with "context deadline exceeded" and
# no input (golang/go#75804, fixed in go1.27). ≈ 2 min for all targets here.
FUZZTIME  ?= 200000x
PKGS      := ./...

.PHONY: all build test peers lint unit conformance conformance-ejabberd fuzz bench load load-calls clean run

all: build

build:
	$(GO) build -o bin/stox ./cmd/stox

run: build
	./bin/stox serve -config stox.example.toml -dev

# Everything CI checks: peers installed and started, lint, the race-enabled
# unit and conformance tests against real peers, and a short fuzz pass.
test: peers lint fuzz unit conformance-ejabberd

peers:
	bash .ci/install-peers.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# The conformance suite again with ejabberd as the XMPP server (the matrix
# already covers both; TestHostileXMLFromXMPP is Prosody-only: ejabberd
# closes the component stream on 5,000 nested elements; docs/architecture.md).
conformance-ejabberd:
	STOX_XMPP_SERVER=ejabberd $(GO) test -count=1 -timeout 20m -skip 'TestMatrix|TestHostileXMLFromXMPP' ./conformance/

# The conformance suite and interop matrix against real peers; writes the
# report conformance/report/index.html and report.md (failing cases keep
# their transcripts in conformance/report/transcripts/).
conformance:
	$(GO) run ./conformance/report -- -race -timeout 20m

# Each fuzz target runs briefly (FUZZTIME); run longer with FUZZTIME=10m.
# (A duration may hit golang/go#75804; .ci/fuzz.sh retries a failure that
# left no reproducer once.)
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash .ci/fuzz.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf bin

# Load harness (docs/perf.md): Prosody + stox + sipp on 127.0.0.1, about 6
# minutes: messages/s and latency both ways (conformance/report/load.csv and
# load.svg), then presence fan-out to 1,000 watchers (fanout.csv).
load:
	$(GO) build -o /tmp/stox-load ./cmd/stox && $(GO) run ./conformance/load -sweep
	@test -s conformance/report/fanout.csv || echo "date,benchmark,ms_to_last,notifies_per_s" > conformance/report/fanout.csv
	$(GO) test -run '^$$' -bench 'Fanout' -benchtime 5x ./presence ./sip | tee /dev/stderr | \
	  awk -v d="$$(date -u +%FT%TZ)" '/^Benchmark.*Fanout/ { print d "," $$1 "," $$5 "," $$7 }' >> conformance/report/fanout.csv

# Call load (docs/perf.md, "Calls"): Prosody + stox + sipp and an RTP echo
# on 127.0.0.1; pion callers ramp to 50, 100, 200, 500 concurrent calls
# (setups/s, loss, round-trip time per packet, stox CPU per call); then the
# same ramp through rtpengine (Debian rtpengine-daemon, userspace) as the
# reference, and the callers against an in-process pion echo without any
# relay as the baseline. Rows go to conformance/report/calls.csv. Not part
# of `make test`.
load-calls:
	$(GO) build -o /tmp/stox-load ./cmd/stox && $(GO) build -o /tmp/stox-callload ./conformance/load
	/tmp/stox-callload -mode calls -stox /tmp/stox-load -calls 50,100,200,500
	/tmp/stox-callload -mode calls -call-rtpengine -calls 50,100,200,500
	/tmp/stox-callload -mode calls -call-direct -calls 50,100,200
