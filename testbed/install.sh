#!/usr/bin/env bash
# Installs every test bed component from the package registries, pinned, into the per-machine cache, and
# links them into $TESTBED_DIR/bin. Each component is keyed by a hash of its pin files: a warm run only
# checks hashes, a changed pin rebuilds just that component.
#
#   Go modules:    kube (apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl), etcd, kwok,
#                  helm, cosmium, argocd-lua (gopher-lua), otelcol (OpenTelemetry Collector: OTLP receiver,
#                  debug and file exporters), promtool (Prometheus: checks and unit-tests the chart's alerting
#                  rules)
#   PyPI:          moto[server]
#   npm:           azurite
#   Maven Central: Apache Kafka (broker, KRaft mode), ElasticMQ (SQS-compatible, fast, message-move tasks)
#   Only with TESTBED_NODE=1 (the real node, docs/testbed-node.md): containerd 2 (daemon, ctr, runc shim),
#                  CoreDNS, the pause and nodeprobe binaries from Go modules; runc, the CNI plugins,
#                  iptables and conntrack from Debian's packages (apt-get, pinned in lib.sh).
source "$(dirname "$0")/lib.sh"

need go "Go 1.26 is required to build the control plane from Go modules"
need python3 "Python 3 is required for moto"
need node "Node.js 20 is required for Azurite"
need npm "npm is required for Azurite"
need java "Java 17 is required for the Kafka broker"
need mvn "Maven is required to resolve the Kafka broker from Maven Central"
need openssl "openssl is required to make the test bed's certificates"

mkdir -p "$TRIBUTARY_CACHE" "$TESTBED_BIN"
# One install at a time per machine: two clones (or a developer's run beside CI's) share the cache, and two
# builds writing the same cached component at once would leave it half written.
exec 9>"$TRIBUTARY_CACHE/install.lock"
flock 9
export CGO_ENABLED=0 GOFLAGS=-trimpath

# link NAME TARGET: expose a cached file under $TESTBED_BIN/NAME.
link() { ln -sfn "$2" "$TESTBED_BIN/$1"; }

# go_tool NAME PKG [LDFLAGS] [TAGS] [MODFILE] [BINARY]: build PKG from the wrapper module testbed/tools/NAME
# into the cache as BINARY (default NAME), optionally with another go.mod (`go build -modfile`) that replaces
# a dependency by a patched copy.
go_tool() {
	local name=$1 pkg=$2 ldflags=${3:-} tags=${4:-} modfile=${5:-} bin=${6:-$1}
	local mod="$TESTBED_SRC/tools/$name"
	local key
	key=$(printf '%s|%s|%s|%s' "$(go env GOVERSION)" "$pkg" "$ldflags" "$tags" |
		cat - "$mod/go.mod" "$mod/go.sum" $(find "$mod" -name '*.go' | sort) ${modfile:+"$modfile"} |
		sha256sum | cut -c1-16)
	local out="$TRIBUTARY_CACHE/bin/$name-$key/$bin"
	if [[ ! -x $out ]]; then
		log "building $bin ($pkg)$([[ $name == kube ]] && echo '; cold, this takes about 15 minutes on 2 cores')"
		local start=$SECONDS
		(cd "$mod" && go build ${modfile:+-modfile="$modfile"} -tags="$tags" -ldflags="-s -w $ldflags" -o "$out.tmp" "$pkg") ||
			die "go build of $bin failed (module $mod)"
		mv "$out.tmp" "$out"
		log "built $bin in $((SECONDS - start))s"
	fi
	link "$bin" "$out"
}

# The version is stamped the way the official build does, so `kubectl version` and /version report it.
kube_ldflags=""
for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
	kube_ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$(cut -d. -f2 <<<"$KUBE_VERSION")"
	kube_ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
