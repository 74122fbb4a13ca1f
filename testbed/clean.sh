#!/usr/bin/env bash
# Removes what the tests left in the running test bed: every namespace labelled tributary.dev/test=true
# (tests/it/support's `namespace` labels them). The tests' controllers are gone, so the finalizers of the
# Tributary objects in them are removed first by testbed/unfinalize.py (their cloud resources lived in the emulators, which the next
# `testbed-down` empties); otherwise the namespaces would stay Terminating.
#
# With --node it removes only the namespaces whose pods run on the real node (labelled tributary.dev/node=real
# too) and waits, up to 3 minutes, until they are gone, their pods stopped: scripts/test.sh does so before
# the tests that hold the test bed alone, leaving a failed test's other namespaces for a look.
source "$(dirname "$0")/lib.sh"
# shellcheck disable=SC1091
source "$TESTBED_DIR/env"
selector=tributary.dev/test=true
if [[ ${1:-} == --node ]]; then selector+=,tributary.dev/node=real; fi
namespaces=$(kubectl get namespaces -l "$selector" -o name | sed 's|^namespace/||')
unfinalized=$(python3 "$(dirname "$0")/unfinalize.py" "$selector")
count=0
for ns in $namespaces; do
	kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
	count=$((count + 1))
done
log "removed $count test namespaces ($unfinalized objects' finalizers removed first)"
if [[ ${1:-} == --node && -n $namespaces ]]; then
	# shellcheck disable=SC2086 # one argument per namespace; one already gone counts as deleted
	kubectl wait --for=delete $(printf 'namespace/%s ' $namespaces) --timeout=180s >/dev/null ||
		die "the real node's test namespaces were not gone within 3 minutes: $(kubectl get namespaces -l "$selector" --no-headers 2>&1)"
	log "the real node's test namespaces are gone"
fi
