# One entry point: `make demo` builds everything and runs the demo sweep;
# `make test` runs the whole suite (what CI runs); `make bench` measures.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
CARGO ?= cargo
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
DEMO_STORE := $(CURDIR)/examples/spirals/.labbook
DEMO_PORT ?= 5001
# Tests and scripts find the CLI and the Python package here.
export PATH := $(BIN):$(PATH)
export LABBOOK_BIN := $(CURDIR)/target/release/labbook
# The interpreter with the labbook SDK installed, for tests run from other venvs.
export LABBOOK_PYTHON := $(CURDIR)/$(BIN)/python

.PHONY: all build web demo team-demo test test-rust test-fuzz test-python test-web test-mlflow test-security lint bench bench-mlflow bench-peers bench-scale bench-s3 bench-team fuzz clean

all: build

$(BIN)/.deps: python/requirements-dev.txt
	@echo "==> Python: .venv and the pinned dev tools (pip, first time only)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r python/requirements-dev.txt
	touch $@

# The real `mlflow` client, pinned, in its own environment: the MLflow
# conformance suite and the server benchmark drive labbook with it.
MLFLOW_VENV := $(CURDIR)/.venv-mlflow

$(MLFLOW_VENV)/.deps: tests/mlflow/requirements.txt
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install -q --upgrade pip
	$(MLFLOW_VENV)/bin/python -m pip install -q -r tests/mlflow/requirements.txt
	touch $@

WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/package.json web/vite.config.ts web/tsconfig.json

web/node_modules/.package-lock.json: web/package-lock.json
	@echo "==> Dashboard: npm packages (first time only)"
	cd web && npm ci --no-audit --no-fund

# The dashboard, built before cargo so the binary embeds it.
web/dist/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	@echo "==> Dashboard: vite build"
	cd web && npm run build

web: web/dist/index.html

## build: the labbook binary (with the dashboard) and the Python package, installed into .venv
build: $(BIN)/.deps web/dist/index.html
	@echo "==> Rust: the labbook binary (cargo, release; the first build takes minutes, later ones seconds)"
	$(CARGO) build --release -p labbook-cli
	@echo "==> Python: the labbook extension (maturin, release; minutes the first time)"
	cd python && VIRTUAL_ENV=$(VENV) $(BIN)/maturin develop --release --quiet
	ln -sf $(LABBOOK_BIN) $(BIN)/labbook

## demo: a real sweep (3 learning rates × 2 widths × 3 seeds, a W&B sweep
## file run offline), its analysis and the morning report, then the dashboard
demo: build
	@rm -rf $(DEMO_STORE)
	@echo "\$$ labbook sweep create examples/spirals/sweep.yaml   # 18 runs of examples/spirals/train.py"
	@cd examples/spirals && id=$$(labbook --dir $(DEMO_STORE) sweep create sweep.yaml --project spirals --json | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["id"])') && \
	  echo "\$$ labbook sweep run $$id --workers 2" && \
	  labbook --dir $(DEMO_STORE) sweep run "$$id" --workers 2 2>&1 | grep -E "^labbook: (sweep|trial)" && \
	  echo && echo "\$$ labbook sweep show $$id" && labbook --dir $(DEMO_STORE) sweep show "$$id"
	@echo
	@echo "\$$ labbook ls --project spirals --sort -metrics.val/acc"
	@labbook --dir $(DEMO_STORE) ls --project spirals --sort -metrics.val/acc --limit 18
	@echo
	@echo "\$$ labbook report --project spirals --since 1h"
	@labbook --dir $(DEMO_STORE) report --project spirals --since 1h
	@echo
	@echo "The demo store is $(DEMO_STORE); in another terminal: source .venv/bin/activate && labbook --dir $(DEMO_STORE) ls"
	@echo "The dashboard of the demo project: http://127.0.0.1:$(DEMO_PORT)/p/spirals  (Ctrl-C stops it)"
	@labbook --dir $(DEMO_STORE) ui --port $(DEMO_PORT)

