#!/usr/bin/env bash
# `make test`: install what the tests need, start the test bed, run every check and test, stop the test bed.
# The test bed is stopped even when a step fails. A failing check or build stops the run; of the two runs of
# tests against the test bed, both run and `make test` fails after them if either failed.
#
# The test bed includes its real node (docs/testbed-node.md) when run as root, as CI does; TESTBED_NODE=0
# leaves it out (a developer without root), and then the tests that need it are skipped, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "make test: '$1' is not installed: $2" >&2; exit 1; }; }
need cargo "install Rust with rustup (1.95 or newer)"

started=$SECONDS
if [[ -z ${TESTBED_NODE:-} ]]; then
	TESTBED_NODE=$([[ $(id -u) == 0 ]] && echo 1 || echo 0)
fi
export TESTBED_NODE
# The test modules whose pods run on the real node.
node_modules=(testbed_node pods_chart pods_orders pods_devices pods_custom)
bash scripts/cargo-lock.sh restore
# shellcheck source=scripts/cargo-env.sh
source scripts/cargo-env.sh
echo "== format and lints"
cargo fmt --check
cargo clippy --workspace --all-targets --locked -- -D warnings
python3 scripts/structure.py --summary src
python3 scripts/structure.py --summary crates/sns-filter/src

echo "== unit tests (no network)"
cargo test --locked --workspace --lib --bins

echo "== test bed"
# The node's tributary image is assembled from this debug build (the binary the integration tests run too).
cargo build --locked --bin tributary
# Stop only if this run started it, so `make test` against a test bed a developer brought up leaves it up.
if [[ -f ${TESTBED_DIR:-target/testbed}/pids/kube-apiserver.pid ]] &&
	kill -0 "$(cat "${TESTBED_DIR:-target/testbed}/pids/kube-apiserver.pid")" 2>/dev/null; then
	echo "test bed already running: reusing it and leaving it up"
	if [[ $TESTBED_NODE == 1 ]] && ! grep -qx "export TESTBED_NODE=1" "${TESTBED_DIR:-target/testbed}/env"; then
		echo "the running test bed has no real node (it was started with TESTBED_NODE=0)"
		TESTBED_NODE=0
	fi
else
	trap 'bash testbed/down.sh' EXIT
fi
bash testbed/up.sh

echo "== tests against the test bed"
# A reused test bed may hold an earlier run's namespaces: remove them first, and this run's after.
bash testbed/clean.sh
node_skips=()
if [[ $TESTBED_NODE != 1 ]]; then
	echo "TESTBED_NODE=$TESTBED_NODE: skipping the tests that need the real node (${node_modules[*]})"
	for module in "${node_modules[@]}"; do node_skips+=(--skip "$module::"); done
fi
# The tests that hold the test bed alone (support::exclusive): timed hand-overs, outages of the emulators,
# loads that would stall the others. Run among the rest, each one would first wait for every running test
# to finish while the threads stood idle; so they run after the rest, one at a time. A test asking for
# the test bed alone in the first run fails, naming this list.
alone=(e2e_devices:: e2e_orders:: faults_outage:: faults_readiness:: operate_leader:: operate_leader_fencing::
	security_endpoint::the_order_endpoint_withstands_the_attack_suite)
# worker_fifo's order test holds it alone only when asked for more than 2,000 messages (docs/benchmarks.md).
if ((${FIFO_MESSAGES:-0} > 2000)); then alone+=(worker_fifo::order::); fi
shared_skips=("${node_skips[@]}")
for test in "${alone[@]}"; do shared_skips+=(--skip "$test"); done
# Each test records how long it waited for and held the test bed (tests/it/support/share.rs).
export TESTBED_TIMES=$PWD/target/test-times.tsv
rm -f "$TESTBED_TIMES"
failed=()
phase=$SECONDS
echo "-- the tests that share the test bed"
TESTBED_PHASE=shared cargo test --locked --test it -- --test-threads 4 "${shared_skips[@]}" ||
	failed+=("tests that share the test bed")
shared_seconds=$((SECONDS - phase))
# The real node's namespaces of failed tests: their pods would still be working. The others stay for a look.
bash testbed/clean.sh --node || failed+=("removing the real node's test namespaces")
phase=$SECONDS
echo "-- the tests that hold it alone, one at a time"
TESTBED_PHASE=alone cargo test --locked --test it -- --test-threads 1 "${alone[@]}" "${node_skips[@]}" ||
	failed+=("tests that hold the test bed alone")
echo "shared tests ${shared_seconds}s, tests alone $((SECONDS - phase))s; the longest (seconds holding the test bed):"
if [[ -s $TESTBED_TIMES ]]; then
	sort -t$'\t' -k4 -rn "$TESTBED_TIMES" | head -8 | awk -F'\t' '{printf "  %6.1f  %s (%s)\n", $4, $1, $2}'
fi
if ((${#failed[@]})); then
	printf 'make test: failed: %s (above)\n' "${failed[@]}" >&2
	exit 1
fi
bash testbed/clean.sh
echo "make test: all passed in $((SECONDS - started))s"
