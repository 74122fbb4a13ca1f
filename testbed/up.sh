#!/usr/bin/env bash
# Starts the test bed on 127.0.0.1 and waits until every server answers:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (3 fake nodes),
#   moto (SNS, SQS, DynamoDB), ElasticMQ (a second, fast SQS with message-move tasks), Azurite (queues), cosmium (Cosmos DB), Apache Kafka (KRaft, SASL_SSL/PLAIN
#   like the Event Hubs Kafka endpoint).
# Writes $TESTBED_DIR/env (source it) and $TESTBED_DIR/kubeconfig. Running it again while the test bed is
# up only re-checks readiness. Stop with testbed/down.sh.
source "$(dirname "$0")/lib.sh"

# testbed/service.sh starts one stopped service through this script, with everything installed already.
[[ ${TESTBED_SKIP_INSTALL:-0} == 1 ]] || bash "$TESTBED_SRC/install.sh"
need openssl "openssl is required to make the test bed's certificates"
need curl "curl is required to check readiness"

PKI="$TESTBED_DIR/pki"
KUBECONFIG_FILE="$TESTBED_DIR/kubeconfig"
export PATH="$TESTBED_BIN:$PATH"
mkdir -p "$PKI" "$TESTBED_DIR/logs" "$TESTBED_DIR/pids"
if is_running kube-apiserver && [[ -f $TESTBED_DIR/port-base && $(cat "$TESTBED_DIR/port-base") != "$TESTBED_PORT_BASE" ]]; then
	die "the test bed in $TESTBED_DIR is running on port base $(cat "$TESTBED_DIR/port-base"), not $TESTBED_PORT_BASE; stop it first (make testbed-down)"
fi
echo "$TESTBED_PORT_BASE" >"$TESTBED_DIR/port-base"

# The real node's settings (its address names the emulators' certificates too).
if [[ ${TESTBED_NODE:-0} == 1 ]]; then
	source "$TESTBED_SRC/node-lib.sh"
fi

# --- Certificates and credentials (made once per test bed folder) -----------------------------------------
# cert NAME CN: a serving certificate for 127.0.0.1/localhost signed by the test bed CA, and with the real
# node for its address too (pods reach the emulators there): one made without that address is made again.
cert() {
	local san="IP:127.0.0.1,DNS:localhost"
	[[ ${TESTBED_NODE:-0} == 1 ]] && san+=",IP:$NODE_IP"
	if [[ -f $PKI/$1.crt ]]; then
		[[ ${TESTBED_NODE:-0} != 1 ]] && return 0
		openssl x509 -in "$PKI/$1.crt" -noout -ext subjectAltName | grep -qw "IP Address:$NODE_IP" && return 0
	fi
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$PKI/$1.key" -out "$PKI/$1.csr" 2>/dev/null
	openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 365 \
		-extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth' "$san") \
		-out "$PKI/$1.crt" 2>/dev/null
}
if [[ ! -f $PKI/ca.crt ]]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=tributary-testbed-ca \
		-keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
fi
cert apiserver kube-apiserver
cert kafka kafka
cert cosmos cosmos
[[ -f $PKI/sa.key ]] || {
	openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
	openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}
# Kafka reads a PEM key store: unencrypted PKCS#8 key followed by the certificate chain.
[[ -f $PKI/kafka-keystore.pem && ! $PKI/kafka.crt -nt $PKI/kafka-keystore.pem ]] || cat "$PKI/kafka.key" "$PKI/kafka.crt" >"$PKI/kafka-keystore.pem"

# Static tokens: admin and the controller-manager in system:masters (without per-controller service
# accounts it needs every controller's rights); the scheduler through its bootstrap RBAC binding.
if [[ ! -f $TESTBED_DIR/tokens.csv ]]; then
	for who in admin kcm scheduler; do printf '%s' "$(openssl rand -hex 16)" >"$TESTBED_DIR/$who.token"; done
	{
		echo "$(cat "$TESTBED_DIR/admin.token"),admin,uid-admin,\"system:masters\""
		echo "$(cat "$TESTBED_DIR/kcm.token"),system:kube-controller-manager,uid-kcm,\"system:masters\""
		echo "$(cat "$TESTBED_DIR/scheduler.token"),system:kube-scheduler,uid-scheduler"
	} >"$TESTBED_DIR/tokens.csv"