## test: lint, then every Rust, Python, browser, MLflow-client and security test
# Every suite runs and reports even when an earlier one fails (one failure
# must not hide the others' results); the target fails if any suite did.
SUITES := lint test-rust test-fuzz test-python test-web test-mlflow test-security
test:
	@failed=""; \
	for suite in $(SUITES); do \
		$(MAKE) --no-print-directory $$suite || failed="$$failed $$suite"; \
	done; \
	if [ -n "$$failed" ]; then echo "make test: these suites failed:$$failed" >&2; exit 1; fi; \
	echo "make test: every suite passed ($(SUITES))"

test-rust: build
	$(CARGO) test --release
	$(CARGO) test --release -p labbook-server --features client --lib

# The three fuzz targets' checks (fuzz/checks/) on stable, each fed by its
# structure-aware generator for FUZZ_TEST_SECONDS; `make fuzz` runs the same
# checks under libFuzzer on nightly.
FUZZ_TEST_SECONDS ?= 30
test-fuzz: build
	LABBOOK_FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) $(CARGO) test --release -p labbook-store --lib fuzz_budget_ -- --ignored --nocapture
	LABBOOK_FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) $(CARGO) test --release -p labbook-server --lib fuzz_budget_ -- --ignored --nocapture --test-threads 1

# The SDK's remote tests, sync and the roles table again against a team
# database (a throwaway PostgreSQL cluster; CI installs PostgreSQL).
PG_PYTHON_TESTS := python/tests/test_remote.py python/tests/test_sync.py python/tests/test_permissions.py
test-python: build
	$(BIN)/python -m pytest python/tests -q
	LABBOOK_TEST_STORE=postgres $(BIN)/python -m pytest $(PG_PYTHON_TESTS) -q

# The dashboard end to end: Playwright drives Debian's Chromium against the
# real `labbook serve`; screenshots of every page land in web/test-results/.
test-web: build $(MLFLOW_VENV)/.deps
	cd web && LABBOOK_BIN=$(LABBOOK_BIN) PYTHON=$(BIN)/python MLFLOW_PYTHON=$(MLFLOW_VENV)/bin/python npm run test:e2e

# A real S3-protocol server for the tests of artifacts in a bucket: s3s-fs,
# from crates.io, built once into .tools (a few minutes the first time).
TOOLS := $(CURDIR)/.tools
S3S_FS := $(TOOLS)/bin/s3s-fs
export S3S_FS

$(S3S_FS):
	@echo "==> s3s-fs: an S3-protocol server for the tests (cargo install, first time only)"
	$(CARGO) install --quiet --root $(TOOLS) s3s-fs --version 0.14.1 --features binary --locked

# The unchanged `mlflow` client against a fresh `labbook serve`; then the
# suite again with artifact contents in an S3 bucket, and again as a team
# server: runs in a throwaway PostgreSQL cluster, contents in the bucket
# (the crash tests once).
test-mlflow: build $(MLFLOW_VENV)/.deps $(S3S_FS)
	$(MLFLOW_VENV)/bin/python -m pytest tests/mlflow -q -p no:cacheprovider
	CONFORMANCE_ARTIFACTS=s3 $(MLFLOW_VENV)/bin/python -m pytest tests/mlflow -q -p no:cacheprovider \
		--ignore tests/mlflow/test_reliability.py
	CONFORMANCE_STORE=postgres CONFORMANCE_ARTIFACTS=s3 $(MLFLOW_VENV)/bin/python -m pytest tests/mlflow \
		-q -p no:cacheprovider --ignore tests/mlflow/test_reliability.py

lint: $(BIN)/.deps web/node_modules/.package-lock.json
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings
	$(BIN)/ruff check python examples bench deploy web/tests tests
	$(BIN)/ruff format --check python examples bench deploy web/tests tests
	cd web && npm run typecheck

# The security suite's tools (schemathesis), pinned, in their own environment.
SECURITY_VENV := $(CURDIR)/.venv-security

$(SECURITY_VENV)/.deps: tests/security/requirements.txt
	$(PYTHON) -m venv $(SECURITY_VENV)
	$(SECURITY_VENV)/bin/python -m pip install -q --upgrade pip
	$(SECURITY_VENV)/bin/python -m pip install -q -r tests/security/requirements.txt
	touch $@

