# Installs what the test bed's real node needs (docs/testbed-node.md). Sourced by testbed/install.sh when
# TESTBED_NODE=1, after its helpers are defined; not run on its own.
# shellcheck shell=bash

# Debian's packages: runc (the OCI runtime), the CNI plugins (bridge, host-local, loopback, portmap in
# /usr/lib/cni), iptables (kube-proxy's and portmap's rules), conntrack (kube-proxy clears UDP entries) and
# buildah (builds the tributary image from the Dockerfile's final stage, testbed/node-up.sh).
node_debs_missing=()
for deb in "${NODE_DEBS[@]}"; do
	[[ $(dpkg-query -W -f '${Version}' "${deb%%=*}" 2>/dev/null) == "${deb#*=}" ]] || node_debs_missing+=("$deb")
done
if ((${#node_debs_missing[@]})); then
	[[ $(id -u) == 0 ]] || die "the real node needs root (it creates network namespaces and cgroups)"
	log "installing Debian packages ${node_debs_missing[*]}"
	apt-get install -y -q "${node_debs_missing[@]}" >"$TRIBUTARY_CACHE/node-apt.log" 2>&1 || {
		tail -n 20 "$TRIBUTARY_CACHE/node-apt.log" >&2
		die "apt-get install ${node_debs_missing[*]} failed: run apt-get update, or update NODE_DEBS in testbed/lib.sh to the versions apt-cache policy shows"
	}
fi
[[ -x /usr/lib/cni/bridge ]] || die "the CNI plugins are not in /usr/lib/cni (package containernetworking-plugins)"

# containerd 2 from its Go module, built like its own Makefile does (version stamped, no cgo: the btrfs
# snapshotter is left out, overlayfs is used); the shim without gRPC, as upstream builds it.
containerd_ldflags="-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION \
-X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
go_tool containerd github.com/containerd/containerd/v2/cmd/containerd "$containerd_ldflags" urfave_cli_no_docs
go_tool containerd github.com/containerd/containerd/v2/cmd/ctr "$containerd_ldflags" urfave_cli_no_docs "" ctr
go_tool containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 "$containerd_ldflags" \
	urfave_cli_no_docs,no_grpc "" containerd-shim-runc-v2
# The pod sandbox ("pause") process and the network probe, for the images testbed/node-up.sh builds.
go_tool pause .
go_tool nodeprobe .
# Cluster DNS: CoreDNS with the plugins the node's Corefile uses (testbed/tools/coredns).
go_tool coredns .
