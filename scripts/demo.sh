#!/usr/bin/env bash
# `make demo`: Tributary as a user meets it on kind, on the test bed's real node (docs/demo.md). Builds
# tributary (debug, static), starts the test bed with its node (TESTBED_NODE=1; the test bed makes the
# node's image from that binary and imports it), installs the chart with `helm install` (controller and webhook
# in pods; values from testbed/node-values.sh), applies both example pipelines and the custom-processor
# pipeline (the Go example processor's image) with `kubectl apply`, posts orders to the order endpoint
# through its Service (`kubectl port-forward`), waits until the workers — pods on the node — have brought
# every order to its final state, sends device telemetry and waits until the device worker has written it
# to Cosmos DB, and shows `kubectl get tributary`, `kubectl logs` of the workers and `tributary tree`.
# Every wait is on a condition with a bound; the demo exits non-zero when something does not happen.
#
# What is still a host process, and why (nothing else is):
#   - the test bed itself (control plane, emulators, the node's kubelet and containerd): docs/testbed-node.md;
#   - the Azure Resource Manager fake (`arm-fake`, the test bed's stand-in for ARM, reached by the
#     controller's pod at the node address) — see "Resource Manager" below;
#   - the clients of the demo: curl-like posting through `kubectl port-forward`, the device telemetry sender
#     (Kafka's Java client) and the catalogue written with boto3.
# The test bed, and so the node with Tributary's pods, stays up when the demo ends (make testbed-down).
# Needs root (the node's bridge, network namespaces, cgroups, iptables).
set -euo pipefail
cd "$(dirname "$0")/.."

demo=target/demo
mkdir -p "$demo"
began=$SECONDS
step() { printf '\n== %s   [%ss]\n' "$*" "$((SECONDS - began))"; }
fail() {
	echo "demo: $*" >&2
	exit 1
}
# run CMD...: show CMD as typed, then run it.
run() {
	printf '$ %s\n' "$*"
	"$@"
}
# wait_until SECONDS WHAT CMD...: run CMD until it succeeds; fail naming WHAT after SECONDS.
wait_until() {
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || fail "$what did not happen within $1 s"
		sleep 0.2 # the poll interval of a bounded wait on the condition above
	done
}
[[ $(id -u) == 0 ]] || fail "make demo runs Tributary in pods on the test bed's real node, which needs root (docs/testbed-node.md)"

# diagnose: when the demo fails with the cluster up, what it looked like, for finding out why. Best effort:
# a kubectl that fails here must not stop the clean-up.
diagnose() {
	[[ -n ${KUBECONFIG:-} ]] || return 0
	{
		kubectl get tributary -A -o wide
		kubectl get pods -A -o wide
		kubectl get events -A --sort-by=.lastTimestamp | tail -n 60
		kubectl describe consumers.tributary.dev -A
		kubectl logs -n tributary-system deployment/tributary --tail=200
		for ns in orders devices; do kubectl logs -n "$ns" -l app.kubernetes.io/name=tributary-worker --all-containers --prefix --tail=40; done
	} >"$demo/diagnostics.txt" 2>&1 || true
	echo "demo: what the cluster looked like then: $demo/diagnostics.txt" >&2
}
pids=()
# stop: on every exit, the demo's own processes (the port-forward) are stopped
# first, whatever else fails; then, after a failure, the diagnostics.
stop() {
	local rc=$?
	set +e
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
	((rc == 0)) || diagnose
}
trap stop EXIT

step "building tributary (debug, static) and the Go example processor's image"
bash scripts/cargo-lock.sh restore
# shellcheck source=scripts/cargo-env.sh
source scripts/cargo-env.sh
cargo build --locked --quiet --bin tributary --example arm-fake
# A copy the demo owns (the build folder may be rebuilt meanwhile), copied only when it changed: the test
# bed assembles the node's image from it (testbed/node-up.sh) and makes the image again only then.
bin=$demo/tributary
cmp -s "$TRIBUTARY_BUILD_DIR/tributary" "$bin" || install -m 0755 "$TRIBUTARY_BUILD_DIR/tributary" "$bin"
install -m 0755 "$TRIBUTARY_BUILD_DIR/examples/arm-fake" "$demo/arm-fake"
echo "  $("$bin" version)"
# The custom processor: the Go example (examples/custom/go), its static binary as the whole image.
read -r processor_archive processor_image < <(bash examples/custom/go/image.sh "$PWD/$demo/ledger.tar")
[[ -n ${processor_image:-} ]] || fail "examples/custom/go/image.sh built no image"
echo "  image $processor_image in $processor_archive"

