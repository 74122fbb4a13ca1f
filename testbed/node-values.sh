#!/usr/bin/env bash
# Helm values for installing the chart (charts/tributary) on the test bed's real node (TESTBED_NODE=1,
# docs/testbed-node.md), read from the running test bed's env file. Used by tests/it/support/helm.rs and by
# `make demo`:
#
#   testbed/node-values.sh values NAMESPACE >values.yaml     # (the default command)
#   testbed/node-values.sh secret NAMESPACE | kubectl apply -f -
#   helm install tributary charts/tributary -n NAMESPACE -f values.yaml
#
# `values`: the image the node imported (tributary:<version>, never pulled), every emulator at the node
# address (where pods reach them: the same port as on 127.0.0.1), AWS rate limits off, the controller
# watching NAMESPACE only (the release's), a fixed cluster id. Azure Resource Manager and Kafka are set when
# the env file names their pod-side endpoints (the Resource Manager fake itself is started by whoever needs
# it, at TESTBED_ARM_LISTEN). Tracing stays off, since no collector runs unless a test starts one: add
# `--set tracing.otlpEndpoint=$TESTBED_NODE_OTEL_URL` when one listens at TESTBED_OTEL_LISTEN.
# `secret`: the Secret `tributary-testbed-aws` (the emulators' static AWS keys) in NAMESPACE, which the
# values name twice: the controller's aws.credentialsSecret and the workers' workers.envSecret (a Secret
# in each Consumer's namespace; with watchNamespace they are the release's).
#
# Pods run on the real node because NAMESPACE carries the PodNodeSelector/PodTolerationRestriction
# annotations (tests/it/support/node.rs makes such namespaces), not because of these values.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TESTBED_DIR=${TESTBED_DIR:-$ROOT/target/testbed}
SECRET=tributary-testbed-aws

die() {
	printf 'node-values: %s\n' "$*" >&2
	exit 1
}

command=${1:-values}
[[ $command == values || $command == secret ]] || die "usage: $0 [values|secret] NAMESPACE"
namespace=${2:-}
[[ -n $namespace ]] || die "usage: $0 $command NAMESPACE (the release's namespace)"
[[ -f $TESTBED_DIR/env ]] || die "no $TESTBED_DIR/env: start the test bed with TESTBED_NODE=1 testbed/up.sh"
# shellcheck disable=SC1091
source "$TESTBED_DIR/env"
[[ ${TESTBED_NODE:-} == 1 && -n ${TESTBED_NODE_IP:-} ]] ||
	die "the test bed in $TESTBED_DIR has no real node: start it with TESTBED_NODE=1 testbed/up.sh"

# An endpoint as pods reach it: the env file's TESTBED_NODE_<NAME>, else the host's (127.0.0.1) with the
# node address instead, which the node's DNAT serves on the same port.
node_side() {
	local name=$1 host_url=${2:-}
	local var="TESTBED_NODE_$name"
	if [[ -n ${!var:-} ]]; then
		printf '%s' "${!var}"
	elif [[ -n $host_url ]]; then
		printf '%s' "${host_url/127.0.0.1/$TESTBED_NODE_IP}"
	fi
}

if [[ $command == secret ]]; then
	cat <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: $SECRET
  namespace: $namespace
type: Opaque
stringData:
  AWS_ACCESS_KEY_ID: '$AWS_ACCESS_KEY_ID'
  AWS_SECRET_ACCESS_KEY: '$AWS_SECRET_ACCESS_KEY'
  # No instance metadata service here: without it the AWS SDK would ask 169.254.169.254 for a Region.
  AWS_EC2_METADATA_DISABLED: 'true'
EOF
	exit 0
fi

# The image the node imported: tributary:<version>, the version the debug build prints.
image=${TESTBED_NODE_TRIBUTARY_IMAGE:-}
if [[ -z $image ]]; then
	bin=${TRIBUTARY_BIN:-${TRIBUTARY_BUILD_DIR:-}/tributary}
	[[ -x $bin ]] || die "no TESTBED_NODE_TRIBUTARY_IMAGE in the env file and no tributary binary at '$bin'"
	image="tributary:$("$bin" version | awk '{print $NF}')"
fi
repository=${image%:*}
tag=${image##*:}

aws=$(node_side MOTO_URL "$AWS_ENDPOINT_URL")
storage=$(node_side AZURITE_QUEUE_URL "$AZURE_STORAGE_QUEUE_ENDPOINT")
arm=$(node_side ARM_URL)
kafka=$(node_side KAFKA_BOOTSTRAP)

cat <<EOF
# From testbed/node-values.sh for the test bed in $TESTBED_DIR (node address $TESTBED_NODE_IP).
image:
  repository: '$repository'
  tag: '$tag'
  # Imported into the node's containerd: no registry.
  pullPolicy: Never
watchNamespace: '$namespace'
clusterId: tributary-testbed
# Quick to notice changes made behind the controller's back, as the test bed's own controllers do.
resyncSeconds: 30
logFormat: json
aws:
  region: '$AWS_REGION'
  endpoint: '$aws'
  credentialsSecret: $SECRET
  rateLimits: ['*=unlimited']
workers:
  envSecret: $SECRET
# Small: several tests share the one node.
resources:
  requests: {cpu: 10m, memory: 32Mi}
  limits: {memory: 256Mi}
webhook:
  replicaCount: 2
  resources:
    requests: {cpu: 5m, memory: 16Mi}
    limits: {memory: 64Mi}
azure:
  storageQueueEndpoint: '$storage'
EOF
if [[ -n $arm ]]; then
	# The Resource Manager fake is also the controller's managed identity (azure_identity's App Service
	# protocol: IDENTITY_ENDPOINT and IDENTITY_HEADER), so the real credential chain runs.
	cat <<EOF
  credential: managed-identity
  resourceManagerEndpoint: '$arm'
  subscriptionId: 00000000-0000-0000-0000-0000000000aa
  resourceGroup: testbed
EOF
fi
if [[ -n $kafka ]]; then
	# The test bed's CA signed Kafka's certificate and is also the cluster's: the kube-root-ca.crt ConfigMap
	# every namespace gets holds it.
	cat <<EOF
  eventHubs:
    kafkaEndpoint: '$kafka'
    kafkaCaFile: /etc/tributary/testbed-ca/ca.crt
extraVolumes:
  - name: testbed-ca
    configMap: {name: kube-root-ca.crt}
extraVolumeMounts:
  - name: testbed-ca
    mountPath: /etc/tributary/testbed-ca
    readOnly: true
EOF
fi
echo "extraEnv:"
echo "  - {name: AWS_EC2_METADATA_DISABLED, value: 'true'}"
if [[ -n $arm ]]; then
	echo "  - {name: IDENTITY_ENDPOINT, value: '$arm/msi/token'}"
	echo "  - {name: IDENTITY_HEADER, value: tributary-test-bed}"
fi
if [[ -n ${TESTBED_NODE_KUBERNETES_SERVICE_HOST:-} ]]; then
	# Where the `kubernetes` Service does not reach the API server from pods (docs/testbed-node.md).
	echo "  - {name: KUBERNETES_SERVICE_HOST, value: '$TESTBED_NODE_KUBERNETES_SERVICE_HOST'}"
	echo "  - {name: KUBERNETES_SERVICE_PORT, value: '${TESTBED_NODE_KUBERNETES_SERVICE_PORT:-443}'}"
fi
