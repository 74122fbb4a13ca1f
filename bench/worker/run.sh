#!/usr/bin/env bash
# Worker runtime benchmark (benches/worker.rs): the `tributary worker` binary (no-op processor, and
# processor container delivering to a no-op container over the CloudEvents contract) next to a bare
# aws-sdk receive/delete-batch loop, same queue, same messages, same receivers, cases taking turns over
# several rounds in one run; on ElasticMQ (fast) and on moto (slow, for comparison). Uses the running test
# bed or starts one (and then stops it). The load average is printed with the figures: on a busy machine
# they are the machine's, not the worker's.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/cargo-lock.sh restore
# shellcheck source=scripts/cargo-env.sh
source scripts/cargo-env.sh
dir=${TESTBED_DIR:-target/testbed}
if [[ -f $dir/pids/elasticmq.pid ]] && kill -0 "$(cat "$dir/pids/elasticmq.pid")" 2>/dev/null; then
	echo "using the running test bed"
else
	trap 'bash testbed/down.sh' EXIT
	bash testbed/up.sh
fi
source "$dir/env"
cargo bench --locked --bench worker --no-run
echo "== ElasticMQ ($(uptime))"
BENCH_SQS_ENDPOINT=$ELASTICMQ_ENDPOINT_URL cargo bench --locked --bench worker 2>/dev/null
echo
echo "== moto ($(uptime))"
BENCH_SQS_ENDPOINT=$AWS_ENDPOINT_URL BENCH_MESSAGES=${BENCH_MOTO_MESSAGES:-500} BENCH_ROUNDS=${BENCH_MOTO_ROUNDS:-2} \
	cargo bench --locked --bench worker 2>/dev/null