fi

# kubeconfig USER FILE
kubeconfig() {
	cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tributary-testbed
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $1
  user:
    token: $(cat "$TESTBED_DIR/$1.token")
contexts:
- name: tributary-testbed
  context: {cluster: tributary-testbed, user: $1, namespace: default}
current-context: tributary-testbed
EOF
}
kubeconfig admin "$KUBECONFIG_FILE"
kubeconfig kcm "$TESTBED_DIR/kcm.kubeconfig"
kubeconfig scheduler "$TESTBED_DIR/scheduler.kubeconfig"

# --- Kubernetes ---------------------------------------------------------------------------------------------
# A cluster state left by a test bed that was killed rather than stopped would be reconciled against
# emulators whose state is gone or older: start from an empty cluster and empty emulators unless asked to
# keep them. The emulators keep their state in $TESTBED_DIR while the test bed runs, so that one of them
# stopped and started again (testbed/service.sh, the outage tests) comes back with what it held.
if ! is_running etcd && [[ ${TESTBED_KEEP_STATE:-0} != 1 ]]; then
	[[ -d $TESTBED_DIR/etcd ]] && log "removing the cluster state of a test bed that was not stopped (TESTBED_KEEP_STATE=1 keeps it)"
	rm -rf "$TESTBED_DIR/etcd" "${EMULATOR_STATE[@]}"
fi
start etcd etcd --name testbed --data-dir "$TESTBED_DIR/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster "testbed=http://127.0.0.1:$ETCD_PEER_PORT" \
	--listen-metrics-urls "" --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
wait_for etcd 60 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

# With the real node the API server reaches its kubelet (logs, exec, port-forward) at the node's address,
# verifying the kubelet's certificate and showing its own, both from the test bed CA. Its serving certificate
# also names the node address, where pods reach it (DNAT to 127.0.0.1, testbed/node-up.sh), and the
# in-cluster names.
apiserver_cert=apiserver
apiserver_node_flags=()
if [[ ${TESTBED_NODE:-0} == 1 ]]; then
	signed_cert "$PKI" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
	apiserver_cert="apiserver-node-$NODE_IP"
	signed_cert "$PKI" "$apiserver_cert" "/CN=kube-apiserver" "extendedKeyUsage=serverAuth"$'\n'"subjectAltName=IP:127.0.0.1,DNS:localhost,IP:$NODE_IP,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	apiserver_node_flags=(--kubelet-preferred-address-types InternalIP,Hostname
		--kubelet-certificate-authority "$PKI/ca.crt"
		--kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key"
		--enable-admission-plugins PodNodeSelector,PodTolerationRestriction)
fi
start kube-apiserver kube-apiserver --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
	--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
	--cert-dir "$PKI" --tls-cert-file "$PKI/$apiserver_cert.crt" --tls-private-key-file "$PKI/$apiserver_cert.key" \
	--client-ca-file "$PKI/ca.crt" --token-auth-file "$TESTBED_DIR/tokens.csv" \
	--authorization-mode Node,RBAC --allow-privileged=true \
	--service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none \
	--service-account-issuer https://kubernetes.default.svc.cluster.local \
	--service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
	"${apiserver_node_flags[@]}" --profiling=false --v 1
apiserver_ready() {
	curl -sf --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(cat "$TESTBED_DIR/admin.token")" \
		"https://127.0.0.1:$APISERVER_PORT/readyz"
}
wait_for kube-apiserver 180 apiserver_ready

start kube-controller-manager kube-controller-manager --kubeconfig "$TESTBED_DIR/kcm.kubeconfig" \
	--bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$TESTBED_DIR/kcm-certs" \
	--leader-elect=false --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
	--controllers '*,-nodeipam,-cloud-node-lifecycle' --node-monitor-grace-period 40s \
	--kube-api-qps 500 --kube-api-burst 1000 --profiling=false --v 1
