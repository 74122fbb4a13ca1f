#!/usr/bin/env bash
# Stops exactly the processes testbed/up.sh started, by their pid files, newest first, and removes the
# cluster and emulator state so the next start is fresh (TESTBED_KEEP_STATE=1 keeps the cluster's etcd and
# what moto, Azurite, cosmium and Kafka saved when stopped; ElasticMQ keeps nothing). Certificates, tokens
# and the cache are kept.
source "$(dirname "$0")/lib.sh"

# The real node first (if it was started): its pods, kubelet, kube-proxy, containerd, and what they changed
# on the host (testbed/node-down.sh).
if [[ -d $TESTBED_DIR/node ]]; then
	source "$TESTBED_SRC/node-down.sh"
fi
# arm-fake: started by `make demo` as a service of the test bed (scripts/demo.sh), when it ran.
order=(arm-fake elasticmq kafka cosmium azurite moto kwok kube-scheduler kube-controller-manager kube-apiserver etcd)
for name in "${order[@]}"; do
	stop "$name"
done
if [[ ${TESTBED_KEEP_STATE:-0} == 1 ]]; then
	log "keeping the cluster state (TESTBED_KEEP_STATE=1)"
	rm -f "$TESTBED_DIR/port-base"
else
	rm -rf "$TESTBED_DIR/etcd" "${EMULATOR_STATE[@]}" "$TESTBED_DIR/port-base"
fi
