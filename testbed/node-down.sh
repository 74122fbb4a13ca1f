# Stops the test bed's real node and undoes what testbed/node-up.sh and the node's processes changed on
# the host: the pods' containers (through containerd's API: the shims are containerd's children, not ours
# to signal by name), kubelet, kube-proxy (and its iptables rules), containerd, the mounts and cgroups the
# pods left, the node's bridge and iptables chains, and the sysctls. Sourced by testbed/down.sh; safe to run
# again after a partial start or stop.
# shellcheck shell=bash

source "$TESTBED_SRC/node-lib.sh"
node_stop_start=$SECONDS

# The kubelet would restart containers killed under it, so it stops first; kube-proxy's rules are removed
# by its own cleanup mode once it has stopped.
stop coredns
stop kubelet
stop kube-proxy
if [[ -x $TESTBED_BIN/kube-proxy ]] && iptables -w -t nat -S KUBE-SERVICES >/dev/null 2>&1; then
	"$TESTBED_BIN/kube-proxy" --cleanup --v 0 >"$TESTBED_DIR/logs/kube-proxy-cleanup.log" 2>&1 ||
		log "kube-proxy --cleanup failed (log: $TESTBED_DIR/logs/kube-proxy-cleanup.log)"
fi

# The shims' sockets, named in their bundles (which removing a task deletes): containerd 2 keeps them in
# /run/containerd/s whatever its state folder, and a shim that had to be killed leaves its socket there.
shim_sockets=()
for bootstrap in "$NODE_DIR"/containerd/state/io.containerd.runtime.v2.task/*/*/bootstrap.json; do
	[[ -f $bootstrap ]] || continue
	socket=$(sed -n 's|.*"address":"unix://\(/run/containerd/s/[0-9a-f]*\)".*|\1|p' "$bootstrap")
	[[ -n $socket ]] && shim_sockets+=("$socket")
done
# Every container and sandbox, killed and removed through containerd, which then lets their shims exit: the
# sandboxes before their containers (a sandbox is stopped through its pause container's record).
if is_running containerd; then
	for task in $(node_ctr tasks ls -q 2>/dev/null); do
		node_ctr tasks kill --signal SIGKILL --all "$task" >/dev/null 2>&1 || true
	done
	for sandbox in $(node_ctr sandboxes ls 2>/dev/null | awk 'NR > 1 {print $1}'); do
		node_ctr sandboxes rm --force "$sandbox" >/dev/null 2>&1 || true
	done
	for task in $(node_ctr tasks ls -q 2>/dev/null); do
		for _ in $(seq 1 40); do
			node_ctr tasks delete "$task" >/dev/null 2>&1 && break
			sleep 0.25
		done
	done
	for container in $(node_ctr containers ls -q 2>/dev/null); do
		node_ctr containers delete "$container" >/dev/null 2>&1 || true
	done
