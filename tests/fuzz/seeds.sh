#!/usr/bin/env bash
# Writes the seed corpus of every fuzz target into $1/<target>/ (default tests/fuzz/corpus),
# from what the repository already holds: the wire fixtures (tests/fixtures/**), the routes
# files (routes.toml, tests/routes/**/*.toml), the request literals of the unit tests (src/),
# and the literal requests below. Idempotent: a seed's name is its source, so a second run
# rewrites the same files. Run by scripts/fuzz.sh; nothing here is committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-tests/fuzz/corpus}
fixtures=tests/fixtures

# seed TARGET NAME PREFIX_BYTES FILE: writes PREFIX_BYTES (printf escapes) then FILE's bytes.
seed() {
  mkdir -p "$out/$1"
  { printf "$3"; cat "$4"; } >"$out/$1/seed-$2"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Client requests: the unit tests' literals, and one of each feature the translators handle.
grep -rhoP 'br?#"\{"(model|messages)".*?\}"#' src | sed -E 's/^b?r#"//; s/"#$//' | sort -u >"$tmp/requests"
cat >>"$tmp/requests" <<'JSON'
{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"temperature":0.2,"top_p":0.9,"stop":["\n\n"],"max_tokens":50,"seed":7,"user":"u1"}
{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"developer","content":[{"type":"text","text":"rules"}]},{"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]}]}
{"model":"m","messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"d","strict":true,"parameters":{"type":"object","properties":{"city":{"type":"string","enum":["a","b"]},"days":{"type":["integer","null"],"minimum":1}},"required":["city"],"additionalProperties":false,"$defs":{"x":{"type":"string"}}}}}],"tool_choice":{"type":"function","function":{"name":"get_weather"}},"parallel_tool_calls":false}
{"model":"m","messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"a\"}"}},{"id":"toolu_01A","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"},{"role":"tool","tool_call_id":"toolu_01A","content":[{"type":"text","text":"ok"}]}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},{"type":"function","function":{"name":"f"}}],"tool_choice":"required"}
{"model":"m","messages":[{"role":"user","content":"json please"}],"response_format":{"type":"json_schema","json_schema":{"name":"answer","strict":true,"schema":{"type":"object","properties":{"a":{"$ref":"#/$defs/n"},"b":{"anyOf":[{"type":"string"},{"type":"null"}]}},"$defs":{"n":{"type":"number"}}}}}}
{"model":"m","messages":[{"role":"user","content":"json"}],"response_format":{"type":"json_object"},"reasoning_effort":"high","n":1,"logprobs":false,"presence_penalty":0.5,"frequency_penalty":0.1,"max_completion_tokens":100}
{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello","reasoning_content":"thought","name":"bot"},{"role":"user","content":"again","name":"me"}],"metadata":{"user_id":"x"},"modalities":["text"],"tool_choice":"none"}
{"model":"m","messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled","budget_tokens":1024},"top_k":5,"stop":"END","stream":false}
JSON
n=0
while IFS= read -r request; do
  n=$((n + 1))
  printf '%s' "$request" >"$tmp/request-$n"
  seed request_parse "req$n" '' "$tmp/request-$n"
  for provider in anthropic google workers_ai openai; do
    for selector in 0 1 2; do
      seed "${provider}_request" "req$n-$selector" "\\x0$selector" "$tmp/request-$n"
    done
  done
done <"$tmp/requests"

# Upstream answers: each provider's fixtures with a few flag bytes (target, usage, JSON mode,
# connection failing at the end) and chunkings (whole, single bytes, up to 7 bytes).
answers() { # TARGET FILE...
  local target=$1 file flags chunking
  shift
  for file in "$@"; do
    for flags in 00 03 04 10 21; do
      for chunking in 00 01 07; do
        seed "$target" "$(basename "$file")-$flags-$chunking" "\\x$flags\\x$chunking" "$file"
      done
    done
  done
}
answers anthropic_stream "$fixtures"/anthropic/*.sse
answers anthropic_response "$fixtures"/anthropic/*.json
answers google_stream "$fixtures"/google/*.sse
answers google_response "$fixtures"/google/*.json
# Workers AI streams may also be a whole JSON object, turned into a stream.
answers workers_ai_stream "$fixtures"/workers_ai/*.sse "$fixtures"/workers_ai/*.json
answers workers_ai_response "$fixtures"/workers_ai/*.json
# OpenAI-shaped bodies: Workers AI's OpenAI-format fixtures are OpenAI's wire format.
answers openai_stream "$fixtures"/workers_ai/stream_openai*.sse
answers openai_response "$fixtures"/workers_ai/output_openai.json

# The SSE parser and the cut: every stream fixture, whole and in small pieces; every JSON body
# and every event's data, as JSON texts to complete and as events to cut.
for file in "$fixtures"/*/*.sse; do
  name=$(basename "$(dirname "$file")")-$(basename "$file")
  for chunking in 00 01 05; do
    seed sse_parse "$name-$chunking" "\\x$chunking" "$file"
  done
  i=0
  while IFS= read -r data; do
    i=$((i + 1))
    printf '%s' "${data%$'\r'}" >"$tmp/data"
    seed sse_cut "$name-$i-prefix" '\x00' "$tmp/data"
    seed sse_cut "$name-$i-cut" '\x01\x20\x30' "$tmp/data"
    seed sse_cut "$name-$i-cut-crlf" '\x0b\x05\x01' "$tmp/data"
  done < <(sed -n 's/^data: \{0,1\}//p' "$file")
done
for file in "$fixtures"/*/*.json; do
  seed sse_cut "$(basename "$(dirname "$file")")-$(basename "$file")" '\x00' "$file"
done

# routes.toml: the real one and every test file, valid and invalid.
for file in routes.toml tests/routes/*.toml tests/routes/invalid/*.toml; do
  [ -f "$file" ] && seed routes_toml "$(basename "$file")" '' "$file"
done
echo "seeds: $(find "$out" -name 'seed-*' | wc -l) files in $out"
