#!/usr/bin/env bash
# `make demo`: bring up the local stack and show it working. Until the operator lands this starts the test
# bed, runs a Deployment on the fake nodes, and prints how to reach every server; the example pipelines join
# here as the controller and workers arrive.
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
