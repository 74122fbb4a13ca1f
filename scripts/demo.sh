#!/usr/bin/env bash
# `make demo`: bring up the local stack and run the order pipeline end to end. Starts the test bed, builds
# tributary, runs the controller and the four order workers as local processes (the workers read the
# configuration the controller rendered into each Consumer's ConfigMap, as pods would), applies the
# example pipelines, posts a burst of sample orders and prints every order's final state. The controller
# and workers stop when the demo ends; the test bed stays up (make testbed-down).
set -euo pipefail
cd "$(dirname "$0")/.."

bash testbed/up.sh
# shellcheck source=/dev/null
source "${TESTBED_DIR:-target/testbed}/env"
base=$(cat "$TESTBED_DIR/port-base")
demo=target/demo
mkdir -p "$demo"
bash scripts/cargo-lock.sh restore
# shellcheck source=scripts/cargo-env.sh
source scripts/cargo-env.sh
echo "== building tributary"
cargo build --locked --quiet
bin=$TRIBUTARY_BUILD_DIR/tributary

pids=()
stop() {
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT

echo
echo "== Kubernetes $(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'), nodes simulated by kwok"
kubectl get nodes
kubectl apply --server-side -f crds/tributary.yaml >/dev/null
kubectl wait --for=condition=Established --timeout=60s \
	crd/{topics,queues,subscriptions,consumers,devicestreams,deadletters}.tributary.dev >/dev/null

echo
echo "== tributary controller (log: $demo/controller.log)"
"$bin" controller --metrics-listen "127.0.0.1:$((base + 30))" --resync-seconds 30 >"$demo/controller.log" 2>&1 &
pids+=($!)
for pipeline in orders devices; do
	kubectl create namespace "$pipeline" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
	kubectl apply -n "$pipeline" -f "examples/$pipeline/" >/dev/null
done
for kind in topics deadletters queues subscriptions consumers; do
	kubectl wait -n orders --for=condition=Ready --timeout=120s "$kind.tributary.dev" --all >/dev/null
done
kubectl get tributary -n orders
echo
kubectl get deployments -n orders
echo
echo "(the devices pipeline waits for the Azure provider:)"
kubectl get tributary -n devices

echo
echo "== the workers, from the configuration in each Consumer's ConfigMap (logs: $demo/*.log)"
port=$((base + 31))
ingress=$((base + 39))
for consumer in order-ack notification inventory shipment; do
	kubectl get configmap -n orders "$consumer-worker" -o jsonpath='{.data.worker\.yaml}' >"$demo/$consumer.yaml"
	extra=()
	[[ $consumer == order-ack ]] && extra=(--http-listen "127.0.0.1:$ingress")
	"$bin" worker --config "$demo/$consumer.yaml" --metrics-listen "127.0.0.1:$port" "${extra[@]}" \
		>"$demo/$consumer.log" 2>&1 &
	pids+=($!)
	echo "  $consumer: metrics on 127.0.0.1:$port"
	port=$((port + 1))
done
# The endpoint serves once it answers 404 for an unknown order (its /healthz is on the metrics port).
for _ in $(seq 1 100); do
	[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ingress/orders/o-none") == 404 ]] && break
	sleep 0.2
done

# The catalogue: five products in stock, one sold out.
moto_python=$(dirname "$(readlink -f "$TESTBED_DIR/bin/moto_server")")/python
"$moto_python" - <<PY
import boto3
table = boto3.resource("dynamodb", endpoint_url="$AWS_ENDPOINT_URL", region_name="$AWS_REGION").Table("orders")
for sku in ["mug", "tee", "cap", "bag", "pen"]:
    table.put_item(Item={"pk": f"STOCK#{sku}", "sk": "STOCK", "available": 1000})
table.put_item(Item={"pk": "STOCK#poster", "sk": "STOCK", "available": 0})
PY

count=${DEMO_ORDERS:-40}
echo
echo "== posting $count orders to http://127.0.0.1:$ingress/orders"
run=$(date +%s)
skus=(mug tee cap bag pen)
deliveries=(standard express standard pickup standard)
for i in $(seq 0 $((count - 1))); do
	items="{\"sku\":\"${skus[$((i % 5))]}\",\"quantity\":$((1 + i % 3)),\"unitPriceCents\":1500}"
	((i % 7 == 3)) && items="$items,{\"sku\":\"poster\",\"quantity\":1,\"unitPriceCents\":900}"
	printf '{"customerId":"c-%d","items":[%s],"region":"eu-west","delivery":"%s","idempotencyKey":"demo-%s-%d"}\n' \
		"$((i % 9))" "$items" "${deliveries[$((i % 5))]}" "$run" "$i"
done >"$demo/orders.jsonl"
started=$(date +%s.%N)
xargs -P 8 -I{} -d '\n' curl -sf -w '\n' -X POST -H 'content-type: application/json' -d '{}' \
	"http://127.0.0.1:$ingress/orders" <"$demo/orders.jsonl" |
	python3 -c 'import json,sys; [print(json.loads(l)["orderId"]) for l in sys.stdin if l.strip()]' \
		>"$demo/order-ids"
echo "  $(wc -l <"$demo/order-ids") accepted (202)"

echo
echo "== waiting for every order to reach its final state"
python3 - "$ingress" "$demo/order-ids" "$started" <<'PY'
import json, sys, time, urllib.request
port, ids, started = sys.argv[1], open(sys.argv[2]).read().split(), float(sys.argv[3])
final = {"SHIPPED", "RESERVED", "OUT_OF_STOCK"}
def get(i):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/orders/{i}") as r:
        return json.load(r)
orders = {}
deadline = time.time() + 180
while time.time() < deadline:
    orders = {i: get(i) for i in ids}
    # Pickup orders end RESERVED; the others go on to SHIPPED unless out of stock.
    done = [o for o in orders.values() if o["state"] in final and
            (o["state"] != "RESERVED" or o["placed"]["delivery"] == "pickup")]
    if len(done) == len(ids):
        break
    time.sleep(1)
took = time.time() - started
print(f"{'order':<24} {'delivery':<9} {'items':<22} {'state':<13} {'tracking':<16} notified")
for i, o in orders.items():
    items = ",".join(f"{it['sku']}x{it['quantity']}" for it in o["placed"]["items"])
    print(f"{i:<24} {o['placed']['delivery']:<9} {items:<22} {o['state']:<13} {o.get('trackingId', '-'):<16} {','.join(o['notifications'])}")
states = {}
for o in orders.values():
    states[o["state"]] = states.get(o["state"], 0) + 1
print(f"\n{len(ids)} orders in {took:.1f}s: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
PY

echo
echo "== A bad object is refused by the API server, naming the field:"
kubectl apply -n orders -f - <<'YAML' 2>&1 | sed 's/^/  /' || true
apiVersion: tributary.dev/v1alpha1
kind: Queue
metadata: {name: broken}
spec:
  aws: {visibilityTimeoutSeconds: 50000}
  deadLetter: {ref: {name: orders-dlq}, maxReceiveCount: 0}
YAML

cat <<MSG

== The test bed is up (the controller and workers stop now). In your shell:
  source $TESTBED_DIR/env
  kubectl get tributary -A                 # Kubernetes API   $TESTBED_APISERVER_URL
  AWS SNS/SQS/DynamoDB (moto)              $AWS_ENDPOINT_URL
  SQS (ElasticMQ)                          $ELASTICMQ_ENDPOINT_URL
  Azure Storage Queues (Azurite)           $AZURE_STORAGE_QUEUE_ENDPOINT
  Cosmos DB (cosmium)                      $COSMOS_ENDPOINT
  Kafka, Event Hubs-style SASL_SSL         $KAFKA_BOOTSTRAP
Stop it with: make testbed-down
MSG
