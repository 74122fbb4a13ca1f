# Shared settings and helpers for the test bed scripts. Sourced, not run.
#
# Every path and port can be overridden from the environment, so two test beds can run side by side:
#   TESTBED_DIR=/tmp/tb2 TESTBED_PORT_BASE=28000 testbed/up.sh
# shellcheck shell=bash

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TESTBED_SRC="$ROOT/testbed"
# Per-checkout state: pid files, logs, certificates, kubeconfig, env file.
TESTBED_DIR=${TESTBED_DIR:-$ROOT/target/testbed}
# Per-machine cache of everything installed or built, shared by clones (CI clones afresh every run).
TRIBUTARY_CACHE=${TRIBUTARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary}
TESTBED_BIN="$TESTBED_DIR/bin"

# --- Pinned versions (docs/testbed.md lists these; change them here only) ---------------------------
KUBE_VERSION=v1.36.3        # testbed/tools/kube/go.mod pins k8s.io/kubernetes and its staging modules
ETCD_VERSION=v3.6.16        # testbed/tools/etcd/go.mod
KWOK_VERSION=v0.8.0         # testbed/tools/kwok/go.mod
HELM_VERSION=v3.22.0        # testbed/tools/helm/go.mod
PROMETHEUS_VERSION=3.16.0   # testbed/tools/promtool/go.mod (Go module v0.316.0: promtool, for the chart's rules)
COSMIUM_VERSION=v0.1.20     # testbed/tools/cosmium/go.mod (later tags lack the v prefix the Go proxy needs)
MOTO_VERSION=5.2.5          # testbed/moto-requirements.txt
AZURITE_VERSION=3.35.0      # testbed/azurite/package-lock.json (3.36+ needs Node 22)
KAFKA_VERSION=4.1.1         # testbed/kafka/pom.xml
ELASTICMQ_VERSION=1.6.11    # testbed/elasticmq/pom.xml
# The real node (TESTBED_NODE=1 only, docs/testbed-node.md):
CONTAINERD_VERSION=v2.3.7   # testbed/tools/containerd/go.mod
COREDNS_VERSION=v1.14.7     # testbed/tools/coredns/go.mod
# Debian 12 packages, installed by apt-get at these versions (a point release that replaces one fails loudly
# in testbed/node-install.sh: update the pin here).
NODE_DEBS=(runc=1.1.5+ds1-1+deb12u1 containernetworking-plugins=1.1.1+ds1-3+b5 iptables=1.8.9-2 conntrack=1:1.4.7-1+b2
	buildah=1.28.2+ds1-3+deb12u1+b3)

# --- Ports: one base, fixed offsets ------------------------------------------------------------------------
# A running test bed remembers its port base, so later commands (make demo, make test) find it again.
if [[ -z ${TESTBED_PORT_BASE:-} && -f $TESTBED_DIR/port-base ]]; then
	TESTBED_PORT_BASE=$(cat "$TESTBED_DIR/port-base")