step "the test bed with its real node"
TESTBED_NODE=1 TESTBED_NODE_BINARY=$PWD/$bin bash testbed/up.sh
# shellcheck source=/dev/null
source "${TESTBED_DIR:-target/testbed}/env"
echo "Kubernetes $(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'):" \
	"three nodes simulated by kwok, and tributary-node, a kubelet on containerd that runs containers"
kubectl get nodes -o wide
# No registry: the processor's image goes into the node's containerd as `kind load image-archive` puts it
# into a kind node's (the env file points ctr at the node's containerd, namespace k8s.io).
run ctr images import "$processor_archive" 2>"$demo/ctr.log" | grep -F "$processor_image" ||
	fail "importing $processor_archive gave no $processor_image ($demo/ctr.log)"

# Every pod of these namespaces runs on the real node (the API server's PodNodeSelector and
# PodTolerationRestriction admission plugins read the annotations), under the `restricted` Pod Security
# Standard, as on a kind node.
real_node_namespace() {
	kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: $1
  labels: {pod-security.kubernetes.io/enforce: restricted}
  annotations:
    scheduler.alpha.kubernetes.io/node-selector: tributary.dev/node=real
    scheduler.alpha.kubernetes.io/defaultTolerations: '[{"key":"tributary.dev/real-node","operator":"Exists","effect":"NoSchedule"}]'
YAML
}
for ns in tributary-system orders devices; do real_node_namespace "$ns"; done

# Resource Manager: Azure has no local emulator of it, so the test bed's fake runs as a host process (the
# one process of the demo's own besides its clients) on the address the test bed keeps free for it; the
# controller's pod reaches it at the node address (TESTBED_NODE_ARM_URL), also as its managed identity. The
# connection string its listKeys hands to the DeviceStream's Secret names the broker's listener at the node
# address, where the worker's pod reaches it.
# It is started as one of the test bed's services (its pid file beside theirs, its log in the test bed's
# logs/arm-fake.log), so it lives as long as the test bed the demo leaves up, and testbed/down.sh stops it.
(source testbed/lib.sh && start arm-fake "$PWD/$demo/arm-fake" "$TESTBED_ARM_LISTEN")
wait_until 10 "the Resource Manager fake answering on $TESTBED_ARM_LISTEN" bash -c ": </dev/tcp/${TESTBED_ARM_LISTEN/://}"

step "helm install tributary charts/tributary (controller and webhook in pods)"
# testbed/node-values.sh: the image the node imported, every emulator at the node address. The controller
# watches every namespace here (the values make it watch only its own, as the tests need), and the workers'
# AWS keys Secret the values name is made in each pipeline's namespace.
bash testbed/node-values.sh values tributary-system >"$demo/values.yaml"
for ns in tributary-system orders devices; do bash testbed/node-values.sh secret "$ns" | kubectl apply -f - >/dev/null; done
# cosmium's certificate is the test bed CA's: the device worker's Cosmos DB client accepts it where the SDK's
# switch for an emulator names its host (AZURE_COSMOS_EMULATOR_HOST), in the workers' environment Secret.
kubectl patch secret -n devices tributary-testbed-aws --type merge \
	-p "{\"stringData\": {\"AZURE_COSMOS_EMULATOR_HOST\": \"$TESTBED_NODE_IP\"}}" >/dev/null
run helm upgrade --install tributary charts/tributary -n tributary-system -f "$demo/values.yaml" \
	--set watchNamespace= --wait --timeout 120s | grep -E '^(NAME|STATUS|REVISION):'
kubectl get pods -n tributary-system -o wide

step "kubectl apply: the order pipeline, the custom-processor pipeline, the device pipeline"
# The order example's Consumers share the table `orders`; the ledger Consumer runs the Go example
# processor's image. A namespace may use them only where its TenantPolicy lists them (docs/security-tenancy.md).
kubectl apply -f - >/dev/null <<POLICY
apiVersion: tributary.dev/v1alpha1
kind: TenantPolicy
metadata: {name: orders}
spec: {dynamodbTables: [orders], images: ["${processor_image%/*}/*"]}
POLICY
# The order endpoint's API key: made once, shown once; the Secret holds only its hash (docs/security-endpoint.md).
api_key=$("$bin" apikey new --name demo 2>"$demo/api-key-entry")
kubectl create secret generic -n orders order-ack-api-keys \
	--from-literal=demo="$(sed -n 's/^  demo: //p' "$demo/api-key-entry")" --dry-run=client -o yaml |
	kubectl apply -f - >/dev/null
