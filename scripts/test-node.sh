#!/usr/bin/env bash
# `make test-node`: only the tests whose pods run on the test bed's real node (docs/testbed-node.md), for
# work on the node, the chart or the pods: builds the tributary binary (the node's image is assembled from
# it), starts the test bed with the node, runs those modules, and stops the test bed if this run started it.
# `make test` runs the same tests among all the others. Needs root: the node creates a bridge, network
# namespaces, cgroups and iptables rules.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) == 0 ]] || { echo "make test-node: the real node needs root" >&2; exit 1; }
started=$SECONDS
bash scripts/cargo-lock.sh restore
# shellcheck source=scripts/cargo-env.sh
source scripts/cargo-env.sh
cargo build --locked --bin tributary
cargo test --locked --test it --no-run
if [[ -f ${TESTBED_DIR:-target/testbed}/pids/kube-apiserver.pid ]] &&
	kill -0 "$(cat "${TESTBED_DIR:-target/testbed}/pids/kube-apiserver.pid")" 2>/dev/null; then
	echo "test bed already running: reusing it and leaving it up"
else
	trap 'bash testbed/down.sh' EXIT
fi
TESTBED_NODE=1 bash testbed/up.sh

bash testbed/clean.sh
# The same modules scripts/test.sh skips without the node.
filters=()
for module in testbed_node pods_chart pods_orders pods_devices pods_custom; do filters+=("$module::"); done
for filter in "${filters[@]}"; do
	cargo test --locked --test it "$filter" -- --test-threads 2
done
bash testbed/clean.sh
echo "make test-node: all passed in $((SECONDS - started))s"
