# Gateway: two commands on a fresh Debian 12 machine.
#   make run   installs what is missing, builds (release) and runs the gateway in the foreground
#   make test  unit tests (swift test) and integration tests (pytest, real binary, real upstreams)
SHELL := /bin/bash
DEBS := libev-dev node-llhttp libsqlite3-dev libc-ares-dev libyaml-dev libssl-dev libpcre2-dev libpq-dev
TEST_DEBS := $(DEBS) curl openssl postgresql redis-server chromium chromium-driver
BENCH_DEBS := nginx haproxy wrk
SWIFT_FLAGS ?=
BIN_RELEASE := .build/release/gateway
BIN_DEBUG := .build/debug/gateway

.PHONY: dashboard run build release debug test unit integration deps test-deps bench soak clean stop fuzz fuzz-smoke fuzz-build

deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) || \
	  (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing); fi

test-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	@python3 -c 'import pytest' 2>/dev/null || pip install -q pytest
	@python3 -c 'import selenium' 2>/dev/null || pip install -q selenium

release: deps
	swift build -c release $(SWIFT_FLAGS)

debug: deps
	swift build $(SWIFT_FLAGS)

build: release

run: release
	@mkdir -p servroot
	$(BIN_RELEASE) start --foreground -c conf/gateway.conf -p servroot

stop:
	-$(BIN_RELEASE) stop -c conf/gateway.conf -p servroot

unit: deps
	swift build --build-tests $(SWIFT_FLAGS)
	swift test --skip-build $(SWIFT_FLAGS)

integration: release test-deps
	GATEWAY_BIN=$(CURDIR)/$(BIN_RELEASE) python3 -m pytest -q -p no:cacheprovider Tests/integration

test: unit integration

bench: release
	@missing=""; for p in $(BENCH_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	python3 tools/bench/bench.py --gateway $(CURDIR)/$(BIN_RELEASE)

# 30 minutes of traffic with admin churn, reloads, worker kills and target restarts (issue #13);
# not part of `make test`. SOAK_SECONDS shortens it.
SOAK_SECONDS ?= 1800
soak: release
	python3 tools/soak.py --duration $(SOAK_SECONDS) --gateway $(CURDIR)/$(BIN_RELEASE) --report soak-report.json

# Fuzzing (Fuzz/: a separate package, built with libFuzzer + ASan; never part of `make test`).
#   make fuzz          every target for FUZZ_RUNS executions, one after another
#   make fuzz-smoke    every target for FUZZ_SECONDS seconds (CI smoke)
FUZZ_RUNS ?= 10000000
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?=
FUZZ_FLAGS := -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xcc -fsanitize=fuzzer-no-link,address

fuzz-build: deps
	@# SwiftPM keeps the build plan of a path dependency: drop it so new source files of the main package are seen
	rm -f Fuzz/.build/release.yaml Fuzz/.build/release/description.json
	swift build -c release --package-path Fuzz $(FUZZ_FLAGS)

fuzz: fuzz-build
	Fuzz/run.sh runs $(FUZZ_RUNS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	Fuzz/run.sh time $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The dashboard's files (Sources/GWServer/Dashboard/) are listed for CDashboardAssets by a script (after adding or
# removing one; an edit needs nothing); test_dashboard.py checks it ran.
dashboard:
	python3 tools/dashboard/embed.py

clean:
	rm -rf .build servroot
