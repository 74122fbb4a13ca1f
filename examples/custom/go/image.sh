#!/usr/bin/env bash
# Builds the ledger processor's image here, without a registry or a container engine: the static binary
# (CGO_ENABLED=0) is the image's whole file system, beside an empty /tmp for its ledger, written as an OCI
# archive (also in `docker save` format) by scripts/image_archive.py, as the test bed builds its node's
# pause and nodeprobe images.
#
#   examples/custom/go/image.sh [OUT.tar] [NAME:TAG]
#
# Defaults: target/image/ledger.tar and tributary.local/examples/ledger:0.1 (a name with a domain, so
# containerd keeps it as it is when importing through the OCI index and the CRI finds it). Load it with
# `ctr -n k8s.io images import OUT.tar` (the test bed's node), `kind load image-archive OUT.tar`, or
# `docker load -i OUT.tar`. With a registry, the Dockerfile beside this script builds the same image.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:-$root/target/image/ledger.tar}
name=${2:-tributary.local/examples/ledger:0.1}
command -v go >/dev/null || { echo "image.sh: go is not installed (the test bed's install.sh installs it)" >&2; exit 1; }

work=$(dirname "$out")/ledger-rootfs
rm -rf "$work" && mkdir -p "$work/tmp"
chmod 1777 "$work/tmp"
# No toolchain download (GOTOOLCHAIN=local), no module download (standard library only), reproducible
# paths (-trimpath), no symbol table (-s -w).
(cd "$here" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags="-s -w" -o "$work/ledger" .)
python3 "$root/scripts/image_archive.py" "$work" "$out" "$name" --entrypoint /ledger --user 65532:65532 >/dev/null
echo "$out $name"
