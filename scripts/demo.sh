#!/usr/bin/env bash
# `make demo`: bring up the local stack and show it working. Until the controller lands this starts the test
# bed, runs a Deployment on the fake nodes, installs the Tributary CRDs and applies the example pipelines
# (accepted and listed, not yet provisioned), and prints how to reach every server.
set -euo pipefail
cd "$(dirname "$0")/.."

bash testbed/up.sh
# shellcheck source=/dev/null
source "${TESTBED_DIR:-target/testbed}/env"

echo
echo "== Kubernetes $(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'), nodes simulated by kwok"
kubectl get nodes
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n demo create deployment hello --image=tributary.invalid/hello:1 --replicas=3 \
	--dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n demo rollout status deployment/hello --timeout=90s
kubectl -n demo get pods -o wide

echo
echo "== The Tributary API: CRDs and the example pipelines"
kubectl apply --server-side -f crds/tributary.yaml >/dev/null
kubectl wait --for=condition=Established --timeout=60s \
	crd/{topics,queues,subscriptions,consumers,devicestreams,deadletters}.tributary.dev >/dev/null
for pipeline in orders devices; do
	kubectl create namespace "$pipeline" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
	kubectl apply -n "$pipeline" -f "examples/$pipeline/" >/dev/null
	kubectl get tributary -n "$pipeline"
done
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

== The test bed is up. In your shell:
  source $TESTBED_DIR/env
  kubectl get nodes                        # Kubernetes API   $TESTBED_APISERVER_URL
  AWS SNS/SQS/DynamoDB (moto)              $AWS_ENDPOINT_URL
  Azure Storage Queues (Azurite)           $AZURE_STORAGE_QUEUE_ENDPOINT
  Cosmos DB (cosmium)                      $COSMOS_ENDPOINT
  Kafka, Event Hubs-style SASL_SSL         $KAFKA_BOOTSTRAP
Stop it with: make testbed-down
MSG
