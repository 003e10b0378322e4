#!/usr/bin/env bash
# README example: call the proxy with cURL.
#   PROXY_URL=https://your-worker.example.workers.dev PROXY_TOKEN=... ./curl.sh
set -euo pipefail
: "${PROXY_URL:?set PROXY_URL, e.g. http://127.0.0.1:8787}"
: "${PROXY_TOKEN:?set PROXY_TOKEN to the auth token of the proxy}"
MODEL="${MODEL:-fast}"

curl -sS --fail-with-body "$PROXY_URL/v1/chat/completions" \
  -H "Authorization: Bearer $PROXY_TOKEN" \
  -H "Content-Type: application/json" \
  -d "{
    \"model\": \"$MODEL\",
    \"messages\": [{\"role\": \"user\", \"content\": \"Hello from curl\"}]
  }"
echo
