#!/usr/bin/env bash
# The Worker's size for a routes file naming only OpenAI and for one naming all five providers
# (and for the project's own routes.toml): `build/worker/index.wasm` as worker-build leaves it,
# raw and gzipped (`gzip -9`). A provider no route names is never instantiated, so it is not
# compiled in. Prints a Markdown table for the README.
#
# Usage: benches/size.sh [ROUTES_FILE...]   (default: the three files below)
# With MAX_GZIP_KB set, fails when a build's gzipped wasm is larger (scripts/test holds the
# five-provider build to the 300 KB the performance issue set).
set -euo pipefail
cd "$(dirname "$0")/.."

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(benches/size/openai-only.toml benches/size/all-providers.toml routes.toml)

echo "| routes file | providers | wasm | gzip |"
echo "|---|---|---:|---:|"
for routes in "${files[@]}"; do
  ROUTES_TOML="$routes" ./scripts/build-worker.sh >target/size-build.log 2>&1 || {
    cat target/size-build.log >&2
    exit 1
  }
  providers=$(grep -oE '^provider = "[^"]+"' "$routes" | cut -d'"' -f2 | sort -u | paste -sd, - | sed 's/,/, /g')
  raw=$(stat -c %s build/worker/index.wasm)
  gz=$(gzip -9 -c build/worker/index.wasm | wc -c)
  printf '| `%s` | %s | %d KB | %d KB |\n' "$routes" "$providers" $((raw / 1000)) $((gz / 1000))
  if [ -n "${MAX_GZIP_KB:-}" ] && [ "$gz" -gt $((MAX_GZIP_KB * 1000)) ]; then
    echo "$routes: the Worker's wasm is $((gz / 1000)) KB gzipped, over the ${MAX_GZIP_KB} KB budget" >&2
    failed=1
  fi
done
exit "${failed:-0}"
