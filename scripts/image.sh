#!/usr/bin/env bash
# The container image of tributary, built without a container engine: the Dockerfile calls this script,
# and so do `make image` and the tests.
#
#   scripts/image.sh build [OUT]            build the static release binary, then `assemble` it into OUT
#                                           (default target/image)
#   scripts/image.sh assemble BINARY OUT    lay out the image from an existing static binary:
#       OUT/rootfs/            the image's whole filesystem (the Dockerfile copies it onto `scratch`)
#       OUT/tributary.tar      the same as an image archive, OCI layout and `docker save` format in one,
#                              tagged tributary:<version>: `kind load image-archive`, `podman load`,
#                              `skopeo copy oci-archive:...` and `ctr images import` read it
#                              (TRIBUTARY_IMAGE_FORMAT=docker: the `docker save` part only, see
#                              scripts/image_archive.py; TRIBUTARY_IMAGE_FORMAT=none: rootfs/ only, which the
#                              test bed's node builds the Dockerfile's final stage over with buildah)
#
# The image holds exactly: /tributary (static; the controller and every built-in processor), /etc/passwd
# and /etc/group with the non-root user 65532 (nonroot), /etc/nsswitch.conf (hosts: files dns), and the CA
# bundle /etc/ssl/certs/ca-certificates.crt from the build machine (Debian package ca-certificates) for TLS
# to the clouds. It runs as 65532:65532 with /tributary as its entrypoint.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "image: $*" >&2; exit 1; }

assemble() {
	local binary=$1 out=$2
	[[ -x $binary ]] || die "$binary is not an executable"
	# A dynamically linked binary has a program interpreter (PT_INTERP); the image has no libc to offer it.
	if LC_ALL=C readelf -lW "$binary" | grep -q 'Requesting program interpreter'; then
		die "$binary is dynamically linked; build it with scripts/cargo-env.sh sourced (crt-static)"
	fi
	local ca=${TRIBUTARY_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
	[[ -s $ca ]] || die "no CA bundle at $ca (Debian: apt-get install ca-certificates), or set TRIBUTARY_CA_BUNDLE"
	local version
	version=$("$binary" version | awk '{print $NF}')
	[[ -n $version ]] || die "$binary version printed nothing"

	rm -rf "$out/rootfs" && mkdir -p "$out/rootfs/etc/ssl/certs"
	install -m 0755 "$binary" "$out/rootfs/tributary"
	install -m 0644 "$ca" "$out/rootfs/etc/ssl/certs/ca-certificates.crt"
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$out/rootfs/etc/passwd"
	printf 'root:x:0:\nnonroot:x:65532:\n' >"$out/rootfs/etc/group"
	printf 'hosts: files dns\n' >"$out/rootfs/etc/nsswitch.conf"
	chmod 0644 "$out/rootfs/etc/passwd" "$out/rootfs/etc/group" "$out/rootfs/etc/nsswitch.conf"
	if [[ ${TRIBUTARY_IMAGE_FORMAT:-} == none ]]; then
		echo "image: tributary:$version laid out in $out/rootfs"
		return 0
	fi
	python3 scripts/image_archive.py "$out/rootfs" "$out/tributary.tar" "tributary:$version" \
		--format "${TRIBUTARY_IMAGE_FORMAT:-oci+docker}"
	echo "image: tributary:$version in $out (rootfs/, tributary.tar)"
}

case "${1:-}" in
build)
	out=${2:-target/image}
	bash scripts/cargo-lock.sh restore
	# shellcheck source=scripts/cargo-env.sh
	source scripts/cargo-env.sh
	cargo build --release --locked --bin tributary
	assemble "$TRIBUTARY_RELEASE_DIR/tributary" "$out"
	;;
assemble)
	[[ $# -eq 3 ]] || die "usage: $0 assemble BINARY OUT"
	assemble "$2" "$3"
	;;
*)
	echo "usage: $0 build [OUT] | assemble BINARY OUT" >&2
	exit 2
	;;
esac