# The server attacked as a hostile page or client would: the request guard,
# the limits, and schemathesis against docs/openapi.yaml.
test-security: build $(SECURITY_VENV)/.deps
	cd tests/security && $(SECURITY_VENV)/bin/python -m pytest -q

## bench: every figure of the foundation's targets (not part of the tests)
bench: build $(MLFLOW_VENV)/.deps
	@tmp=$$(mktemp -d) && cd $$tmp && { \
	  $(CARGO) bench --manifest-path $(CURDIR)/Cargo.toml -p labbook-store --bench store 2>/dev/null; \
	  LABBOOK_BENCH_BROWSER=1 $(CARGO) bench --manifest-path $(CURDIR)/Cargo.toml -p labbook-server --bench api 2>/dev/null; \
	  $(BIN)/python $(CURDIR)/bench/sdk_bench.py; \
	  $(BIN)/python $(CURDIR)/bench/artifacts_bench.py; \
	  $(BIN)/python $(CURDIR)/bench/replay_bench.py; \
	} | tee $$tmp/raw.jsonl | $(BIN)/python $(CURDIR)/bench/report.py --markdown $(CURDIR)/bench/results/$$(date -u +%F)-targets.md; rm -rf $$tmp
	@echo "bench/results/$$(date -u +%F)-targets.md written; \`python bench/readme_speed.py --write\` puts it in the README"
	@echo
	$(MAKE) bench-mlflow

## bench-scale: labbook's costs as a store grows to 100,000 runs, and over a
## billion points (bench/scale_bench.py; ~7 GB of scratch disk, ~15 min);
## BENCH_SCALE_ARGS="--sizes 1000,10000 --long-runs 100" for a quick one
bench-scale: build
	$(CARGO) build --release -p labbook-store --example scale_store
	$(BIN)/python bench/scale_bench.py --markdown bench/results/$$(date -u +%F)-scale.md $(BENCH_SCALE_ARGS)
	@echo "bench/results/$$(date -u +%F)-scale.md written; \`python bench/readme_speed.py --write\` puts it in the README"

## bench-mlflow: `labbook serve` against `mlflow server`, the same MLflow client code
## on both (~15 min: seeding MLflow with 10,000 runs dominates). Pass
## BENCH_MLFLOW_ARGS="--servers labbook --reuse bench/out/mlflow_server.json" to
## measure labbook again beside an earlier MLflow run.
BENCH_MLFLOW_ARGS ?=
bench-mlflow: build $(MLFLOW_VENV)/.deps
	$(MLFLOW_VENV)/bin/python bench/mlflow_server.py $(BENCH_MLFLOW_ARGS)

## bench-s3: artifacts through `labbook serve --artifacts s3://` and `mlflow
## server --artifacts-destination s3://` into the same s3s-fs (~3 min)
bench-s3: build $(MLFLOW_VENV)/.deps $(S3S_FS)
	$(MLFLOW_VENV)/bin/python -m pip install -q -r bench/s3-requirements.txt
	$(MLFLOW_VENV)/bin/python bench/s3_artifacts_bench.py --markdown bench/results/$$(date -u +%F)-s3.md
## team-demo: a team server on this machine to try: a throwaway PostgreSQL
## cluster, s3s-fs, two replicas behind a round-robin proxy on port 5000
## and an admin account (deploy/team_demo.py); Ctrl-C removes it all
TEAM_DEMO_ARGS ?=
team-demo: build $(S3S_FS)
	$(BIN)/python deploy/team_demo.py $(TEAM_DEMO_ARGS)

## bench-team: the team server, two `labbook serve --store postgresql://`
## replicas against two `mlflow server`s on the same PostgreSQL and s3s-fs:
## 64 clients for 60 s, search over seeded runs, idle memory (~20 min)
BENCH_TEAM_ARGS ?=
bench-team: build $(MLFLOW_VENV)/.deps $(S3S_FS)
	$(MLFLOW_VENV)/bin/python -m pip install -q -r bench/team-requirements.txt
	$(MLFLOW_VENV)/bin/python bench/team_bench.py --markdown bench/results/$$(date -u +%F)-team.md $(BENCH_TEAM_ARGS)
