#!/usr/bin/env bash
# `make bench-controller`: the released controller on the test bed (kube-apiserver, kwok, moto) applying
# N Topics, N Queues and N filtered Subscriptions (SIZES, default "100 300"; the last size again with the
# rate limits lifted), a drift check with a 60 s resync, and the scale runs (SCALE objects, default
# "2000 10000", across 100 namespaces) with their steady-state resync call rate. See bench/controller/bench.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/cargo-lock.sh restore
# shellcheck source=scripts/cargo-env.sh
source scripts/cargo-env.sh
[[ -f target/testbed/env ]] || bash testbed/up.sh
# shellcheck disable=SC1091
source target/testbed/env
kubectl get --raw /readyz >/dev/null || bash testbed/up.sh
cargo build --release --locked --bin tributary 2>&1 | tail -1
kubectl apply --server-side -f crds/tributary.yaml >/dev/null
# Earlier tests' namespaces would be reconciled too (the controller watches all namespaces).
bash testbed/clean.sh
python=$(dirname "$(readlink -f "$(command -v moto_server)")")/python
AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing} \
	nice -n 5 "$python" bench/controller/bench.py
