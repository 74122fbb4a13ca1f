# Settings of the test bed's real node (docs/testbed-node.md), shared by testbed/node-up.sh and
# testbed/down.sh. Sourced after testbed/lib.sh, not run.
# shellcheck shell=bash

NODE_NAME=tributary-node
NODE_DIR="$TESTBED_DIR/node"
# The node's own network, derived from the port base so two test beds on one machine do not collide: a /24
# in 10.200.0.0/16 (the host routes only its own LAN and the default route; kwok's fake pods use
# 10.244.0.0/16, Services 10.96.0.0/16). The bridge's address is the node's address: the kubelet serves
# there, and pods reach the emulators there.
NODE_NET_OCTET=$(((TESTBED_PORT_BASE / 1000) % 256))
NODE_POD_CIDR="10.200.$NODE_NET_OCTET.0/24"
NODE_IP="10.200.$NODE_NET_OCTET.1"
NODE_BRIDGE="trib$TESTBED_PORT_BASE"
# The cluster DNS Service's address, as kind's (the test bed's Services are 10.96.0.0/16).
CLUSTER_DNS_IP=10.96.0.10
# Chains the node adds: one in mangle FORWARD that keeps pod traffic on the bridge (nothing leaves this
# machine); in nat, one (PREROUTING, first) that sends pods' packets for the kubernetes Service to the API
# server, and one (PREROUTING from the bridge and OUTPUT, after kube-proxy's) that maps the node address's
# TCP ports to 127.0.0.1.
NODE_GUARD_CHAIN="TRIB$TESTBED_PORT_BASE-GUARD"
NODE_SERVICE_CHAIN="TRIB$TESTBED_PORT_BASE-SVC"
NODE_EMULATOR_CHAIN="TRIB$TESTBED_PORT_BASE-EMU"
# The kubernetes Service's address (the first of the Service range), as in kind.
KUBERNETES_SERVICE_IP=10.96.0.1
CONTAINERD_SOCKET="$NODE_DIR/containerd/containerd.sock"
PAUSE_IMAGE="tributary.local/pause:testbed"
NODEPROBE_IMAGE="tributary.local/nodeprobe:testbed"
# The host settings the kubelet and the CNI bridge plugin change; node-up.sh saves them first and down.sh
# puts them back.
NODE_SYSCTLS=(net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

# node_ctr ARGS...: ctr against the node's containerd, in the namespace the kubelet's pods live in. Its
# stderr goes to logs/ctr.log: ctr repeats the daemon's deprecation warnings (cgroup v1) on every call.
node_ctr() {
	"$TESTBED_BIN/ctr" --address "$CONTAINERD_SOCKET" --namespace k8s.io "$@" 2>>"$TESTBED_DIR/logs/ctr.log"
}

# signed_cert DIR NAME SUBJECT EXTENSIONS: DIR/NAME.key and DIR/NAME.crt signed by the test bed CA, made once.
signed_cert() {
	local dir=$1 name=$2
	[[ -f $dir/$name.crt ]] && return 0
	openssl req -newkey rsa:2048 -nodes -subj "$3" -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
	openssl x509 -req -in "$dir/$name.csr" -CA "$TESTBED_DIR/pki/ca.crt" -CAkey "$TESTBED_DIR/pki/ca.key" \
		-CAcreateserial -days 365 -extfile <(printf '%s\n' "$4") -out "$dir/$name.crt" 2>/dev/null
}
