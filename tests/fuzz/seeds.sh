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

# Messages requests (the front door): the bodies of the Claude Code fixtures and one of each
# feature the front door translates, to every provider's targets and, as count_tokens, to both
# anthropic targets and google (the selector byte: pipeline::translate_messages_request). The
# `aiwp1.` signatures are the proxy's own, which the anthropic pass-through removes.
for file in "$fixtures"/claude_code/*.json; do
  python3 -c 'import json, sys; sys.stdout.write(json.dumps(json.load(open(sys.argv[1]))["body"], ensure_ascii=False, separators=(",", ":")))' \
    "$file" >"$tmp/messages-$(basename "$file" .json)"
done
m=0
while IFS= read -r request; do
  m=$((m + 1))
  printf '%s' "$request" >"$tmp/messages-literal$m"
done <<'JSON'
{"model":"claude-sonnet-4-5","max_tokens":1024,"system":"be brief","messages":[{"role":"user","content":"weather?"}],"tools":[{"name":"get_weather","description":"d","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"cache_control":{"type":"ephemeral"}},{"type":"custom","name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"any","disable_parallel_tool_use":true},"stop_sequences":["END"],"temperature":0.5,"top_p":0.9,"top_k":5,"metadata":{"user_id":"u1"},"service_tier":"auto"}
{"model":"claude-opus-4-5","max_tokens":64000,"stream":true,"thinking":{"type":"enabled","budget_tokens":10000},"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":[{"type":"thinking","thinking":"call the tool","signature":"aiwp1.0123456789abcdef"},{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"city":"Paris"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01A","content":[{"type":"text","text":"sunny"}]}]}],"tools":[{"name":"get_weather","input_schema":{"type":"object"}}]}
{"model":"claude-haiku-4-5","max_tokens":100,"thinking":{"type":"enabled","budget_tokens":2048},"output_config":{"effort":"high"},"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"from gemini","signature":"aiwp1.fedcba9876543210"},{"type":"redacted_thinking","data":"EmwKAhgBEgy"},{"type":"text","text":"hello"}]},{"role":"user","content":"again"},{"role":"assistant","content":[{"type":"thinking","thinking":"real","signature":"EqQBCkYIBxgCKkB"},{"type":"tool_use","id":"toolu_02","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_02","is_error":true,"content":"failed"}]}]}
{"model":"m","max_tokens":500,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}},{"type":"document","title":"spec.pdf","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0x"}},{"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain text"}},{"type":"document","source":{"type":"content","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}},{"type":"text","text":"what are these?","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"text","text":"b"},{"type":"tool_use","id":"t1","name":"look","input":{"x":1}},{"type":"text","text":"c"}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/"}},{"type":"text","text":"seen"}]},{"type":"text","text":"and?"}]}],"tools":[{"name":"look","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"look"}}
{"model":"gpt-4o","max_tokens":1e2,"stream":false,"thinking":{"type":"adaptive"},"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},{"type":"text","text":"b"}],"messages":[{"role":"user","content":"x"}],"context_management":{"edits":[]},"inference_geo":"us","tool_choice":{"type":"none"},"temperature":1.0000000000000002}
{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"count me"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"aiwp1.00000000000000ff"},{"type":"tool_use","id":"toolu_3","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_3"}]}],"system":"s","tools":[{"name":"f","input_schema":{"type":"object"}}],"thinking":{"type":"enabled","budget_tokens":1024},"stream":true}
JSON
for file in "$tmp"/messages-*; do
  for selector in 00 01 02 03 04 05 06 07 08 80 81 84; do
    seed messages_request "$(basename "$file")-$selector" "\\x$selector" "$file"
  done
done

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
# The Messages front door, over OpenAI answers: the OpenAI fixtures, and the chat.completion
# examples of the wire notes (a text answer, a tool call) with reasoning added to one.
answers messages_stream "$fixtures"/openai/*.sse "$fixtures"/workers_ai/stream_openai*.sse
cat >"$tmp/completion-text.json" <<'JSON'
{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1741569952,"model":"gpt-5.4","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I assist you today?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default"}
JSON
cat >"$tmp/completion-tool.json" <<'JSON'
{"id":"chatcmpl-abc123","object":"chat.completion","created":1699896916,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"reasoning_content":"I need the weather.","tool_calls":[{"id":"call_abc123","type":"function","function":{"name":"get_current_weather","arguments":"{\n\"location\": \"Boston, MA\"\n}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,"prompt_tokens_details":{"cached_tokens":64}}}
JSON
answers messages_response "$fixtures"/workers_ai/output_openai.json "$tmp"/completion-*.json

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