fi
TESTBED_PORT_BASE=${TESTBED_PORT_BASE:-27000}
ETCD_PORT=${ETCD_PORT:-$((TESTBED_PORT_BASE + 0))}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-$((TESTBED_PORT_BASE + 1))}
APISERVER_PORT=${APISERVER_PORT:-$((TESTBED_PORT_BASE + 2))}
KCM_PORT=${KCM_PORT:-$((TESTBED_PORT_BASE + 3))}
SCHEDULER_PORT=${SCHEDULER_PORT:-$((TESTBED_PORT_BASE + 4))}
KWOK_PORT=${KWOK_PORT:-$((TESTBED_PORT_BASE + 5))}
MOTO_PORT=${MOTO_PORT:-$((TESTBED_PORT_BASE + 10))}
AZURITE_QUEUE_PORT=${AZURITE_QUEUE_PORT:-$((TESTBED_PORT_BASE + 11))}
COSMOS_PORT=${COSMOS_PORT:-$((TESTBED_PORT_BASE + 12))}
KAFKA_PORT=${KAFKA_PORT:-$((TESTBED_PORT_BASE + 13))}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((TESTBED_PORT_BASE + 14))}
KAFKA_SASL_PORT=${KAFKA_SASL_PORT:-$((TESTBED_PORT_BASE + 15))}
ELASTICMQ_PORT=${ELASTICMQ_PORT:-$((TESTBED_PORT_BASE + 16))}
# With the real node, Kafka's listeners advertised on the node's address (bound on 127.0.0.1 like the others,
# reached through the node address's DNAT): plaintext, and SASL_SSL like the Event Hubs Kafka endpoint.
KAFKA_NODE_PORT=${KAFKA_NODE_PORT:-$((TESTBED_PORT_BASE + 17))}
KAFKA_NODE_SASL_PORT=${KAFKA_NODE_SASL_PORT:-$((TESTBED_PORT_BASE + 18))}
# The real node's own servers (TESTBED_NODE=1): kubelet's API and health, kube-proxy's health and metrics,
# CoreDNS's health and readiness (it answers DNS on port 53 of the node's address).
KUBELET_PORT=${KUBELET_PORT:-$((TESTBED_PORT_BASE + 20))}
KUBELET_HEALTHZ_PORT=${KUBELET_HEALTHZ_PORT:-$((TESTBED_PORT_BASE + 21))}
KUBE_PROXY_HEALTHZ_PORT=${KUBE_PROXY_HEALTHZ_PORT:-$((TESTBED_PORT_BASE + 22))}
KUBE_PROXY_METRICS_PORT=${KUBE_PROXY_METRICS_PORT:-$((TESTBED_PORT_BASE + 23))}
COREDNS_HEALTH_PORT=${COREDNS_HEALTH_PORT:-$((TESTBED_PORT_BASE + 24))}
COREDNS_READY_PORT=${COREDNS_READY_PORT:-$((TESTBED_PORT_BASE + 25))}
# Kept free for servers a test or `make demo` starts and pods must reach at a fixed address (the Resource
# Manager fake, an OpenTelemetry Collector): nothing in the test bed listens there.
ARM_PORT=${ARM_PORT:-$((TESTBED_PORT_BASE + 26))}
OTEL_PORT=${OTEL_PORT:-$((TESTBED_PORT_BASE + 27))}

# Where the emulators keep their state between a stop and a start of one of them (removed when the whole
# test bed starts afresh or stops, unless TESTBED_KEEP_STATE=1). ElasticMQ keeps nothing.
EMULATOR_STATE=("$TESTBED_DIR/moto" "$TESTBED_DIR/azurite" "$TESTBED_DIR/cosmium" "$TESTBED_DIR/kafka/data")

log() { printf '[testbed] %s\n' "$*" >&2; }
die() {
	printf '[testbed] ERROR: %s\n' "$*" >&2
	exit 1
}

# need CMD HINT: fail clearly when a tool the machine must already have is missing.
need() {
	command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed: $2"
}

# hash_files FILE...: a short content hash, used to key cached builds and installs.
hash_files() {
	cat "$@" | sha256sum | cut -c1-16
}

# is_running NAME: whether the pid file of NAME names a live process.
is_running() {
	local pidfile="$TESTBED_DIR/pids/$1.pid"
	[[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# start NAME CMD...: start CMD in the background with its output in logs/NAME.log, unless already running.
start() {
	local name=$1
	shift
	mkdir -p "$TESTBED_DIR/pids" "$TESTBED_DIR/logs"
	if is_running "$name"; then
		log "$name already running (pid $(cat "$TESTBED_DIR/pids/$name.pid"))"
		return 0
	fi
	# setsid: the service does not get the terminal's signals (a Ctrl-C in `make` goes to make, which then
	# runs testbed-down); the pid is the service's own, so down.sh stops exactly what was started.
	setsid "$@" >"$TESTBED_DIR/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$TESTBED_DIR/pids/$name.pid"
	log "$name started (pid $!)"
}

# stop NAME: stop the process of NAME's pid file (SIGTERM, SIGKILL after 10 s) and remove the pid file.
stop() {
	local name=$1 pidfile="$TESTBED_DIR/pids/$1.pid" pid
	[[ -f $pidfile ]] || return 0
	pid=$(cat "$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 40); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "$name (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		log "$name stopped (pid $pid)"
	fi
	rm -f "$pidfile"
}

# wait_for NAME SECONDS CHECK...: poll CHECK until it succeeds; on timeout show NAME's log and fail.
wait_for() {
	local name=$1 timeout=$2
	shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if ! is_running "$name"; then
			tail -n 40 "$TESTBED_DIR/logs/$name.log" >&2 || true
			die "$name exited before it was ready (log: $TESTBED_DIR/logs/$name.log)"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 40 "$TESTBED_DIR/logs/$name.log" >&2 || true
			die "$name not ready after ${timeout}s (log: $TESTBED_DIR/logs/$name.log)"
		fi
		sleep 0.5
	done
	log "$name ready"
}

# port_open PORT: whether something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