run kubectl apply -n orders -f examples/orders/
run kubectl apply -n orders -f examples/custom/go/pipeline-aws.yaml
# Every event of the order pipeline also goes to the ledger: examples/custom/subscription-orders.yaml, aimed
# at the ledger's queue instead of the Python audit example's.
sed -e 's/orders-to-audit/orders-to-ledger/' -e 's/name: audit-events/name: ledger-events/' examples/custom/subscription-orders.yaml |
	kubectl apply -n orders -f -
# The device example with the test bed's storage account and Cosmos DB endpoint at the node address, and
# its account keys.
for secret in devices-storage:"$AZURE_STORAGE_KEY" devices-cosmos:"$COSMOS_KEY"; do
	kubectl create secret generic -n devices "${secret%%:*}" --from-literal=accountKey="${secret#*:}" \
		--dry-run=client -o yaml | kubectl apply -f - >/dev/null
done
for file in examples/devices/*.yaml; do
	echo ---
	sed -e "s|storageAccount: tributarydevices|storageAccount: $AZURE_STORAGE_ACCOUNT|" \
		-e "s|https://tributary-devices.documents.azure.com:443/|$TESTBED_NODE_COSMOS_URL|" "$file"
done | kubectl apply -n devices -f -

step "waiting until every object is Ready (a Consumer is Ready once its minimum of worker pods is)"
for kind in topics deadletters queues subscriptions consumers; do
	kubectl wait -n orders --for=condition=Ready --timeout=120s "$kind.tributary.dev" --all >/dev/null
done
kubectl get tributary -n orders
echo
kubectl get pods -n orders -o wide

# The catalogue: five products in stock, one sold out (written from the host with boto3, as a shop's
# back office would).
moto_python=$(dirname "$(readlink -f "$TESTBED_DIR/bin/moto_server")")/python
"$moto_python" - <<PY
import boto3
table = boto3.resource("dynamodb", endpoint_url="$AWS_ENDPOINT_URL", region_name="$AWS_REGION").Table("orders")
for sku in ["mug", "tee", "cap", "bag", "pen"]:
    table.put_item(Item={"pk": f"STOCK#{sku}", "sk": "STOCK", "available": 1000})
table.put_item(Item={"pk": "STOCK#poster", "sk": "STOCK", "available": 0})
PY

step "kubectl port-forward -n orders service/order-ack-worker :8080 (through the API server and the kubelet)"
# Emptied here, not by the redirection below: that happens in the background child, and the wait that
# follows could read an earlier demo's port before it.
: >"$demo/port-forward.log"
kubectl port-forward -n orders service/order-ack-worker :8080 >>"$demo/port-forward.log" 2>&1 &
pids+=($!)
wait_until 20 "kubectl port-forward listening" grep -q 'Forwarding from 127.0.0.1:' "$demo/port-forward.log"
ingress=$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\) .*/\1/p' "$demo/port-forward.log" | head -1)
count=${DEMO_ORDERS:-40}
echo "  posting $count orders to http://127.0.0.1:$ingress/orders"
API_KEY="$api_key" python3 scripts/demo/orders.py "http://127.0.0.1:$ingress" "$count" 120 "$demo/order-states.json"

step "kubectl logs: the workers in their pods did the work"
# What each processor logs per order (docs/workers.md), from every pod of the Consumer (--prefix names it).
for consumer in order-ack:"order placed" inventory:"stock reserved" shipment:shipped notification:"customer notified"; do
	echo "\$ kubectl logs -n orders -l tributary.dev/consumer=${consumer%%:*} -c worker --prefix   (the last 3 '${consumer#*:}', shortened)"
	kubectl logs -n orders -l "tributary.dev/consumer=${consumer%%:*}" -c worker --prefix --tail=-1 |
		python3 scripts/demo/log_lines.py "${consumer#*:}" 3
done

step "your own processor: the Go example (examples/custom/go) as the ledger Consumer's sidecar, beside its worker"
ledger_queue=$(kubectl get queue.tributary.dev -n orders ledger-events -o jsonpath='{.status.url}')
ledger_dlq=$(kubectl get deadletter.tributary.dev -n orders ledger-dlq -o jsonpath='{.status.url}')
"$moto_python" - "$ledger_queue" <<PY
import sys, boto3
sqs = boto3.client("sqs", endpoint_url="$AWS_ENDPOINT_URL", region_name="$AWS_REGION")
for body in ["not an event", "[1, 2]"]:  # poisoned: not a JSON object
    sqs.send_message(QueueUrl=sys.argv[1], MessageBody=body)
