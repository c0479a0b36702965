#!/usr/bin/env bash
# Fails when render/ depends on a client package.
#
# One exception is upstream's, not ours: client-go's
# applyconfigurations/meta/v1, which every typed apply configuration embeds,
# imports client-go/discovery (and through it client-go/rest and
# kubernetes/scheme) for its UnstructuredExtractor. Packages reached only
# through it are allowed. Anything else that reaches a client package, and any
# direct import of one, fails.
set -euo pipefail
cd "$(dirname "$0")/.."

client='^(sigs\.k8s\.io/controller-runtime/pkg/client|k8s\.io/client-go/(kubernetes|rest|dynamic|discovery|tools|informers|listers))(/|$)'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go list -deps ./render/... | sort -u >"$tmp/render"
go list -deps k8s.io/client-go/applyconfigurations/meta/v1 | sort -u >"$tmp/acmeta"
go list -f '{{join .Imports "\n"}}' ./render/... | sort -u >"$tmp/direct"

bad=$(
	{
		grep -E "$client" "$tmp/direct" || true
		comm -23 "$tmp/render" "$tmp/acmeta" | grep -E "$client" || true
		grep -E '^(sigs\.k8s\.io/controller-runtime/pkg/client|k8s\.io/client-go/(kubernetes|dynamic))$' "$tmp/render" || true
	} | sort -u
)
if [ -n "$bad" ]; then
	echo "render/ must stay pure; it depends on:" >&2
	echo "$bad" >&2
	exit 1
fi
echo "render/ is pure: no client package beyond client-go's applyconfigurations/meta/v1 -> discovery -> rest"
