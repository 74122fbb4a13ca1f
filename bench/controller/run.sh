#!/usr/bin/env bash
# Controller benchmark: the released `tributary controller` binary against the test bed (kube-apiserver and
# moto), in a fresh namespace. Prints:
#   - time from `kubectl apply` of the order example (Topic, DeadLetter, Queues, Subscriptions) to all Ready;
#   - for SUBSCRIPTIONS Subscriptions (default 300) with their Queues (one each) and Topics (one per 10
#     Subscriptions, the fan-out of a real topic): time to all Ready, reconciles, API-server requests and
#     AWS calls per object;
#   - the controller's RSS at idle and with those objects.
# Then deletes everything (deletionPolicy Delete, so moto is emptied too) and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
subscriptions=${SUBSCRIPTIONS:-300}
topics=$(((subscriptions + 9) / 10))

bash scripts/cargo-lock.sh restore
# shellcheck source=scripts/cargo-env.sh
source scripts/cargo-env.sh
[[ -f target/testbed/env ]] || bash testbed/up.sh
# shellcheck disable=SC1091
source target/testbed/env
kubectl get --raw /readyz >/dev/null || bash testbed/up.sh
cargo build --release --locked --bin tributary 2>&1 | tail -1
kubectl apply --server-side -f crds/tributary.yaml >/dev/null

ns=bench-ctrl-$(date +%s)
kubectl create namespace "$ns" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=target/bench/controller-$ns.log
mkdir -p target/bench
"$TRIBUTARY_RELEASE_DIR/tributary" controller --metrics-listen "127.0.0.1:$port" --watch-namespace "$ns" \
	--leader-election-namespace "$ns" --identity bench >"$log" 2>&1 &
