#!/usr/bin/env bash
# `make test-node`: the tests of the test bed's real node (docs/testbed-node.md). Builds the image (`make
# image`; TESTBED_NODE_IMAGE=ARCHIVE uses an archive built before), starts the test bed with the node, runs
# tests/it/testbed_node.rs (the `testbed-node` feature), and stops the test bed if this run started it.
# Needs root: the node creates a bridge, network namespaces, cgroups and iptables rules.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) == 0 ]] || { echo "make test-node: the real node needs root" >&2; exit 1; }
started=$SECONDS
if [[ -z ${TESTBED_NODE_IMAGE:-} ]]; then
	bash scripts/image.sh build
	export TESTBED_NODE_IMAGE=$PWD/target/image/tributary.tar
fi
if [[ -f ${TESTBED_DIR:-target/testbed}/pids/kube-apiserver.pid ]] &&
	kill -0 "$(cat "${TESTBED_DIR:-target/testbed}/pids/kube-apiserver.pid")" 2>/dev/null; then
	echo "test bed already running: reusing it and leaving it up"
else
	trap 'bash testbed/down.sh' EXIT
fi
TESTBED_NODE=1 bash testbed/up.sh

bash scripts/cargo-lock.sh restore
# shellcheck source=scripts/cargo-env.sh
source scripts/cargo-env.sh
bash testbed/clean.sh
cargo test --locked --features testbed-node --test it testbed_node:: -- --test-threads 2
bash testbed/clean.sh
echo "make test-node: all passed in $((SECONDS - started))s"
