#!/usr/bin/env bash
# Filter benchmark: Tributary's engine and AWS event-ruler on the same events and patterns, in one run.
# Installs event-ruler from Maven Central into the cache. quamina (the Go engine) is not served by the Go
# module proxy these machines reach (quamina.net/go/quamina answers 403), so it is not part of the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${TRIBUTARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary}/bench-filter
mkdir -p "$cache"
bash scripts/cargo-lock.sh restore
# shellcheck source=scripts/cargo-env.sh
source scripts/cargo-env.sh

echo "== tributary (cargo bench -p sns-filter --bench filter)"
cargo bench --locked -p sns-filter --bench filter 2>/dev/null

echo
echo "== event-ruler (Java $(java -version 2>&1 | head -1 | cut -d'"' -f2))"
if [[ ! -f $cache/libs/.complete ]]; then
	mvn -B -q -f bench/filter/pom.xml dependency:copy-dependencies -DoutputDirectory="$cache/libs"
	touch "$cache/libs/.complete"
fi
javac -d "$cache/classes" -cp "$cache/libs/*" bench/filter/EventRulerBench.java
java -Xmx1g -cp "$cache/classes:$cache/libs/*" EventRulerBench crates/sns-filter/target/bench/filter-workload.json
