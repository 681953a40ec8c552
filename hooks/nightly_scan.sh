#!/usr/bin/env bash
# Nightly registry scan: every version matching FILTER whose verdict is not current is scanned
# (and erased). Exit codes are baerase's (1: a backdoor with no cleaned version).
#   hooks/nightly_scan.sh "name LIKE 'clf%'" [baerase scan-registry options]
set -euo pipefail
filter="${1:-}"
shift || true
: "${MLFLOW_TRACKING_URI:?set MLFLOW_TRACKING_URI to the tracking server}"
out="${BAERASE_SCAN_OUT:-/var/log/baerase}/scan-$(date +%F)"
args=(scan-registry --out "$out" --quiet)
[[ -n "$filter" ]] && args+=(--filter "$filter")
exec "${BAERASE:-baerase}" "${args[@]}" "$@"