fi
stop containerd
# A shim outliving containerd is still this node's, found by the socket address in its command line. One
# whose sandbox was just removed exits by itself within moments; one that does not is stopped by pid, and
# the sockets of all are removed.
node_shims() {
	local cmdline pid
	for cmdline in /proc/[0-9]*/cmdline; do
		tr '\0' ' ' 2>/dev/null <"$cmdline" | grep -q "^[^ ]*containerd-shim-runc-v2 .*-address $CONTAINERD_SOCKET" || continue
		pid=${cmdline#/proc/}
		echo "${pid%/cmdline}"
	done
}
for _ in $(seq 1 20); do
	[[ -z $(node_shims) ]] && break
	sleep 0.25
done
for pid in $(node_shims); do
	log "stopping a shim left by containerd (pid $pid)"
	kill -KILL "$pid" 2>/dev/null || true
done
for socket in "${shim_sockets[@]}"; do rm -f "$socket"; done

# Mounts under the node's folder (overlay root file systems, shm, network namespaces, pod volumes), the
# deepest first.
awk -v dir="$NODE_DIR/" 'index($2, dir) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r mount; do
	umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || log "could not unmount $mount"
done
# The cgroups the kubelet made for its pods (QoS classes, pods, containers), leaves first; one still holding a
# process stays and is named.
for controller in /sys/fs/cgroup/*/; do
	[[ -d ${controller}kubepods ]] || continue
	find "${controller}kubepods" -depth -type d -exec rmdir {} + 2>/dev/null ||
		log "cgroup ${controller}kubepods is not empty; left in place"
done

# The node's network: bridge (its veths went with the pods' namespaces) and the chains node-up.sh added.
ip link show "$NODE_BRIDGE" >/dev/null 2>&1 && ip link delete "$NODE_BRIDGE"
iptables -w -t mangle -D FORWARD -j "$NODE_GUARD_CHAIN" 2>/dev/null || true
iptables -w -t mangle -F "$NODE_GUARD_CHAIN" 2>/dev/null && iptables -w -t mangle -X "$NODE_GUARD_CHAIN"
iptables -w -t nat -D PREROUTING -i "$NODE_BRIDGE" -d "$NODE_IP" -j "$NODE_EMULATOR_CHAIN" 2>/dev/null || true
iptables -w -t nat -D OUTPUT -d "$NODE_IP" -j "$NODE_EMULATOR_CHAIN" 2>/dev/null || true
iptables -w -t nat -F "$NODE_EMULATOR_CHAIN" 2>/dev/null && iptables -w -t nat -X "$NODE_EMULATOR_CHAIN"
iptables -w -t nat -D PREROUTING -i "$NODE_BRIDGE" -j "$NODE_SERVICE_CHAIN" 2>/dev/null || true
iptables -w -t nat -F "$NODE_SERVICE_CHAIN" 2>/dev/null && iptables -w -t nat -X "$NODE_SERVICE_CHAIN"
# The chains the kubelet itself adds (for IPv4 and IPv6): its firewall against outside packets to 127.0.0.0/8
# (jumped to from INPUT and OUTPUT) and the canaries by which it notices a flushed table.
for tables in iptables ip6tables; do
	command -v "$tables" >/dev/null || continue
	for parent in INPUT OUTPUT; do "$tables" -w -D "$parent" -j KUBE-FIREWALL 2>/dev/null || true; done
	for table_chain in filter/KUBE-FIREWALL filter/KUBE-KUBELET-CANARY nat/KUBE-KUBELET-CANARY \
		mangle/KUBE-KUBELET-CANARY mangle/KUBE-IPTABLES-HINT; do
		"$tables" -w -t "${table_chain%/*}" -F "${table_chain#*/}" 2>/dev/null &&
			"$tables" -w -t "${table_chain%/*}" -X "${table_chain#*/}" 2>/dev/null || true
	done
done
# The host settings as they were before the node first started.
if [[ -f $NODE_DIR/sysctl.saved ]]; then
	while IFS= read -r setting; do sysctl -qw "$setting" || log "could not restore $setting"; done <"$NODE_DIR/sysctl.saved"
	rm -f "$NODE_DIR/sysctl.saved"
fi

# The runtime state (images, containers, pod folders, IP leases); certificates and configuration stay. Not
# while anything is still mounted there: a pod's subPath is a bind mount of a host folder.
if awk -v dir="$NODE_DIR/" 'index($2, dir) == 1 {found = 1} END {exit !found}' /proc/self/mounts; then
	die "mounts under $NODE_DIR remain (see /proc/self/mounts); its runtime state is left in place"
fi
rm -rf "$NODE_DIR/containerd/root" "$NODE_DIR/containerd/state" "$NODE_DIR/containerd/opt" \
	"$NODE_DIR/kubelet/root" "$NODE_DIR/cni/ipam" "$NODE_DIR/pod-logs" "$NODE_DIR/images"
log "node $NODE_NAME stopped and cleaned up in $((SECONDS - node_stop_start))s"
