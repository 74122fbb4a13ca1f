#!/usr/bin/env bash
# Sourced by every script that builds tributary (make test, make demo, make image, the benchmarks), so they
# share one build and what the tests run is the binary the container image ships: a static executable
# (glibc linked in with `crt-static`, OpenSSL and zlib for librdkafka linked from static archives), which
# needs nothing from the image it runs in. glibc 2.34 and later carry their `files` and `dns` host lookups
# inside libc itself, so name resolution works in a static binary without any NSS modules beside it.
#
# The target is named explicitly (the host's own triple): only then does Cargo keep the static flag off
# build scripts and proc-macros, which must stay dynamic. Binaries land in
# $CARGO_TARGET_DIR/<triple>/<profile>/: TRIBUTARY_BUILD_DIR and TRIBUTARY_RELEASE_DIR.
host=$(rustc -vV | sed -n 's/^host: //p')
[[ -n $host ]] || { echo "cargo-env: rustc -vV printed no host triple" >&2; return 1; }
export CARGO_BUILD_TARGET=$host
triple_var=$(tr 'a-z-' 'A-Z_' <<<"$host")
export "CARGO_TARGET_${triple_var}_RUSTFLAGS=-C target-feature=+crt-static"
export OPENSSL_STATIC=1 LIBZ_SYS_STATIC=1
export TRIBUTARY_BUILD_DIR="${CARGO_TARGET_DIR:-target}/$host/debug"
export TRIBUTARY_RELEASE_DIR="${CARGO_TARGET_DIR:-target}/$host/release"
unset host triple_var
# Nothing the tests, the demo or the benchmarks start may ask an instance metadata service
# (169.254.169.254 is not on this machine): the AWS SDK's default chain does when a process has no region
# in its environment, e.g. a Storage Queue worker (workers load the AWS configuration whatever their source).
export AWS_EC2_METADATA_DISABLED=true
