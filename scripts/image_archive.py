#!/usr/bin/env python3
"""Writes a container image archive from a root filesystem folder, without a container engine.

    image_archive.py ROOTFS OUT.tar NAME:TAG [--entrypoint PATH] [--user UID:GID] [--format oci+docker|docker]

The image runs ENTRYPOINT (default /tributary) as USER (default 65532:65532, nonroot); the test bed's node
writes its pause image with other values (testbed/node-up.sh).
The archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...) that is also in the format of
`docker save` (manifest.json with RepoTags, pointing at the same blobs), so containerd (`kind load
image-archive`, `ctr images import`), podman, skopeo and docker all load it. One uncompressed layer holds
ROOTFS; files are owned by root and every timestamp is zero, so the same ROOTFS always gives the same
image digest.

`--format docker` leaves the OCI layout out (the test bed's node): containerd names an image it imports
through an OCI index exactly as the index does (a bare `tributary:TAG`, which the CRI never finds, as it
looks names up normalized), while it normalizes the names of a `docker save` archive.
"""

import hashlib
import io
import json
import os
import platform
import sys
import tarfile

ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


def layer_tar(rootfs: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = []
        for directory, dirs, files in os.walk(rootfs):
            dirs.sort()
            for name in dirs + sorted(files):
                paths.append(os.path.join(directory, name))
        for path in sorted(paths, key=lambda p: os.path.relpath(p, rootfs)):
            info = tar.gettarinfo(path, arcname=os.path.relpath(path, rootfs))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.pax_headers = {}
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def blob(data: bytes) -> tuple[str, bytes]:
    return hashlib.sha256(data).hexdigest(), data


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def options(args: list[str]) -> dict[str, str] | None:
    """The optional flags after the three positional arguments, or None when they are malformed."""
    values = {"--entrypoint": "/tributary", "--user": "65532:65532", "--format": "oci+docker"}
    if len(args) % 2:
        return None
    for flag, value in zip(args[::2], args[1::2]):
        if flag not in values:
            return None
        values[flag] = value
    return values if values["--format"] in ("oci+docker", "docker") else None


def main() -> int:
    flags = options(sys.argv[4:])
    if len(sys.argv) < 4 or ":" not in sys.argv[3] or flags is None:
        print(__doc__, file=sys.stderr)
        return 2
    rootfs, out, reference = sys.argv[1:4]
    name, tag = reference.rsplit(":", 1)
    architecture = ARCHITECTURES.get(platform.machine(), platform.machine())

    layer_digest, layer = blob(layer_tar(rootfs))
    config_digest, config = blob(canonical({
        "architecture": architecture,
        "os": "linux",
        "config": {
            "User": flags["--user"],
            "Entrypoint": [flags["--entrypoint"]],
            "WorkingDir": "/",
            "Labels": {
                "org.opencontainers.image.title": name.rsplit("/", 1)[-1],
                "org.opencontainers.image.version": tag,
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created_by": "scripts/image.sh assemble"}],
    }))
    manifest_digest, manifest = blob(canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": f"sha256:{config_digest}",
            "size": len(config),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": f"sha256:{layer_digest}",
            "size": len(layer),
        }],
    }))
    index = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": f"sha256:{manifest_digest}",
            "size": len(manifest),
            "annotations": {
                "io.containerd.image.name": reference,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    })
    docker_manifest = canonical([{
        "Config": f"blobs/sha256/{config_digest}",
        "RepoTags": [reference],
        "Layers": [f"blobs/sha256/{layer_digest}"],
    }])

    oci = [("oci-layout", canonical({"imageLayoutVersion": "1.0.0"})), ("index.json", index)]
    entries = (oci if flags["--format"] == "oci+docker" else []) + [
        ("manifest.json", docker_manifest),
        (f"blobs/sha256/{layer_digest}", layer),
        (f"blobs/sha256/{config_digest}", config),
        (f"blobs/sha256/{manifest_digest}", manifest),
    ]
    with tarfile.open(out + ".tmp", mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    os.replace(out + ".tmp", out)
    print(f"sha256:{manifest_digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
