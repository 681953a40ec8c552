#!/usr/bin/env bash
# The webhook receiver as a long-running service (see baerase-webhooks.example.service).
# Needs MLFLOW_TRACKING_URI and BAERASE_WEBHOOK_SECRET; register it once with
#   baerase register-webhook --url http://<this host>:8787/
set -euo pipefail
: "${MLFLOW_TRACKING_URI:?set MLFLOW_TRACKING_URI to the tracking server}"
: "${BAERASE_WEBHOOK_SECRET:?set BAERASE_WEBHOOK_SECRET to the webhook signing secret}"
exec "${BAERASE:-baerase}" serve-webhooks --host "${BAERASE_HOST:-0.0.0.0}" --port "${BAERASE_PORT:-8787}" \
  --queue "${BAERASE_QUEUE:-/var/lib/baerase/webhooks.sqlite}" "$@"
