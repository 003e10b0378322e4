// The official OpenAI JavaScript SDK against the proxy (PROXY_URL, default http://127.0.0.1:18787).
// Run: node_modules/.bin/node --test "tests/e2e/node/*.test.mjs"  (node 22 does not accept a bare directory)
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import OpenAI from "openai";

const PROXY_URL = (process.env.PROXY_URL ?? "http://127.0.0.1:18787").replace(/\/+$/, "");
const EMULATOR_URL = (process.env.EMULATOR_URL ?? "http://127.0.0.1:18080").replace(/\/+$/, "");

const secrets = Object.fromEntries(
  readFileSync(new URL("../secrets.env", import.meta.url), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#") && l.includes("="))
    .map((l) => [l.slice(0, l.indexOf("=")).trim(), l.slice(l.indexOf("=") + 1).trim()]),
);
const secretValues = Object.values(secrets);

const client = new OpenAI({ baseURL: PROXY_URL + "/v1", apiKey: secrets.E2E_PROXY_TOKEN, maxRetries: 0, timeout: 30_000 });

const user = (content) => [{ role: "user", content }];
const newId = () => "t-" + randomUUID();
async function recorded(testId) {
  const r = await fetch(`${EMULATOR_URL}/_emulator/requests?test_id=${encodeURIComponent(testId)}`);
  return r.json();
}
function assertNoSecrets(text) {
  for (const v of secretValues) assert.ok(!text.includes(v), "secret value leaked");
}

const WEATHER = {
  type: "function",
  function: {
    name: "get_current_weather",
    description: "Get the current weather in a given location",
    parameters: { type: "object", properties: { location: { type: "string" } }, required: ["location"] },
  },
};

test("plain completion", async () => {
  const test_id = newId();
  const resp = await client.chat.completions.create({ model: "plain", messages: user("hello node"), test_id });
  assert.equal(resp.object, "chat.completion");
  assert.equal(resp.model, "emu-model");
  assert.equal(resp.choices[0].message.content, "echo: hello node");
  assert.equal(resp.choices[0].finish_reason, "stop");
  const rec = await recorded(test_id);
  assert.equal(rec.length, 1);
  assert.equal(rec[0].key, secrets.E2E_KEY_OK);
  assert.equal(rec[0].body.model, "emu-model");
});

test("stream with include_usage", async () => {
  const stream = await client.chat.completions.create({
    model: "plain", messages: user("node stream works"), stream: true, stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const content = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  assert.equal(content, "echo: node stream works");
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage.total_tokens > 0);
  for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
  assert.equal(chunks.at(-2).choices[0].finish_reason, "stop");
});

test("tools: parallel calls, non-stream and stream", async () => {
  const TIME = { type: "function", function: { name: "get_local_time", parameters: { type: "object", properties: {} } } };
  const resp = await client.chat.completions.create({ model: "plain", messages: user("weather?"), tools: [WEATHER, TIME] });
  assert.equal(resp.choices[0].finish_reason, "tool_calls");
  assert.deepEqual(
    resp.choices[0].message.tool_calls.map((c) => [c.id, c.function.name, c.function.arguments]),
    [["call_emu_0", "get_current_weather", '{"location": "Boston, MA"}'], ["call_emu_1", "get_local_time", '{"location": "Boston, MA"}']],
  );

  const stream = await client.chat.completions.create({ model: "plain", messages: user("weather?"), tools: [WEATHER], stream: true });
  const calls = {};
  let finish = null;
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      for (const tc of ch.delta.tool_calls ?? []) {
        calls[tc.index] ??= { id: tc.id, name: tc.function?.name, args: "" };
        calls[tc.index].args += tc.function?.arguments ?? "";
      }
      finish = ch.finish_reason ?? finish;
    }
  }
  assert.deepEqual(calls, { 0: { id: "call_emu_0", name: "get_current_weather", args: '{"location": "Boston, MA"}' } });
  assert.equal(finish, "tool_calls");
});

test("all upstream keys rate limited → RateLimitError", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "all-429", messages: user("x") }),
    (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, String(err));
      assert.equal(err.status, 429);
      assertNoSecrets(JSON.stringify(err.error ?? {}) + String(err.message));
      return true;
    },
  );
});

test("all targets fail → 500 naming every attempt, no secrets", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "all-fail", messages: user("x") }),
    (err) => {
      assert.ok(err instanceof OpenAI.InternalServerError, String(err));
      assert.equal(err.status, 500);
      const msg = String(err.message);
      for (const name of ["E2E_KEY_500", "E2E_KEY_401", "E2E_KEY_429"]) assert.ok(msg.includes(name), `${name} missing in ${msg}`);
      for (const status of ["500", "401", "429"]) assert.ok(msg.includes(status), `${status} missing in ${msg}`);
      assertNoSecrets(JSON.stringify(err.error ?? {}) + msg);
      return true;
    },
  );
});