print("  sent 2 poisoned messages (not JSON objects) to the ledger queue")
PY
# Every order event reaches the ledger queue: OrderPlaced and then OrderReserved or OrderCancelled for each
# order, OrderShipped for each shipped one; and the two poisoned messages.
ledger_events=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(2*sum(s.values()) + s.get("SHIPPED", 0) + 2)' "$demo/order-states.json")
python3 scripts/demo/worker_metrics.py orders ledger "$ledger_events" 60
"$moto_python" - "$ledger_dlq" <<PY
import json, sys, boto3
sqs = boto3.client("sqs", endpoint_url="$AWS_ENDPOINT_URL", region_name="$AWS_REGION")
got = sqs.receive_message(QueueUrl=sys.argv[1], MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0)
letters = got.get("Messages", [])
for m in letters:
    reason = json.loads(m["MessageAttributes"]["tributary-dead-letter-reason"]["StringValue"])["reason"]
    print(f"  dead-lettered {m['Body']!r}: {reason.strip()}")
if len(letters) < 2:
    sys.exit(f"demo: {len(letters)} of the 2 poisoned messages in the dead letter")
PY
recorded=$(kubectl logs -n orders -l tributary.dev/consumer=ledger -c processor --tail=-1 | grep -c '"msg":"recorded"' || true)
echo "-- kubectl logs -n orders deployment/ledger-worker -c processor: its JSON lines, $recorded events recorded; the last 3:"
kubectl logs -n orders deployment/ledger-worker -c processor --tail=3 | sed 's/^/  /'

step "the device pipeline: Event Hub (through the Resource Manager fake), Storage Queue dead letter, Cosmos DB"
for kind in devicestreams deadletters consumers; do
	kubectl wait -n devices --for=condition=Ready --timeout=120s "$kind.tributary.dev" --all >/dev/null
done
kubectl get tributary -n devices
kubectl get pods -n devices -o wide
events=${DEMO_EVENTS:-500}
# The hub (a topic on the broker) is the DeviceStream's, as it recorded it: `<namespace>_<name>` by default.
hub=$(kubectl get devicestream -n devices telemetry -o jsonpath='{.status.hubName}')
java -cp "$TESTBED_DIR/kafka-libs/*" scripts/demo/SendTelemetry.java "$hub" "$events" | sed 's/^/  /'
python3 scripts/demo/worker_metrics.py devices device-processor "$events" 120
echo "\$ kubectl logs -n devices -l tributary.dev/consumer=device-processor -c worker --prefix   (the last 3 'dead-lettered', shortened)"
kubectl logs -n devices -l tributary.dev/consumer=device-processor -c worker --prefix --tail=-1 |
	python3 scripts/demo/log_lines.py "dead-lettered" 3

step "a bad object is refused at kubectl apply"
echo "-- by the API server (the CRD's schema), naming the field:"
kubectl apply --dry-run=server -n orders -f - <<'YAML' 2>&1 | sed 's/^/  /' && fail "the API server admitted a broken Queue"
apiVersion: tributary.dev/v1alpha1
kind: Queue
metadata: {name: broken}
spec:
  aws: {visibilityTimeoutSeconds: 50000}
  deadLetter: {ref: {name: orders-dlq}, maxReceiveCount: 0}
YAML
echo "-- by Tributary's webhook (its pods, which the API server reaches through their Service): a filter SNS would refuse"
kubectl apply --dry-run=server -n orders -f - <<'YAML' 2>&1 | sed 's/^/  /' && fail "the webhook admitted a broken filter policy"
apiVersion: tributary.dev/v1alpha1
kind: Subscription
metadata: {name: broken}
spec:
  topicRef: {name: orders}
  queueRef: {name: notifications}
  filter:
    policy: {event: [OrderPlaced], region: [eu-west], delivery: [express], channel: [web], tier: [gold], currency: [EUR]}
YAML

step "both pipelines as \`tributary tree\` shows them (also \`kubectl tributary tree\`: docs/pipeline-view.md)"
for pipeline in orders devices; do
	"$bin" tree -n "$pipeline" | sed 's/^/  /'
done

cat <<MSG

== make demo took $((SECONDS - began)) s. Tributary keeps running in its pods on the test bed's node:
  source $TESTBED_DIR/env
  kubectl get tributary -A                 # Kubernetes API   $TESTBED_APISERVER_URL
  kubectl get pods -A -o wide              # the controller, the webhook and the workers on tributary-node
  helm list -n tributary-system
  AWS SNS/SQS/DynamoDB (moto)              $AWS_ENDPOINT_URL
  Azure Storage Queues (Azurite)           $AZURE_STORAGE_QUEUE_ENDPOINT
  Cosmos DB (cosmium)                      $COSMOS_ENDPOINT
  Kafka, Event Hubs-style SASL_SSL         $KAFKA_BOOTSTRAP
The port-forward stops now; the Resource Manager fake runs with the test bed.
Stop it all with: make testbed-down
MSG
