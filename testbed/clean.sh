#!/usr/bin/env bash
# Removes what the tests left in the running test bed: every namespace labelled tributary.dev/test=true
# (tests/common's `namespace` labels them). The tests' controllers are gone, so the finalizers of the
# Tributary objects in them are removed first (their cloud resources lived in the emulators, which the next
# `testbed-down` empties); otherwise the namespaces would stay Terminating.
source "$(dirname "$0")/lib.sh"
# shellcheck disable=SC1091
source "$TESTBED_DIR/env"
kinds=topics.tributary.dev,queues.tributary.dev,deadletters.tributary.dev,subscriptions.tributary.dev,devicestreams.tributary.dev,consumers.tributary.dev
namespaces=$(kubectl get namespaces -l tributary.dev/test=true -o name | sed 's|^namespace/||')
count=0
for ns in $namespaces; do
	for object in $(kubectl get --namespace "$ns" "$kinds" -o name 2>/dev/null); do
		kubectl patch --namespace "$ns" "$object" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
	done
	kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
	count=$((count + 1))
done
log "removed $count test namespaces"
