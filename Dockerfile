# The tributary image: one static binary on an empty base, run as a non-root user. The controller and
# every built-in processor run from it (`tributary controller`, `tributary worker`, `tributary webhook`).
#
# The build steps are scripts/image.sh, which the tests run too (no container engine is needed for them):
# it builds the static binary and lays out the image's filesystem, which this file copies onto scratch.
# Without a container engine, `make image` writes the same image as an archive (target/image/tributary.tar)
# that `kind load image-archive` reads.
FROM rust:1.95-bookworm AS build
# readelf checks that the binary is static; python3 writes the archive; the CA bundle goes into the image.
RUN apt-get update && apt-get install -y --no-install-recommends binutils ca-certificates python3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN bash scripts/image.sh build /out

FROM scratch
COPY --from=build /out/rootfs/ /
USER 65532:65532
ENTRYPOINT ["/tributary"]
