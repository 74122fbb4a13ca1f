# Starts the test bed's real node beside the kwok nodes (docs/testbed-node.md): the node's bridge and its
# iptables guard, containerd 2 with runc and the CNI plugins, the pause and tributary images, the kubelet
# (node tributary-node), kube-proxy and CoreDNS. Sourced by testbed/up.sh when TESTBED_NODE=1, after the API server is
# ready; every process is started with lib.sh's `start`, so down.sh stops exactly those by pid.
# shellcheck shell=bash

source "$TESTBED_SRC/node-lib.sh"
NODE_START=$SECONDS

[[ $(id -u) == 0 ]] || die "the real node needs root (network namespaces, cgroups, iptables)"
for controller in cpu cpuacct memory pids devices freezer; do
	[[ -d /sys/fs/cgroup/$controller ]] || die "cgroup v1 controller $controller is not mounted under /sys/fs/cgroup"
done
grep -qw overlay /proc/filesystems || die "the kernel has no overlay file system (containerd's snapshotter)"
for tool in iptables conntrack runc ip buildah; do need "$tool" "install the node's Debian packages: TESTBED_NODE=1 testbed/install.sh"; done
need objcopy "binutils is required to build the tributary image (Debian: apt-get install binutils)"
# The API server must have been started for the node (up.sh gives it the kubelet client flags then).
grep -qa kubelet-client-certificate "/proc/$(cat "$TESTBED_DIR/pids/kube-apiserver.pid")/cmdline" ||
	die "the running test bed was started without the node: stop it (testbed/down.sh) and start it with TESTBED_NODE=1"
mkdir -p "$NODE_DIR"/{containerd,cni/net.d,cni/ipam,kubelet,kube-proxy,images,pki}

# --- Host settings ------------------------------------------------------------------------------------------
# Saved when the node first starts (down.sh restores them and removes the file, so a second start before a
# stop keeps the host's original values), then set: forwarding for Services (a packet to a ClusterIP comes
# in on the bridge and goes out on it again after kube-proxy's DNAT). The kubelet sets the vm/kernel ones
# itself at start.
if [[ ! -f $NODE_DIR/sysctl.saved ]]; then
	for key in "${NODE_SYSCTLS[@]}"; do echo "$key=$(sysctl -n "$key")"; done >"$NODE_DIR/sysctl.saved"
fi
sysctl -qw net.ipv4.ip_forward=1

# --- The node's bridge --------------------------------------------------------------------------------------
if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
	ip link add "$NODE_BRIDGE" type bridge
	ip addr add "$NODE_IP/24" dev "$NODE_BRIDGE"
fi
ip link set "$NODE_BRIDGE" up
# Packets from pods to the node address (and to the kubernetes Service) are DNATed to 127.0.0.1, where the
# emulators and the API server listen; the kernel delivers such packets only when the interface they came in
# on allows it. Host processes' packets need nothing of the kind: they never leave the loopback interface.
sysctl -qw "net.ipv4.conf.$NODE_BRIDGE.route_localnet=1"

