#!/usr/bin/env bash
# `make demo`: bring up the local stack and run the example pipelines end to end. Starts the test bed, builds
# tributary, runs the controller and the workers as local processes (the workers read the configuration the
# controller rendered into each Consumer's ConfigMap, as pods would), applies the example pipelines, posts a
# burst of sample orders and prints every order's final state, then sends device telemetry through the
# device pipeline (its Event Hub made through the test bed's ARM fake, whose hubs are topics on the Kafka
# broker) and prints what reached Cosmos DB and the dead letter. A user's own processor (examples/custom/audit.py, a
# Python sidecar) audits every order event and dead-letters poisoned ones with the HTTP status; the test
# bed runs it as a local process from its Deployment's sidecar (kwok nodes run no containers). The
# controller, workers and ARM fake stop
# when the demo ends; the test bed stays up (make testbed-down).
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
cargo build --locked --quiet --example arm-fake
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
	crd/{topics,queues,subscriptions,consumers,devicestreams,deadletters,tenantpolicies}.tributary.dev >/dev/null
# The order example's Consumers share the table `orders`, and the audit Consumer runs the example image,
# which a namespace may use only where its TenantPolicy lists them (docs/security-tenancy.md).
kubectl apply --server-side -f - >/dev/null <<'POLICY'
apiVersion: tributary.dev/v1alpha1
kind: TenantPolicy
metadata: {name: orders}
spec: {dynamodbTables: [orders], images: [registry.example.com/tributary-examples/*]}
POLICY

echo
arm=$((base + 41))
echo "== the test bed's Azure Resource Manager fake on 127.0.0.1:$arm (log: $demo/arm-fake.log)"
"$TRIBUTARY_BUILD_DIR/examples/arm-fake" "127.0.0.1:$arm" >"$demo/arm-fake.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
	(: </dev/tcp/127.0.0.1/$arm) 2>/dev/null && break
	sleep 0.1
done

echo
echo "== tributary controller (log: $demo/controller.log)"
# Its Azure identity is a managed identity whose token endpoint is the fake's (azure_identity's App Service
# protocol), so the real credential chain runs.
TRIBUTARY_AZURE_CREDENTIAL=managed-identity IDENTITY_ENDPOINT="http://127.0.0.1:$arm/msi/token" \
	IDENTITY_HEADER=tributary-test-bed AZURE_RESOURCE_MANAGER_ENDPOINT="http://127.0.0.1:$arm" \
	AZURE_SUBSCRIPTION_ID=00000000-0000-0000-0000-00000000demo TRIBUTARY_AZURE_RESOURCE_GROUP=demo \
	TRIBUTARY_EVENTHUBS_KAFKA_ENDPOINT="$KAFKA_BOOTSTRAP" TRIBUTARY_KAFKA_CA_FILE="$KAFKA_CA_FILE" \
	"$bin" controller --metrics-listen "127.0.0.1:$((base + 30))" --resync-seconds 30 >"$demo/controller.log" 2>&1 &
pids+=($!)
for pipeline in orders devices; do
	kubectl create namespace "$pipeline" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
done
kubectl apply -n orders -f examples/orders/ >/dev/null
kubectl apply -n orders -f examples/custom/pipeline-aws.yaml -f examples/custom/subscription-orders.yaml >/dev/null
# The order endpoint's API key: made once, shown once; the Secret holds only its hash (docs/security-endpoint.md).
api_key=$("$bin" apikey new --name demo 2>"$demo/api-key-entry")
kubectl create secret generic -n orders order-ack-api-keys \
	--from-literal=demo="$(sed -n 's/^  demo: //p' "$demo/api-key-entry")" \
	--dry-run=client -o yaml | kubectl apply -f - >/dev/null
# The device example with the test bed's storage account and Cosmos DB endpoint, and its account keys.
for secret in devices-storage:"$AZURE_STORAGE_KEY" devices-cosmos:"$COSMOS_KEY"; do
	kubectl create secret generic -n devices "${secret%%:*}" --from-literal=accountKey="${secret#*:}" \
		--dry-run=client -o yaml | kubectl apply -f - >/dev/null
done
for file in examples/devices/*.yaml; do
	sed -e "s|storageAccount: tributarydevices|storageAccount: $AZURE_STORAGE_ACCOUNT|" \
		-e "s|https://tributary-devices.documents.azure.com:443/|$COSMOS_ENDPOINT|" "$file" |
		kubectl apply -n devices -f - >/dev/null
done
for kind in topics deadletters queues subscriptions consumers; do
	kubectl wait -n orders --for=condition=Ready --timeout=120s "$kind.tributary.dev" --all >/dev/null
done
kubectl get tributary -n orders
echo
kubectl get deployments -n orders

echo
echo "== the workers, from the configuration in each Consumer's ConfigMap (logs: $demo/*.log)"
port=$((base + 31))
ingress=$((base + 39))
for consumer in order-ack notification inventory shipment; do
	kubectl get configmap -n orders "$consumer-worker" -o jsonpath='{.data.worker\.yaml}' >"$demo/$consumer.yaml"
	if [[ $consumer == order-ack ]]; then
		# A pod reads the API key Secret where it is mounted; here, a folder holding the same entry.
		mkdir -p "$demo/api-keys" && sed -n 's/^  demo: //p' "$demo/api-key-entry" >"$demo/api-keys/demo"
		sed -i "s|/var/run/tributary/api-keys|$demo/api-keys|" "$demo/$consumer.yaml"
	fi
	extra=()
	[[ $consumer == order-ack ]] && extra=(--http-listen "127.0.0.1:$ingress")
	"$bin" worker --config "$demo/$consumer.yaml" --metrics-listen "127.0.0.1:$port" "${extra[@]}" \
		>"$demo/$consumer.log" 2>&1 &
	pids+=($!)
	echo "  $consumer: metrics on 127.0.0.1:$port"
	port=$((port + 1))
done
# The audit Consumer's sidecar, as the process its image runs (examples/custom/audit.py), with the
# environment of the Deployment's `processor` init container and PORT moved to a local port; its worker
# from the ConfigMap, pointed at that port.
sidecar_port=$((base + 43))
kubectl get deployment -n orders audit-worker -o json >"$demo/audit-deployment.json"
kubectl get configmap -n orders audit-worker -o jsonpath='{.data.worker\.yaml}' >"$demo/audit.yaml"
read -r image pod_port sidecar_env < <(python3 -c '
import json, sys
sidecar = json.load(open(sys.argv[1]))["spec"]["template"]["spec"]["initContainers"][0]
env = " ".join(e["name"] + "=" + e["value"] for e in sidecar.get("env", []) if "value" in e)
print(sidecar["image"], sidecar["ports"][0]["containerPort"], env)' "$demo/audit-deployment.json")
[[ $image == registry.example.com/tributary-examples/audit:* ]] || { echo "no local program for $image" >&2; exit 1; }
rm -f "$demo/audit.jsonl"
# shellcheck disable=SC2086 # the NAME=value words of the sidecar's environment
env $sidecar_env PORT="$sidecar_port" HOST=127.0.0.1 AUDIT_LOG="$demo/audit.jsonl" \
	python3 examples/custom/audit.py >"$demo/audit-sidecar.log" 2>&1 &
pids+=($!)
sed -i "s|http://127.0.0.1:$pod_port/|http://127.0.0.1:$sidecar_port/|g" "$demo/audit.yaml"
"$bin" worker --config "$demo/audit.yaml" --metrics-listen "127.0.0.1:$((base + 44))" >"$demo/audit.log" 2>&1 &
pids+=($!)
echo "  audit: the Python sidecar on 127.0.0.1:$sidecar_port, its worker's metrics on 127.0.0.1:$((base + 44))"
# The endpoint serves once it answers 404 for an unknown order (its /healthz is on the metrics port).
for _ in $(seq 1 100); do
	[[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $api_key" \
		"http://127.0.0.1:$ingress/orders/o-none") == 404 ]] && break
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
echo "  without credentials: $(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$ingress/orders")"
xargs -P 8 -I{} -d '\n' curl -sf -w '\n' -X POST -H 'content-type: application/json' \
	-H "Authorization: Bearer $api_key" -d '{}' \
	"http://127.0.0.1:$ingress/orders" <"$demo/orders.jsonl" |
	python3 -c '
# Parallel curls may share a line (a body and its newline are separate writes): read object by object.
import json, re, sys
text, decoder, at = sys.stdin.read(), json.JSONDecoder(), 0
while (start := re.compile(r"\S").search(text, at)) is not None:
    answer, at = decoder.raw_decode(text, start.start())
    print(answer["orderId"])
' >"$demo/order-ids"
echo "  $(wc -l <"$demo/order-ids") accepted (202)"

echo
echo "== waiting for every order to reach its final state"
API_KEY="$api_key" python3 - "$ingress" "$demo/order-ids" "$started" <<'PY'
import json, os, sys, time, urllib.request
port, ids, started = sys.argv[1], open(sys.argv[2]).read().split(), float(sys.argv[3])
final = {"SHIPPED", "RESERVED", "OUT_OF_STOCK"}
def get(i):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/orders/{i}",
                                     headers={"Authorization": f"Bearer {os.environ['API_KEY']}"})
    with urllib.request.urlopen(request) as r:
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
echo "== your own processor: examples/custom/audit.py (Python) beside the audit Consumer's worker"
audit_queue=$(kubectl get queue.tributary.dev -n orders audit-events -o jsonpath='{.status.url}')
audit_dlq=$(kubectl get deadletter.tributary.dev -n orders audit-dlq -o jsonpath='{.status.url}')
"$moto_python" - "$demo/audit.jsonl" "$audit_queue" "$audit_dlq" <<PY
import collections, json, sys, time, boto3
log, queue, dlq = sys.argv[1:4]
sqs = boto3.client("sqs", endpoint_url="$AWS_ENDPOINT_URL", region_name="$AWS_REGION")
for body in ["not an event", "[1, 2]"]:  # poisoned: not a JSON object
    sqs.send_message(QueueUrl=queue, MessageBody=body)
def entries():
    try:
        return [json.loads(line) for line in open(log)]
    except (OSError, ValueError):
        return []
def dlq_depth():
    a = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
    return int(a["Attributes"]["ApproximateNumberOfMessages"])
deadline, last, stable = time.time() + 60, -1, 0
while time.time() < deadline:
    n, depth = len(entries()), dlq_depth()
    stable = stable + 1 if n == last else 0
    last = n
    if depth >= 2 and stable >= 3:
        break
    time.sleep(0.5)
types = collections.Counter(e["type"] for e in entries())
ids = [e["id"] for e in entries()]
print(f"  {len(ids)} order events audited, {len(set(ids))} distinct ce-ids: "
      + ", ".join(f"{n} {t}" for t, n in sorted(types.items())))
got = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
for m in got.get("Messages", []):
    reason = json.loads(m["MessageAttributes"]["tributary-dead-letter-reason"]["StringValue"])["reason"]
    print(f"  dead-lettered {m['Body']!r}: {reason.strip()}")
PY

echo
echo "== the device pipeline: Event Hub (through the ARM fake), Storage Queue dead letter, Cosmos DB"
for kind in devicestreams deadletters consumers; do
	kubectl wait -n devices --for=condition=Ready --timeout=120s "$kind.tributary.dev" --all >/dev/null
done
kubectl get tributary -n devices
kubectl get configmap -n devices device-processor-worker -o jsonpath='{.data.worker\.yaml}' >"$demo/device-processor.yaml"
device_port=$((base + 42))
KAFKA_SASL_PASSWORD="$KAFKA_SASL_PASSWORD" AZURE_COSMOS_KEY="$COSMOS_KEY" AZURE_STORAGE_KEY="$AZURE_STORAGE_KEY" \
	"$bin" worker --config "$demo/device-processor.yaml" --metrics-listen "127.0.0.1:$device_port" \
	>"$demo/device-processor.log" 2>&1 &
pids+=($!)
events=${DEMO_EVENTS:-500}
# The hub (a topic on the broker) is the DeviceStream's, as it recorded it: `<namespace>_<name>` by default.
hub=$(kubectl get devicestream -n devices telemetry -o jsonpath='{.status.hubName}')
java -cp "$TESTBED_DIR/kafka-libs/*" scripts/demo/SendTelemetry.java "$hub" "$events" | sed 's/^/  /'
python3 - "$device_port" "$events" <<'PY'
import sys, time, urllib.request
port, events = sys.argv[1], int(sys.argv[2])
def metrics():
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{")[0]
            out[name] = out.get(name, 0) + float(line.rsplit(" ", 1)[1])
    return out
started, m = time.time(), {}
while time.time() - started < 120:
    m = metrics()
    if m.get("tributary_worker_messages_processed_total", 0) + m.get("tributary_worker_messages_dead_lettered_total", 0) >= events:
        break
    time.sleep(0.5)
print(f"  {int(m.get('tributary_worker_messages_processed_total', 0))} events written to Cosmos DB "
      f"({int(m.get('tributary_worker_sink_writes_total', 0))} upserts), "
      f"{int(m.get('tributary_worker_messages_dead_lettered_total', 0))} malformed ones dead-lettered with the reason, "
      f"{time.time() - started:.1f}s after the last was sent")
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

echo
echo "== Both pipelines as \`tributary tree\` shows them (also \`kubectl tributary tree\`: docs/pipeline-view.md):"
for pipeline in orders devices; do
	"$bin" tree -n "$pipeline" | sed 's/^/  /'
done

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
