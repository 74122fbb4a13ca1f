#!/usr/bin/env bash
# `make bench-counts`: the API-server write rate that Consumers' message counts cause (issue 23). Starts the
# test bed if needed, builds tributary, runs the controller with loopback pods allowed (the test bed's pods
# are simulated by kwok: their "workers" are one local process of fake /metrics servers, one port per pod)
# and 100 Consumers, then counts status PATCHes of consumers in the API server's apiserver_request_total.
# COUNT (default 100), WINDOW seconds (default 300), INTERVAL (the controller's
# --throughput-interval-seconds, default 60). See bench/counts/bench.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/cargo-lock.sh restore
# shellcheck source=scripts/cargo-env.sh
source scripts/cargo-env.sh
[[ -f target/testbed/env ]] || bash testbed/up.sh
# shellcheck disable=SC1091
source target/testbed/env
kubectl get --raw /readyz >/dev/null || bash testbed/up.sh
cargo build --locked --bin tributary 2>&1 | tail -1
kubectl apply --server-side -f crds/tributary.yaml >/dev/null
bash testbed/clean.sh
nice -n 5 python3 bench/counts/bench.py