start kube-scheduler kube-scheduler --kubeconfig "$TESTBED_DIR/scheduler.kubeconfig" \
	--bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --cert-dir "$TESTBED_DIR/scheduler-certs" \
	--leader-elect=false --profiling=false --v 1
wait_for kube-controller-manager 120 curl -skf "https://127.0.0.1:$KCM_PORT/healthz"
wait_for kube-scheduler 120 curl -skf "https://127.0.0.1:$SCHEDULER_PORT/healthz"

start kwok kwok --kubeconfig "$KUBECONFIG_FILE" --config "$TESTBED_DIR/kwok-stages.yaml" --manage-all-nodes=false \
	--manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
	--cidr 10.244.0.0/16 --node-ip 127.0.0.1 --server-address "127.0.0.1:$KWOK_PORT" \
	--node-lease-duration-seconds 40
wait_for kwok 60 curl -sf "http://127.0.0.1:$KWOK_PORT/healthz"
for i in 0 1 2; do
	cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
done | kubectl --kubeconfig "$KUBECONFIG_FILE" apply -f - >/dev/null
nodes_ready() {
	[[ $(kubectl --kubeconfig "$KUBECONFIG_FILE" get nodes -l type=kwok \
		-o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
		grep -c True) -ge 3 ]]
}
wait_for kwok 60 nodes_ready

# --- AWS ----------------------------------------------------------------------------------------------------
# moto through testbed/moto-server.py (moto's server, run by moto's own Python), which saves its state on
# SIGTERM and loads it at start: a restart is an outage, not a wipe.
moto_python="$(dirname "$(readlink "$TESTBED_BIN/moto_server")")/python"
mkdir -p "$TESTBED_DIR/moto"
start moto "$moto_python" "$TESTBED_SRC/moto-server.py" -H 127.0.0.1 -p "$MOTO_PORT" --state "$TESTBED_DIR/moto/state.pickle"
wait_for moto 60 curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/"

# ElasticMQ: SQS only, much faster than moto (for throughput figures) and with SQS's message-move tasks
# (moto has none). Same region and account id as moto, so ARNs look alike.
cat >"$TESTBED_DIR/elasticmq.conf" <<EOF
include classpath("application.conf")
node-address { protocol = "http", host = "127.0.0.1", port = $ELASTICMQ_PORT, context-path = "" }
rest-sqs { enabled = true, bind-port = $ELASTICMQ_PORT, bind-hostname = "127.0.0.1", sqs-limits = strict }
rest-stats { enabled = false }
aws { region = "us-east-1", accountId = "123456789012" }
EOF
start elasticmq java -Xms64m -Xmx384m -XX:+UseSerialGC -Djava.awt.headless=true \
	"-Dconfig.file=$TESTBED_DIR/elasticmq.conf" -cp "$TESTBED_DIR/elasticmq-libs/*" org.elasticmq.server.Main
wait_for elasticmq 60 curl -sf "http://127.0.0.1:$ELASTICMQ_PORT/?Action=ListQueues"

# --- Azure --------------------------------------------------------------------------------------------------
# On disk (saved every 5 s and on SIGTERM), so a restarted Azurite still has its queues and messages.
start azurite azurite-queue --queueHost 127.0.0.1 --queuePort "$AZURITE_QUEUE_PORT" \
	--location "$TESTBED_DIR/azurite" --skipApiVersionCheck --loose --disableTelemetry
wait_for azurite 60 port_open "$AZURITE_QUEUE_PORT"

# TLS like the real service: the account endpoint it advertises is https, which clients then follow.
# -DisableAuth: azure_data_cosmos 1.0 signs the partition-key-range read with the container's resource id,
# which cosmium 0.1.20 checks against the name-based link and refuses (401), so its key check is off here.
# -Persist: saved on SIGTERM, loaded at start (a SIGKILL loses what came after the last start).
mkdir -p "$TESTBED_DIR/cosmium"
start cosmium cosmium -Host 127.0.0.1 -Port "$COSMOS_PORT" -Cert "$PKI/cosmos.crt" -CertKey "$PKI/cosmos.key" \
	-DisableAuth -Persist "$TESTBED_DIR/cosmium/state.json"
