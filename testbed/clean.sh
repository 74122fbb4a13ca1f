#!/usr/bin/env bash
# Removes what the tests left in the running test bed: every namespace labelled tributary.dev/test=true
# (tests/it/support's `namespace` labels them). The tests' controllers are gone, so the finalizers of the
# Tributary objects in them are removed first by testbed/unfinalize.py (their cloud resources lived in the emulators, which the next
# `testbed-down` empties); otherwise the namespaces would stay Terminating.
source "$(dirname "$0")/lib.sh"
# shellcheck disable=SC1091
source "$TESTBED_DIR/env"
namespaces=$(kubectl get namespaces -l tributary.dev/test=true -o name | sed 's|^namespace/||')
unfinalized=$(python3 "$(dirname "$0")/unfinalize.py")
count=0
for ns in $namespaces; do
	kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
	count=$((count + 1))
done
log "removed $count test namespaces ($unfinalized objects' finalizers removed first)"