controller=$!
cleanup() {
	kubectl delete --namespace "$ns" --wait=true --timeout=300s \
		subscriptions.tributary.dev,queues.tributary.dev,deadletters.tributary.dev,topics.tributary.dev --all \
		>/dev/null 2>&1 || echo "bench: objects in $ns were not all deleted (see $log)" >&2
	kill "$controller" 2>/dev/null || true
	wait "$controller" 2>/dev/null || true
	kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

until curl -fs "127.0.0.1:$port/readyz" >/dev/null; do
	kill -0 "$controller" || { cat "$log" >&2; exit 1; }
	sleep 0.2
done
rss() { awk '/^VmRSS/ {printf "%.0f MiB", $2 / 1024}' "/proc/$controller/status"; }
idle_rss=$(rss)

# Sum of a Prometheus counter family, optionally only the series whose labels match a regex.
metric_sum() { # text family [label-regex]
	awk -v family="$2" -v match_labels="${3:-}" '
		index($0, family) == 1 && (match_labels == "" || $0 ~ match_labels) { sum += $NF }
		END { printf "%d", sum }' <<<"$1"
}
controller_metrics() { curl -fs "127.0.0.1:$port/metrics"; }
# What is asked of the API server in our group, Events and Leases: the controller's requests, plus this
# script's own apply and polling, which are subtracted (nothing else uses them on the test bed).
controller_requests() { kubectl get --raw /metrics | grep -E '^apiserver_request_total\{' |
	grep -E 'group="tributary.dev"|resource="events"|resource="leases"'; }
apiserver_requests() { metric_sum "$(controller_requests)" 'apiserver_request_total{'; }

# Seconds until every object of the given kinds in the namespace is Ready=True.
# Counts its polls in `polls`: each is one LIST per kind.
polls=0
wait_ready() { # expected-count
	local start=$SECONDS ready
	while :; do
		polls=$((polls + 1))
		ready=$(kubectl get --namespace "$ns" topics.tributary.dev,queues.tributary.dev,deadletters.tributary.dev,subscriptions.tributary.dev \
			-o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$' || true)
		((ready >= $1)) && break
		((SECONDS - start < 600)) || { echo "bench: only $ready of $1 Ready after 600 s (see $log)" >&2; exit 1; }
		sleep 0.5
	done
}

since() { awk -v start="$1" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - start }'; }

# 1. The order example.
start=$(date +%s.%N)
kubectl apply --namespace "$ns" -f examples/orders/00-topic.yaml -f examples/orders/01-dead-letter.yaml \
	-f examples/orders/02-queue-inventory.yaml -f examples/orders/02-queue-notifications.yaml \
	-f examples/orders/02-queue-shipments.yaml -f examples/orders/03-subscriptions.yaml >/dev/null
wait_ready 8
orders_seconds=$(since "$start")

# 2. Many Subscriptions, each with its Queue, ten per Topic.
manifest=target/bench/controller-$ns.yaml
: >"$manifest"
for ((t = 0; t < topics; t++)); do
	printf 'apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata: {name: topic-%d}\nspec: {provider: aws, aws: {}}\n---\n' "$t" >>"$manifest"
done
for ((s = 0; s < subscriptions; s++)); do
	printf 'apiVersion: tributary.dev/v1alpha1\nkind: Queue\nmetadata: {name: queue-%d}\nspec: {provider: aws, aws: {}}\n---\n' "$s" >>"$manifest"
	printf 'apiVersion: tributary.dev/v1alpha1\nkind: Subscription\nmetadata: {name: sub-%d}\nspec:\n  topicRef: {name: topic-%d}\n  queueRef: {name: queue-%d}\n  filter:\n    policy: {event: [OrderPlaced], store: [store-%d]}\n---\n' \
		"$s" $((s % topics)) "$s" "$s" >>"$manifest"
done
objects=$((topics + 2 * subscriptions))
reconciles_before=$(metric_sum "$(controller_metrics)" 'tributary_reconciles_total{')
calls_before=$(metric_sum "$(controller_metrics)" 'tributary_cloud_calls_total{')
controller_requests >"target/bench/controller-$ns.requests-before"
requests_before=$(apiserver_requests)
polls=0
start=$(date +%s.%N)
# Server-side apply: one request per object.
kubectl apply --server-side --namespace "$ns" -f "$manifest" >/dev/null
wait_ready $((objects + 8))
many_seconds=$(since "$start")
sleep 5 # let the last status writes and requeues settle before counting
loaded_rss=$(rss)
reconciles=$(($(metric_sum "$(controller_metrics)" 'tributary_reconciles_total{') - reconciles_before))
calls=$(($(metric_sum "$(controller_metrics)" 'tributary_cloud_calls_total{') - calls_before))
requests=$(($(apiserver_requests) - requests_before - objects - 4 * polls))
errors=$(metric_sum "$(controller_metrics)" 'tributary_reconcile_errors_total{')
# The raw figures, for a closer look: by kind, operation, verb and resource.
controller_metrics >"target/bench/controller-$ns.metrics"
controller_requests >"target/bench/controller-$ns.requests-after"

per() { awk -v n="$1" -v d="$objects" 'BEGIN { printf "%.1f", n / d }'; }
# Reconcile failures by reason: a Subscription applied before its Queue waits (DependencyNotReady).
reasons=$(controller_metrics | awk 'index($0, "tributary_reconcile_errors_total{") == 1 {
	match($0, /reason="[^"]*"/); sum[substr($0, RSTART + 8, RLENGTH - 9)] += $NF }
	END { for (k in sum) printf "%s %d, ", k, sum[k] }')
echo
echo "controller benchmark ($(nproc) cores; test bed: kube-apiserver + moto)"
printf '%-56s %s\n' "order example: apply → all 8 Ready" "$orders_seconds s"
printf '%-56s %s\n' "$subscriptions Subscriptions + $subscriptions Queues + $topics Topics → all Ready" "$many_seconds s"
printf '%-56s %s\n' "reconciles per object" "$(per "$reconciles")"
printf '%-56s %s\n' "API-server requests per object" "$(per "$requests")"
printf '%-56s %s\n' "AWS calls per object" "$(per "$calls")"
printf '%-56s %s\n' "reconcile failures (whole run)" "$errors (${reasons%, })"
printf '%-56s %s\n' "controller RSS idle / with $((objects + 8)) objects" "$idle_rss / $loaded_rss"
