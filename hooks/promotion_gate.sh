#!/usr/bin/env bash
# CI promotion gate: promote MODEL_URI to ALIAS only if it passed baerase's gate policy.
# Exit codes are baerase's: 0 promoted, 1 refused (alias unchanged), 2 error, 4 usage error.
#   hooks/promotion_gate.sh models:/clf/7 champion [--max-asr 0.02 ...]
set -euo pipefail
model_uri="${1:?usage: promotion_gate.sh MODEL_URI ALIAS [baerase gate options]}"
alias="${2:?usage: promotion_gate.sh MODEL_URI ALIAS [baerase gate options]}"
shift 2
: "${MLFLOW_TRACKING_URI:?set MLFLOW_TRACKING_URI to the tracking server}"
exec "${BAERASE:-baerase}" gate "$model_uri" --alias "$alias" "$@"