wait_for cosmium 60 port_open "$COSMOS_PORT"

# Kafka in KRaft mode (one combined broker/controller). The SASL_SSL listener mirrors the Event Hubs Kafka
# endpoint: TLS, SASL PLAIN, user "$ConnectionString", password = a namespace connection string.
KAFKA_DIR="$TESTBED_DIR/kafka"
# With the real node, the connection string (which the Resource Manager fake's listKeys hands to DeviceStreams'
# connection Secrets) names the listener advertised on the node address, which pods and host processes reach.
kafka_endpoint_host="127.0.0.1:$KAFKA_SASL_PORT"
[[ ${TESTBED_NODE:-0} == 1 ]] && kafka_endpoint_host="$NODE_IP:$KAFKA_NODE_SASL_PORT"
KAFKA_CONNECTION_STRING="Endpoint=sb://$kafka_endpoint_host/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=testbed"
mkdir -p "$KAFKA_DIR"
# With the real node, two more listeners advertise the node's address, so a client in a pod that follows the
# broker's metadata comes back to the node address (DNATed to 127.0.0.1, testbed/node-up.sh) instead of its
# own loopback.
kafka_listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_PORT"
kafka_advertised="PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_PORT"
kafka_protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
kafka_jaas="org.apache.kafka.common.security.plain.PlainLoginModule required user_\$ConnectionString=\"$KAFKA_CONNECTION_STRING\";"
kafka_node_jaas=
if [[ ${TESTBED_NODE:-0} == 1 ]]; then
	kafka_listeners+=",NODE://127.0.0.1:$KAFKA_NODE_PORT,NODE_SASL_SSL://127.0.0.1:$KAFKA_NODE_SASL_PORT"
	kafka_advertised+=",NODE://$NODE_IP:$KAFKA_NODE_PORT,NODE_SASL_SSL://$NODE_IP:$KAFKA_NODE_SASL_PORT"
	kafka_protocols+=",NODE:PLAINTEXT,NODE_SASL_SSL:SASL_SSL"
	kafka_node_jaas="listener.name.node_sasl_ssl.plain.sasl.jaas.config=$kafka_jaas"
fi
cat >"$KAFKA_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=$kafka_listeners
advertised.listeners=$kafka_advertised
listener.security.protocol.map=$kafka_protocols
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=$kafka_jaas
$kafka_node_jaas
ssl.keystore.type=PEM
ssl.keystore.location=$PKI/kafka-keystore.pem
log.dirs=$KAFKA_DIR/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
cat >"$KAFKA_DIR/log4j2.properties" <<'EOF'
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.server.name=kafka.server.KafkaRaftServer
logger.server.level=INFO
EOF
kafka_java=(java -Xms128m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true
	"-Dlog4j2.configurationFile=$KAFKA_DIR/log4j2.properties" -cp "$TESTBED_DIR/kafka-libs/*")
if [[ ! -f $KAFKA_DIR/data/meta.properties ]] && ! is_running kafka; then
	# A Kafka cluster id is 16 random bytes in URL-safe base64. It must not start with '-', or the storage
	# tool reads it as an option: the first character is forced to a letter.
	cluster_id=$(openssl rand -base64 16 | tr '+/' '-_' | tr -d '=')
	cluster_id="A${cluster_id:1}"
	"${kafka_java[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_DIR/server.properties" \
		>"$TESTBED_DIR/logs/kafka-format.log" 2>&1 || {
		cat "$TESTBED_DIR/logs/kafka-format.log" >&2
		die "formatting Kafka's storage failed"
	}
fi
start kafka "${kafka_java[@]}" kafka.Kafka "$KAFKA_DIR/server.properties"
wait_for kafka 120 grep -q "Kafka Server started" "$TESTBED_DIR/logs/kafka.log"

# --- The real node (opt-in: TESTBED_NODE=1, docs/testbed-node.md) -----------------------------------------------
if [[ ${TESTBED_NODE:-0} == 1 ]]; then
	source "$TESTBED_SRC/node-up.sh"
fi