## bench-peers: labbook beside MLflow, W&B (offline), trackio and expman-rs,
## pinned in .venv-peers, and dvc in .venv-dvc: W11 artifacts
## (bench/artifacts_bench.py, bench/results/<date>-w11.md), W1–W7
## (bench/peers.py), W8–W9 (bench-mlflow), W10 (bench/ui_peers.sh), W12
## search beside Optuna (bench/search_bench.py, bench/results/<date>-w12.md), then the
## table in bench/results/<date>.md (~40 min).
PEERS_VENV := $(CURDIR)/.venv-peers
# W12 (bench/search_bench.py): Optuna 5.1 beside labbook's search, pinned.
SEARCH_VENV := $(CURDIR)/.venv-search
$(SEARCH_VENV)/.deps: bench/search-requirements.txt
	$(PYTHON) -m venv $(SEARCH_VENV)
	$(SEARCH_VENV)/bin/pip install -q -r bench/search-requirements.txt
	touch $@

$(PEERS_VENV)/.deps: bench/peers-requirements.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install -q -r bench/peers-requirements.txt
	touch $@

DVC_VENV := $(CURDIR)/.venv-dvc
$(DVC_VENV)/.deps: bench/dvc-requirements.txt
	$(PYTHON) -m venv $(DVC_VENV)
	$(DVC_VENV)/bin/python -m pip install -q --upgrade pip
	$(DVC_VENV)/bin/python -m pip install -q -r bench/dvc-requirements.txt
	touch $@

bench-peers: build $(PEERS_VENV)/.deps $(MLFLOW_VENV)/.deps $(DVC_VENV)/.deps $(SEARCH_VENV)/.deps
	@mkdir -p bench/out
	$(BIN)/python bench/search_bench.py --optuna-python $(SEARCH_VENV)/bin/python --markdown bench/results/$$(date -u +%F)-w12.md --out bench/out/w12.jsonl
	$(BIN)/python bench/artifacts_bench.py --peers-python $(PEERS_VENV)/bin/python --dvc $(DVC_VENV)/bin/dvc --markdown bench/results/$$(date -u +%F)-w11.md > bench/out/w11.jsonl
	$(BIN)/python bench/peers.py --peers-python $(PEERS_VENV)/bin/python --out bench/out/peers.jsonl
	$(MLFLOW_VENV)/bin/python bench/mlflow_server.py $(BENCH_MLFLOW_ARGS)
	bench/ui_peers.sh
	$(BIN)/python bench/peers_report.py
	@echo "\`python bench/readme_speed.py --write\` puts the new headline in the README"

## fuzz: each cargo-fuzz target (fuzz/fuzz_targets) for FUZZ_SECONDS, on the
## nightly toolchain that libFuzzer's instrumentation needs; a crash fails it
## and leaves its input in fuzz/artifacts/TARGET/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := query_parser series_codec mlflow_request
FUZZ_TOOLS := $(CURDIR)/.tools
fuzz:
	@test -x $(FUZZ_TOOLS)/bin/cargo-fuzz || $(CARGO) install --locked cargo-fuzz --version 0.13.1 --root $(FUZZ_TOOLS)
	@mkdir -p fuzz/logs
	@for target in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$target fuzz/seeds/$$target; \
	  dict=""; test -f fuzz/dicts/$$target.dict && dict="-dict=fuzz/dicts/$$target.dict"; \
	  echo "fuzz: $$target for $(FUZZ_SECONDS) s (log: fuzz/logs/$$target.log)"; \
	  if ! PATH=$(FUZZ_TOOLS)/bin:$$PATH cargo +nightly fuzz run --fuzz-dir fuzz $$target \
	      fuzz/corpus/$$target fuzz/seeds/$$target -- \
	      -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$dict > fuzz/logs/$$target.log 2>&1; then \
	    tail -n 30 fuzz/logs/$$target.log; echo "fuzz: $$target FAILED; the input is in fuzz/artifacts/$$target/"; exit 1; \
	  fi; \
	  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" fuzz/logs/$$target.log | sed "s/^/  /"; \
	done

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(MLFLOW_VENV) $(PEERS_VENV) $(DEMO_STORE)
