# Tributary: the two commands that matter are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help test test-node chaos demo testbed-up testbed-down testbed-clean testbed-install lint structure unit crds image argocd-health fuzz bench bench-controller bench-worker bench-counts

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

test: ## Install what is needed, start the test bed (with its real node when root; TESTBED_NODE=0 leaves it out), run all checks and tests, stop the test bed
	@bash scripts/test.sh

test-node: ## Only the tests whose pods run on the real node (needs root): the binary, the test bed with TESTBED_NODE=1, those modules
	@bash scripts/test-node.sh

chaos: ## The full crash-point sweep: every scenario, the controller killed after and before each of its calls (docs/testbed.md)
	@bash scripts/chaos.sh

demo: ## Bring up the local stack and show it working
	@bash scripts/demo.sh

testbed-install: ## Build and install the test bed components (cached)
	@bash testbed/install.sh

testbed-up: ## Start the test bed on 127.0.0.1 (idempotent); writes target/testbed/env and kubeconfig
	@bash testbed/up.sh

testbed-down: ## Stop exactly the test bed processes that testbed-up started and empty its state (TESTBED_KEEP_STATE=1 keeps it)
	@bash testbed/down.sh

testbed-clean: ## Remove the namespaces tests left in the running test bed
	@bash testbed/clean.sh

lint: ## cargo fmt --check and clippy with warnings as errors
	@bash scripts/cargo-lock.sh restore
	cargo fmt --check
	source scripts/cargo-env.sh && cargo clippy --workspace --all-targets --locked -- -D warnings

structure: ## Check the source's layering (no import cycles, no upward imports, no kind importing another, short functions and files)
	python3 scripts/structure.py src
	python3 scripts/structure.py crates/sns-filter/src

unit: ## Fast unit tests, no network
	@bash scripts/cargo-lock.sh restore
	source scripts/cargo-env.sh && cargo test --locked --workspace --lib --bins

crds: ## Regenerate crds/tributary.yaml (and the chart's copy) from the Rust types
	@bash scripts/cargo-lock.sh restore
	source scripts/cargo-env.sh && cargo run --quiet -- crds > crds/tributary.yaml
	cp crds/tributary.yaml charts/tributary/crds/tributary.yaml

image: ## Build the container image without a container engine: target/image/{rootfs/,tributary.tar}
	@bash scripts/image.sh build

argocd-health: ## Regenerate examples/argocd/argocd-cm-health.yaml from examples/argocd/health.lua
	@bash scripts/argocd-health.sh

fuzz: ## Fuzz the filter-policy parser for FUZZ_SECONDS (default 60); needs a nightly toolchain
	@bash scripts/fuzz.sh

bench: ## Filter engine throughput next to AWS event-ruler, same events and patterns (bench/filter/run.sh)
	@bash bench/filter/run.sh

bench-controller: ## Controller figures on the test bed: order example and 300 Subscriptions to Ready, requests, RSS
	@bash bench/controller/run.sh

bench-counts: ## API-server status writes caused by Consumers' counts, at 100 Consumers (bench/counts/run.sh)
	@bash bench/counts/run.sh

bench-worker: ## Worker runtime (no-op processor, and processor container with a no-op container) next to a bare SDK receive/delete loop, on ElasticMQ and moto
	@bash bench/worker/run.sh