# --- iptables: keep pods on this machine, let them reach the emulators ---------------------------------------
# ensure_jump TABLE PARENT CHAIN MATCH...: create CHAIN (emptied) and jump to it first from PARENT.
ensure_jump() {
	local table=$1 parent=$2 chain=$3
	shift 3
	iptables -w -t "$table" -N "$chain" 2>/dev/null || iptables -w -t "$table" -F "$chain"
	iptables -w -t "$table" -C "$parent" "$@" -j "$chain" 2>/dev/null ||
		iptables -w -t "$table" -I "$parent" 1 "$@" -j "$chain"
}
# mangle FORWARD runs before the filter table's FORWARD, where kube-proxy accepts what it marked: a forwarded
# packet that leaves or enters the bridge must do both, so nothing of the pods' reaches another machine and
# nothing from another machine reaches a pod.
ensure_jump mangle FORWARD "$NODE_GUARD_CHAIN"
iptables -w -t mangle -A "$NODE_GUARD_CHAIN" -i "$NODE_BRIDGE" -o "$NODE_BRIDGE" -j RETURN
iptables -w -t mangle -A "$NODE_GUARD_CHAIN" -i "$NODE_BRIDGE" -j DROP
iptables -w -t mangle -A "$NODE_GUARD_CHAIN" -o "$NODE_BRIDGE" -j DROP
# In-cluster configuration unchanged: a pod's KUBERNETES_SERVICE_HOST:PORT is the kubernetes Service,
# 10.96.0.1:443, which has no endpoints here (the API server is on 127.0.0.1, which no endpoint may name).
# Its packets from the bridge go to the API server on 127.0.0.1 instead; this chain comes first in
# PREROUTING, before kube-proxy's (put back first once kube-proxy has started, below).
ensure_jump nat PREROUTING "$NODE_SERVICE_CHAIN" -i "$NODE_BRIDGE"
iptables -w -t nat -A "$NODE_SERVICE_CHAIN" -d "$KUBERNETES_SERVICE_IP" -p tcp --dport 443 \
	-j DNAT --to-destination "127.0.0.1:$APISERVER_PORT"
# One address for pods and host processes: a TCP connection to the node address, from a pod or from this
# host, goes to the same port on 127.0.0.1, where the emulators, the API server and any server a test starts
# listen. Not the node's own servers (the kubelet and DNS listen on the node address itself) nor etcd; and
# after kube-proxy's rules (appended, while kube-proxy puts its jump first), so NodePorts stay kube-proxy's.
add_jump() {
	iptables -w -t "$1" -C "$2" "${@:4}" -j "$3" 2>/dev/null || iptables -w -t "$1" -A "$2" "${@:4}" -j "$3"
}
iptables -w -t nat -N "$NODE_EMULATOR_CHAIN" 2>/dev/null || iptables -w -t nat -F "$NODE_EMULATOR_CHAIN"
add_jump nat PREROUTING "$NODE_EMULATOR_CHAIN" -i "$NODE_BRIDGE" -d "$NODE_IP"
add_jump nat OUTPUT "$NODE_EMULATOR_CHAIN" -d "$NODE_IP"
iptables -w -t nat -A "$NODE_EMULATOR_CHAIN" -p tcp -m multiport \
	! --dports "$KUBELET_PORT,53,$ETCD_PORT,$ETCD_PEER_PORT" -j DNAT --to-destination 127.0.0.1

# write_config FILE: FILE's content from stdin, left untouched when it is already that (kube-proxy exits when
# its configuration file changes, so starting the test bed again must not rewrite it).
write_config() {
	cat >"$1.new"
	if cmp -s "$1.new" "$1"; then rm -f "$1.new"; else mv "$1.new" "$1"; fi
}

# --- Certificates from the test bed's CA ---------------------------------------------------------------------
node_cert() { signed_cert "$NODE_DIR/pki" "$@"; }
node_cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" "extendedKeyUsage=clientAuth"
# The serving certificate names the node address, which follows the port base: one made for another is
# made again.
if [[ -f $NODE_DIR/pki/kubelet-serving.crt ]] &&
	! openssl x509 -in "$NODE_DIR/pki/kubelet-serving.crt" -noout -ext subjectAltName | grep -qw "IP Address:$NODE_IP"; then
	rm -f "$NODE_DIR/pki/kubelet-serving.crt"
fi
node_cert kubelet-serving "/CN=$NODE_NAME" \
	"subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME"$'\n'"extendedKeyUsage=serverAuth"
node_cert kube-proxy "/CN=system:kube-proxy" "extendedKeyUsage=clientAuth"
# cert_kubeconfig NAME FILE: a kubeconfig authenticating with NAME's client certificate.
cert_kubeconfig() {
	cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tributary-testbed
  cluster: {server: "https://127.0.0.1:$APISERVER_PORT", certificate-authority: "$PKI/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$NODE_DIR/pki/$1.crt", client-key: "$NODE_DIR/pki/$1.key"}
contexts:
- name: tributary-testbed
  context: {cluster: tributary-testbed, user: $1}
current-context: tributary-testbed
EOF
}
cert_kubeconfig kubelet-client "$NODE_DIR/kubelet/kubeconfig"
cert_kubeconfig kube-proxy "$NODE_DIR/kube-proxy/kubeconfig"

