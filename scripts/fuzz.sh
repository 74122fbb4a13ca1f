#!/usr/bin/env bash
# `make fuzz`: run the filter-policy fuzz target for a bounded time (FUZZ_SECONDS, default 60).
# Needs a nightly toolchain (libFuzzer's instrumentation); installs cargo-fuzz, pinned, into the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_FUZZ_VERSION=0.13.2
tools=${TRIBUTARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary}/cargo-tools
cargo +nightly --version >/dev/null 2>&1 || {
	echo "make fuzz: a nightly Rust toolchain is required (rustup toolchain install nightly)" >&2
	exit 1
}
if [[ "$("$tools/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
	cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION" --root "$tools"
fi
bash scripts/cargo-lock.sh restore
# Start from the main lock file so the fuzz build uses the same pinned crates.
cp Cargo.lock fuzz/Cargo.lock
mkdir -p fuzz/corpus/filter_policy
printf '{"event":["OrderPlaced"],"total":[{"numeric":[">=",100]}]}\0{"event":{"Type":"String","Value":"OrderPlaced"}}' \
	>fuzz/corpus/filter_policy/seed-attributes
printf '{"a":{"b":[{"prefix":"x"}]},"$or":[{"c":[null]},{"d":[{"exists":false}]}]}\0{"a":{"b":"xy"}}' \
	>fuzz/corpus/filter_policy/seed-body
cd fuzz
RUSTUP_TOOLCHAIN=nightly "$tools/bin/cargo-fuzz" run filter_policy corpus/filter_policy -- -max_total_time="${FUZZ_SECONDS:-60}" -max_len=4096