done
go_tool kube ./cmd/kube "$kube_ldflags" selinux,notest,grpcnotrace
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do link "$c" kube; done
go_tool etcd . "-X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
go_tool kwok sigs.k8s.io/kwok/cmd/kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
# kwok ships its behaviours ("stages") as YAML in its module, not in the binary: use the pinned module's own
# "fast" node and pod stages plus lease heartbeats, as kwokctl does.
kwok_src=$(cd "$TESTBED_SRC/tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
	pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
	[[ -f $kwok_src/kustomize/stage/$f ]] || die "kwok stage $f not found in $kwok_src"
	printf -- '---\n'
	cat "$kwok_src/kustomize/stage/$f"
done >"$TESTBED_DIR/kwok-stages.yaml"
# Helm's default Kubernetes version (for `helm template` without a cluster) is stamped at build time, as its
# own release build does: the minor version of the client-go it is built with.
helm_k8s_minor=$(cd "$TESTBED_SRC/tools/helm" && go list -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2)
[[ $helm_k8s_minor =~ ^[0-9]+$ ]] || die "cannot read helm's client-go version from testbed/tools/helm"
go_tool helm helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$helm_k8s_minor"
# Argo CD's Lua interpreter (gopher-lua) behind a small runner of health scripts (testbed/tools/argocd-lua).
go_tool argocd-lua .
# An OpenTelemetry Collector of the core OTLP receiver, the debug exporter and the contrib file exporter
# (testbed/tools/otelcol), which the tracing tests export to.
go_tool otelcol .
# promtool from the Prometheus module (testbed/tools/promtool), which the chart's rule checks run
# (tests/it/chart/rules.rs). Built without service discovery (tag remove_all_sd): the rule commands need
# none of it, and it leaves the cloud SDKs of every discovery plugin out of the build.
go_tool promtool github.com/prometheus/prometheus/cmd/promtool \
	"-X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" remove_all_sd
# cosmium listens on ":PORT" (every interface) whatever its -Host flag says, and the test bed binds to
# 127.0.0.1 only. The pinned module is copied from the Go module cache into the tool cache, its listen address
# is patched to "-Host:PORT", and the build replaces the module by that copy through a generated go.mod.
# Its account (GET /) names the regional endpoint the Cosmos DB SDK then sends every request to: patched to
# the address the client used (its Host header) rather than -Host, as a real account's regional endpoints
# are reachable by its clients; otherwise a pod on the real node, which reaches cosmium at the node address,
# is sent to 127.0.0.1, its own loopback. Nothing of cosmium is copied into this repository.
cosmium_mod="$TESTBED_SRC/tools/cosmium"
cosmium_src=$(cd "$cosmium_mod" && go mod download -json github.com/pikami/cosmium | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d $cosmium_src ]] || die "go mod download of github.com/pikami/cosmium failed"
cosmium_patched="$TRIBUTARY_CACHE/src/cosmium-$COSMIUM_VERSION-loopback-host"
if [[ ! -f $cosmium_patched/.patched ]]; then
	rm -rf "$cosmium_patched" && mkdir -p "$(dirname "$cosmium_patched")"
	cp -r "$cosmium_src" "$cosmium_patched" && chmod -R u+w "$cosmium_patched"
	sed -i 's/listenAddress := fmt.Sprintf(":%d", s.config.Port)/listenAddress := fmt.Sprintf("%s:%d", s.config.Host, s.config.Port)/' \
		"$cosmium_patched/api/router.go"
	grep -q 's.config.Host, s.config.Port' "$cosmium_patched/api/router.go" ||
		die "cosmium $COSMIUM_VERSION: the listen address line to patch was not found in api/router.go"
	sed -i 's|"databaseAccountEndpoint": h.config.DatabaseEndpoint,|"databaseAccountEndpoint": "https://" + c.Request.Host + "/",|' \
		"$cosmium_patched/api/handlers/server_info.go"
	[[ $(grep -c 'c.Request.Host + "/"' "$cosmium_patched/api/handlers/server_info.go") == 2 ]] ||
		die "cosmium $COSMIUM_VERSION: the two regional endpoints to patch were not found in api/handlers/server_info.go"
	touch "$cosmium_patched/.patched"