test("anthropic route: streamed parallel tool calls, then the tool results answered", async () => {
  const CLAUDE_TOOLS = [
    { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { location: { type: "string" } } } } },
    { type: "function", function: { name: "get_time", parameters: { type: "object", properties: { timezone: { type: "string" } } } } },
  ];
  const stream = await client.chat.completions.create({
    model: "claude", messages: user("Weather and time in Paris?"), tools: CLAUDE_TOOLS, stream: true,
    stream_options: { include_usage: true },
  });
  const calls = {};
  const finishes = [];
  let usage = null;
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      for (const tc of ch.delta.tool_calls ?? []) {
        calls[tc.index] ??= { id: tc.id, name: tc.function?.name, args: "" };
        calls[tc.index].args += tc.function?.arguments ?? "";
      }
      if (ch.finish_reason) finishes.push(ch.finish_reason);
    }
    usage = chunk.usage ?? usage;
  }
  assert.deepEqual(calls, {
    0: { id: "toolu_01ParisWeather0000000001", name: "get_weather", args: '{"location": "Paris"}' },
    1: { id: "toolu_01ParisTime000000000000001", name: "get_time", args: '{"timezone": "Europe/Paris"}' },
  });
  assert.deepEqual(finishes, ["tool_calls"]);
  assert.equal(usage.prompt_tokens, 520); // 420 input + 100 cache-read tokens
  assert.equal(usage.prompt_tokens_details.cached_tokens, 100);

  const answer = await client.chat.completions.create({
    model: "claude", tools: CLAUDE_TOOLS,
    messages: [
      ...user("Weather and time in Paris?"),
      { role: "assistant", content: null, tool_calls: Object.values(calls).map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.args } })) },
      { role: "tool", tool_call_id: calls[0].id, content: "18C" },
      { role: "tool", tool_call_id: calls[1].id, content: "14:00" },
    ],
  });
  assert.equal(answer.choices[0].message.content, "tool said: 18C | 14:00");
  assert.equal(answer.choices[0].finish_reason, "stop");
});

test("gemini route: a Gemini 3 thought signature survives the tool round trip", async () => {
  const stream = await client.chat.completions.create({
    model: "gemini-3", messages: user("scenario:signature"), tools: [WEATHER], stream: true,
  });
  const calls = {};
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      for (const tc of ch.delta.tool_calls ?? []) calls[tc.index] = { id: tc.id, name: tc.function.name, args: tc.function.arguments };
    }
  }
  const call = calls[0];
  assert.equal(call.name, "get_current_weather");
  assert.ok(call.id.includes("__thought__"), call.id);
  // The emulator, like Gemini 3, answers 400 when the signature does not come back.
  const answer = await client.chat.completions.create({
    model: "gemini-3", tools: [WEATHER],
    messages: [
      ...user("scenario:signature"),
      { role: "assistant", content: null, tool_calls: [{ id: call.id, type: "function", function: { name: call.name, arguments: call.args } }] },
      { role: "tool", tool_call_id: call.id, content: "cloudy" },
    ],
  });
  assert.equal(answer.choices[0].message.content, 'tool said: get_current_weather={"content":"cloudy"}');
  assert.equal(answer.choices[0].finish_reason, "stop");
});

test("workers ai route: streamed tool call with a nested schema, then the tool result answered", async () => {
  const TRIP = [{ type: "function", function: { name: "book_trip", description: "Book a trip", parameters: {
    type: "object", required: ["destination"],
    properties: { destination: { type: "object", description: "where", properties: { city: { type: "string", description: "city" } } } },
  } } }];
  const stream = await client.chat.completions.create({
    model: "wai", messages: user("Book me a trip"), tools: TRIP, stream: true,
    stream_options: { include_usage: true },
  });
  const calls = {};
  const finishes = [];
  let usage = null;
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      for (const tc of ch.delta.tool_calls ?? []) {
        calls[tc.index] ??= { id: tc.id, name: tc.function?.name, args: "" };
        calls[tc.index].args += tc.function?.arguments ?? "";
      }
      if (ch.finish_reason) finishes.push(ch.finish_reason);
    }
    usage = chunk.usage ?? usage;
  }
  assert.equal(calls[0].name, "book_trip");
  assert.deepEqual(JSON.parse(calls[0].args), { location: "Boston, MA" });
  assert.deepEqual(finishes, ["tool_calls"]);
  assert.equal(usage.prompt_tokens, 12);

  const answer = await client.chat.completions.create({
    model: "wai", tools: TRIP,
    messages: [
      ...user("Book me a trip"),
      { role: "assistant", content: null, tool_calls: [{ id: calls[0].id, type: "function", function: { name: "book_trip", arguments: calls[0].args } }] },
      { role: "tool", tool_call_id: calls[0].id, content: "booked" },
    ],
  });
  assert.equal(answer.choices[0].message.content, "tool said: booked");
  assert.equal(answer.choices[0].finish_reason, "stop");
});
