#!/usr/bin/env bash
# `make chaos`: the full crash-point sweep (tests/it/crash_points.rs) against the test bed: every scenario,
# the controller killed after and before each of its counted calls. Starts the test bed unless one runs
# (and then stops it again). TRIBUTARY_CHAOS_ONLY=redrive,adopt limits the sweep to the scenarios named.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
bash scripts/cargo-lock.sh restore
# shellcheck source=scripts/cargo-env.sh
source scripts/cargo-env.sh
if [[ -f ${TESTBED_DIR:-target/testbed}/pids/kube-apiserver.pid ]] &&
	kill -0 "$(cat "${TESTBED_DIR:-target/testbed}/pids/kube-apiserver.pid")" 2>/dev/null; then
	echo "test bed already running: reusing it and leaving it up"
else
	trap 'bash testbed/down.sh' EXIT
fi
bash testbed/up.sh
TRIBUTARY_CHAOS=full cargo test --locked --test it crash_points:: -- --include-ignored --nocapture --test-threads 2
bash testbed/clean.sh
echo "make chaos: every crash point converged in $((SECONDS - started))s"