# --- Environment for tests and humans -----------------------------------------------------------------------
cat >"$TESTBED_DIR/env" <<EOF
# Generated by testbed/up.sh: source this file to talk to the test bed.
export TESTBED_DIR='$TESTBED_DIR'
export PATH='$TESTBED_BIN':"\$PATH"
export KUBECONFIG='$KUBECONFIG_FILE'
export TESTBED_APISERVER_URL='https://127.0.0.1:$APISERVER_PORT'
export TESTBED_CA_FILE='$PKI/ca.crt'
export TESTBED_CA_KEY_FILE='$PKI/ca.key'
export AWS_ENDPOINT_URL='http://127.0.0.1:$MOTO_PORT'
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export ELASTICMQ_ENDPOINT_URL='http://127.0.0.1:$ELASTICMQ_PORT'
export AZURE_STORAGE_ACCOUNT=devstoreaccount1
export AZURE_STORAGE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
export AZURE_STORAGE_QUEUE_ENDPOINT='http://127.0.0.1:$AZURITE_QUEUE_PORT/devstoreaccount1'
export COSMOS_ENDPOINT='https://127.0.0.1:$COSMOS_PORT/'
export COSMOS_KEY='C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=='
export KAFKA_BOOTSTRAP='127.0.0.1:$KAFKA_SASL_PORT'
export KAFKA_PLAINTEXT_BOOTSTRAP='127.0.0.1:$KAFKA_PORT'
export KAFKA_SASL_USERNAME='\$ConnectionString'
export KAFKA_SASL_PASSWORD='$KAFKA_CONNECTION_STRING'
export KAFKA_CA_FILE='$PKI/ca.crt'
EOF
if [[ ${TESTBED_NODE:-0} == 1 ]]; then
	cat >>"$TESTBED_DIR/env" <<EOF
# The real node (docs/testbed-node.md).
export TESTBED_NODE=1
export TESTBED_NODE_NAME='$NODE_NAME'
export TESTBED_NODE_IP='$NODE_IP'
export TESTBED_NODE_POD_PREFIX='${NODE_POD_CIDR%0/24}'
export TESTBED_NODE_PROBE_IMAGE='$NODEPROBE_IMAGE'
export TESTBED_NODE_TRIBUTARY_IMAGE='$NODE_TRIBUTARY_IMAGE'
export CONTAINERD_ADDRESS='$CONTAINERD_SOCKET'
export CONTAINERD_NAMESPACE=k8s.io
# Every endpoint at the node address: the same URL serves pods and host processes (docs/testbed-node.md).
export TESTBED_NODE_APISERVER_URL='https://$NODE_IP:$APISERVER_PORT'
export TESTBED_NODE_MOTO_URL='http://$NODE_IP:$MOTO_PORT'
export TESTBED_NODE_ELASTICMQ_URL='http://$NODE_IP:$ELASTICMQ_PORT'
export TESTBED_NODE_AZURITE_QUEUE_URL='http://$NODE_IP:$AZURITE_QUEUE_PORT/devstoreaccount1'
export TESTBED_NODE_COSMOS_URL='https://$NODE_IP:$COSMOS_PORT/'
export TESTBED_NODE_KAFKA_BOOTSTRAP='$NODE_IP:$KAFKA_NODE_SASL_PORT'
export TESTBED_NODE_KAFKA_PLAINTEXT_BOOTSTRAP='$NODE_IP:$KAFKA_NODE_PORT'
# Nothing listens on these two: a test or make demo starting the Resource Manager fake or an OpenTelemetry
# Collector binds the LISTEN address, and pods reach it at the URL.
export TESTBED_ARM_LISTEN='127.0.0.1:$ARM_PORT'
export TESTBED_NODE_ARM_URL='http://$NODE_IP:$ARM_PORT'
export TESTBED_OTEL_LISTEN='127.0.0.1:$OTEL_PORT'
export TESTBED_NODE_OTEL_URL='http://$NODE_IP:$OTEL_PORT'
EOF
fi
log "test bed up: source $TESTBED_DIR/env (kubectl, helm on PATH; KUBECONFIG=$KUBECONFIG_FILE)"
