#!/usr/bin/env bash
# Stops exactly the processes testbed/up.sh started, by their pid files, newest first, and removes the
# cluster and emulator state so the next start is fresh (TESTBED_KEEP_STATE=1 keeps the cluster's etcd and
# what moto, Azurite, cosmium and Kafka saved when stopped; ElasticMQ keeps nothing). Certificates, tokens
# and the cache are kept.
source "$(dirname "$0")/lib.sh"

order=(elasticmq kafka cosmium azurite moto kwok kube-scheduler kube-controller-manager kube-apiserver etcd)
for name in "${order[@]}"; do
	pidfile="$TESTBED_DIR/pids/$name.pid"
	[[ -f $pidfile ]] || continue
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
done
if [[ ${TESTBED_KEEP_STATE:-0} == 1 ]]; then
	log "keeping the cluster state (TESTBED_KEEP_STATE=1)"
	rm -f "$TESTBED_DIR/port-base"
else
	rm -rf "$TESTBED_DIR/etcd" "${EMULATOR_STATE[@]}" "$TESTBED_DIR/port-base"
fi