fi
cosmium_modfile="$TRIBUTARY_CACHE/src/cosmium-wrapper.mod"
{ cat "$cosmium_mod/go.mod"; echo "replace github.com/pikami/cosmium => $cosmium_patched"; } >"$cosmium_modfile"
cp "$cosmium_mod/go.sum" "${cosmium_modfile%.mod}.sum"
go_tool cosmium github.com/pikami/cosmium/cmd/server "" "" "$cosmium_modfile"

# moto in its own virtualenv, every transitive dependency pinned, patched so DynamoDB transactions back up
# the items they touch instead of whole tables and concurrent requests or receives do not race
# (testbed/moto-patch.py says why).
moto_key=$(hash_files "$TESTBED_SRC/moto-requirements.txt" "$TESTBED_SRC/moto-patch.py" <(python3 --version))
moto_venv="$TRIBUTARY_CACHE/moto-$moto_key"
if [[ ! -x $moto_venv/bin/moto_server ]]; then
	log "installing moto $MOTO_VERSION"
	rm -rf "$moto_venv"
	python3 -m venv "$moto_venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
	"$moto_venv/bin/pip" install --quiet --no-deps -r "$TESTBED_SRC/moto-requirements.txt" ||
		die "pip install of moto failed"
	"$moto_venv/bin/python" "$TESTBED_SRC/moto-patch.py" \
		"$("$moto_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" ||
		{ rm -rf "$moto_venv"; die "patching moto failed"; }
fi
link moto_server "$moto_venv/bin/moto_server"

# Azurite from the committed lock file.
azurite_key=$(hash_files "$TESTBED_SRC/azurite/package-lock.json" <(node --version))
azurite_dir="$TRIBUTARY_CACHE/azurite-$azurite_key"
if [[ ! -x $azurite_dir/node_modules/.bin/azurite-queue ]]; then
	log "installing azurite $AZURITE_VERSION"
	rm -rf "$azurite_dir" && mkdir -p "$azurite_dir"
	cp "$TESTBED_SRC/azurite/package.json" "$TESTBED_SRC/azurite/package-lock.json" "$azurite_dir/"
	(cd "$azurite_dir" && npm ci --no-audit --no-fund --silent) || die "npm ci of azurite failed"
fi
link azurite-queue "$azurite_dir/node_modules/.bin/azurite-queue"

# Kafka: the broker's jars resolved by Maven into a class path folder.
kafka_key=$(hash_files "$TESTBED_SRC/kafka/pom.xml")
kafka_dir="$TRIBUTARY_CACHE/kafka-$kafka_key"
if [[ ! -f $kafka_dir/libs/.complete ]]; then
	log "resolving Apache Kafka $KAFKA_VERSION from Maven Central"
	rm -rf "$kafka_dir"
	mvn -B -q -f "$TESTBED_SRC/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$kafka_dir/libs" || die "mvn dependency:copy-dependencies for Kafka failed"
	touch "$kafka_dir/libs/.complete"
fi
ln -sfn "$kafka_dir/libs" "$TESTBED_DIR/kafka-libs"

# ElasticMQ: the server's jars, the same way.
elasticmq_key=$(hash_files "$TESTBED_SRC/elasticmq/pom.xml")
elasticmq_dir="$TRIBUTARY_CACHE/elasticmq-$elasticmq_key"
if [[ ! -f $elasticmq_dir/libs/.complete ]]; then
	log "resolving ElasticMQ $ELASTICMQ_VERSION from Maven Central"
	rm -rf "$elasticmq_dir"
	mvn -B -q -f "$TESTBED_SRC/elasticmq/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$elasticmq_dir/libs" || die "mvn dependency:copy-dependencies for ElasticMQ failed"
	touch "$elasticmq_dir/libs/.complete"
fi
ln -sfn "$elasticmq_dir/libs" "$TESTBED_DIR/elasticmq-libs"

# The real node (opt-in, TESTBED_NODE=1): testbed/node-install.sh.
if [[ ${TESTBED_NODE:-0} == 1 ]]; then
	source "$TESTBED_SRC/node-install.sh"
fi

log "installed into $TRIBUTARY_CACHE; binaries linked in $TESTBED_BIN"