# --- containerd ----------------------------------------------------------------------------------------------
write_config "$NODE_DIR/cni/net.d/10-tributary.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "tributary",
  "plugins": [
    {
      "type": "bridge", "bridge": "$NODE_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
# restrict_oom_score_adj: this machine's root lacks CAP_SYS_RESOURCE, so no process may lower its OOM score
# below its parent's; the runtime would fail every pause container (the kubelet asks for -998). Scores are
# raised to containerd's own (0) instead.
write_config "$NODE_DIR/containerd/config.toml" <<EOF
version = 3
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"

[grpc]
  address = "$CONTAINERD_SOCKET"

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = "$NODE_DIR/containerd/opt"
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$PAUSE_IMAGE'
  [plugins.'io.containerd.cri.v1.runtime']
    netns_mounts_under_state_dir = true
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '$(command -v runc)'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/usr/lib/cni']
      conf_dir = '$NODE_DIR/cni/net.d'
      max_conf_num = 1
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
EOF
start containerd containerd --config "$NODE_DIR/containerd/config.toml" --log-level warn
wait_for containerd 60 node_ctr version

# --- Images: no registry is reachable, so both are imported from archives built here -------------------------
# binary_image NAME REFERENCE USER: an image whose whole file system is the static binary $TESTBED_BIN/NAME
# (at /NAME, its entrypoint), imported into the node.
binary_image() {
	local rootfs="$NODE_DIR/images/$1-rootfs"
	rm -rf "$rootfs" && mkdir -p "$rootfs"
	install -m 0755 "$(readlink -f "$TESTBED_BIN/$1")" "$rootfs/$1"
	python3 "$ROOT/scripts/image_archive.py" "$rootfs" "$NODE_DIR/images/$1.tar" "$2" --entrypoint "/$1" --user "$3" >/dev/null
	node_ctr images import "$NODE_DIR/images/$1.tar" >/dev/null || die "importing the $1 image failed (log: $TESTBED_DIR/logs/ctr.log)"
}
# The pod sandbox (testbed/tools/pause), and a network probe for tests (testbed/tools/nodeprobe).
binary_image pause "$PAUSE_IMAGE" 65535:65535
binary_image nodeprobe "$NODEPROBE_IMAGE" 65532:65532
# node_import_tributary ARCHIVE: import a tributary image archive under the name Pods use. The CRI looks
# `tributary:X` up by its normalized name (with the default registry's domain), which containerd gives an
# image only when it imports an archive's `docker save` part; through an OCI index it keeps the bare name the
# index gives, and a Pod asking for `tributary:X` fails with ErrImageNeverPull. The name is read back from what
# the import printed.
node_import_tributary() {
	local name
	name=$(node_ctr images import "$1" | awk '$1 ~ /\/tributary:/ && $2 == "saved" {print $1; exit}')
	[[ -n $name ]] || die "importing $1 gave no tributary image (log: $TESTBED_DIR/logs/ctr.log)"
	NODE_TRIBUTARY_IMAGE=${name##*/}
	log "image $NODE_TRIBUTARY_IMAGE imported into the node"
}
# node_tributary_archive BINARY: the image of the static BINARY (the debug build: no release build for the test
# bed), its debug sections left out (a quarter of its size), built by buildah from the Dockerfile itself: the
# root file system scripts/image.sh lays out stands in for the Dockerfile's build stage (`--build-context
# build=…`, so that stage, FROM a registry image, is never built or pulled), and its final stage (FROM
# scratch) is built over it. Written as a `docker save` archive, $NODE_DIR/tributary-image/tributary.tar;
# made again only when BINARY or the Dockerfile changed.
node_tributary_archive() {
	local dir="$NODE_DIR/tributary-image" stamp version
	stamp="$(stat -c '%s %Y %i' "$(readlink -f "$1")") $(sha256sum <"$ROOT/Dockerfile" | cut -c1-16)"
	if [[ ! -f $dir/tributary.tar || $(cat "$dir/stamp" 2>/dev/null) != "$stamp" ]]; then
		rm -rf "$dir" && mkdir -p "$dir/context" "$dir/stage/out"
		objcopy --strip-debug "$1" "$dir/tributary" || die "cannot copy $1 without its debug sections"
		TRIBUTARY_IMAGE_FORMAT=none bash "$ROOT/scripts/image.sh" assemble "$dir/tributary" "$dir/stage/out" >/dev/null
		version=$("$dir/tributary" version | awk '{print $NF}')
		local buildah=(buildah --root "$dir/storage" --runroot "$dir/run" --storage-driver vfs)
		{
			"${buildah[@]}" bud --quiet --timestamp 0 --pull=never --iidfile "$dir/image-id" \
				--build-context "build=$dir/stage" -f "$ROOT/Dockerfile" "$dir/context" &&
				"${buildah[@]}" push --quiet "$(cat "$dir/image-id")" "docker-archive:$dir/tributary.tar:tributary:$version"
		} >"$TESTBED_DIR/logs/buildah.log" 2>&1 || die "building the tributary image failed (log: $TESTBED_DIR/logs/buildah.log)"
		rm -rf "$dir/storage" "$dir/run" "$dir/stage" "$dir/context" "$dir/tributary"
		echo "$stamp" >"$dir/stamp"
	fi
}
NODE_TRIBUTARY_IMAGE=
if [[ -n ${TESTBED_NODE_IMAGE:-} ]]; then
	[[ -f $TESTBED_NODE_IMAGE ]] || die "TESTBED_NODE_IMAGE=$TESTBED_NODE_IMAGE is not a file"
	# An archive of `make image` has an OCI index too: imported from a copy without it.
	cp "$TESTBED_NODE_IMAGE" "$NODE_DIR/images/tributary-docker.tar"
	tar --delete -f "$NODE_DIR/images/tributary-docker.tar" index.json oci-layout 2>/dev/null || true
	node_import_tributary "$NODE_DIR/images/tributary-docker.tar"
else
	node_binary=${TESTBED_NODE_BINARY:-${TRIBUTARY_BUILD_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')/debug}/tributary}
	if [[ -x $node_binary ]]; then
		image_start=$SECONDS
		node_tributary_archive "$node_binary"
		node_import_tributary "$NODE_DIR/tributary-image/tributary.tar"
		log "tributary image from $node_binary in $((SECONDS - image_start))s"
	else
		log "no tributary binary at $node_binary (cargo build --bin tributary, with scripts/cargo-env.sh sourced); the node runs without its image"
	fi
fi

# --- kubelet -------------------------------------------------------------------------------------------------
# cgroup v1 (this machine's hierarchy, left as it is) needs failCgroupV1: false; cgroupfs, as there is no
# systemd managing cgroups here. It serves on the node address only, authenticating clients by the test bed
# CA (the API server's kubelet-client certificate) and authorizing through the API server; no read-only port.
# Eviction thresholds are low: the test bed shares its disk and memory with builds, and a node under
# pressure would evict the pods a test waits for.
write_config "$NODE_DIR/kubelet/config.yaml" <<EOF2
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCKET
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $NODE_DIR/pki/kubelet-serving.crt
tlsPrivateKeyFile: $NODE_DIR/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
registerWithTaints:
- {key: tributary.dev/real-node, value: "true", effect: NoSchedule}
clusterDomain: cluster.local
clusterDNS: [$CLUSTER_DNS_IP]
resolvConf: /etc/resolv.conf
maxPods: 30
serializeImagePulls: false
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
failSwapOn: false
oomScoreAdj: 0
localStorageCapacityIsolation: true
staticPodPath: ""
podLogsDir: $NODE_DIR/pod-logs
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
EOF2
# A Node object left from an earlier start would look Ready before this kubelet has registered (a running
# kubelet keeps its Node: it registers only when it starts).
if ! is_running kubelet; then
	kubectl --kubeconfig "$KUBECONFIG_FILE" delete node "$NODE_NAME" --ignore-not-found >/dev/null
fi
start kubelet kubelet --config "$NODE_DIR/kubelet/config.yaml" --kubeconfig "$NODE_DIR/kubelet/kubeconfig" \
	--root-dir "$NODE_DIR/kubelet/root" --cert-dir "$NODE_DIR/kubelet/pki" \
	--hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
	--node-labels "tributary.dev/node=real,type=real" --v 1
node_ready() {
	[[ $(kubectl --kubeconfig "$KUBECONFIG_FILE" get node "$NODE_NAME" \
		-o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}
wait_for kubelet 120 node_ready
log "node $NODE_NAME Ready $((SECONDS - NODE_START))s after its start began"

# --- kube-proxy ----------------------------------------------------------------------------------------------
# iptables mode; NodePorts only on the node address (never 127.0.0.1, which would make kube-proxy allow
# route_localnet on every interface); conntrack limits left as the host has them.
write_config "$NODE_DIR/kube-proxy/config.yaml" <<EOF2
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $NODE_DIR/kube-proxy/kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $NODE_POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
nodePortAddresses: ["$NODE_IP/32"]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF2
start kube-proxy kube-proxy --config "$NODE_DIR/kube-proxy/config.yaml" --v 1
wait_for kube-proxy 60 curl -sf "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"
# kube-proxy puts its jump first in PREROUTING (at its first sync, after it reports healthy): the kubernetes
# Service's chain goes back before it. kube-proxy only checks that its jump exists, so the order stays.
kube_proxy_jump() {
	iptables -w -t nat -C PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES 2>/dev/null
}
wait_for kube-proxy 60 kube_proxy_jump
iptables -w -t nat -D PREROUTING -i "$NODE_BRIDGE" -j "$NODE_SERVICE_CHAIN"
iptables -w -t nat -I PREROUTING 1 -i "$NODE_BRIDGE" -j "$NODE_SERVICE_CHAIN"

# --- Cluster DNS ---------------------------------------------------------------------------------------------
# CoreDNS as a host process answering on port 53 of the node address, behind the Service kube-dns whose
# address pods' resolv.conf names (clusterDNS), for the cluster domain only: no upstream, so no name is ever sent off this machine. It reads
# Services and EndpointSlices as system:coredns, with the rights kubeadm gives CoreDNS.
node_cert coredns "/CN=system:coredns" "extendedKeyUsage=clientAuth"
mkdir -p "$NODE_DIR/coredns"
cert_kubeconfig coredns "$NODE_DIR/coredns/kubeconfig"
kubectl --kubeconfig "$KUBECONFIG_FILE" apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}]
EOF
write_config "$NODE_DIR/coredns/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:$COREDNS_HEALTH_PORT
    ready 127.0.0.1:$COREDNS_READY_PORT
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $NODE_DIR/coredns/kubeconfig tributary-testbed
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    cache 30
    loadbalance
}
EOF
start coredns coredns -conf "$NODE_DIR/coredns/Corefile"
wait_for coredns 60 curl -sf "http://127.0.0.1:$COREDNS_READY_PORT/ready"
# The Service pods' resolv.conf names, as in kind (kube-system/kube-dns, 10.96.0.10); its endpoint is CoreDNS
# on the node address, kept by hand (a Service without selector), and kube-proxy forwards to it.
kubectl --kubeconfig "$KUBECONFIG_FILE" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $CLUSTER_DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-node
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: tributary-testbed}
addressType: IPv4
endpoints: [{addresses: ["$NODE_IP"], conditions: {ready: true}, nodeName: $NODE_NAME}]
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
EOF
log "node $NODE_NAME up in $((SECONDS - NODE_START))s"
