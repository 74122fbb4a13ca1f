#!/usr/bin/env bash
# Writes examples/argocd/argocd-cm-health.yaml from examples/argocd/health.lua: the argocd-cm entries
# that give Argo CD the health of all six Tributary kinds (one script serves them all). `make argocd-health`
# runs this; tests/it/argocd_health.rs fails when the two differ.
set -euo pipefail
cd "$(dirname "$0")/.."
out=examples/argocd/argocd-cm-health.yaml
{
	echo "# Generated from health.lua by scripts/argocd-health.sh (make argocd-health); do not edit."
	echo "# Merge into Argo CD's argocd-cm ConfigMap (namespace argocd), e.g."
	echo "#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file examples/argocd/argocd-cm-health.yaml"
	echo "# or put the same keys under configs.cm of the argo-cd Helm chart."
	echo "data:"
	for kind in Topic Queue Subscription Consumer DeviceStream DeadLetter; do
		echo "  resource.customizations.health.tributary.dev_$kind: |"
		sed 's/^/    /; s/^    $//' examples/argocd/health.lua
	done
} >"$out"
echo "wrote $out"
