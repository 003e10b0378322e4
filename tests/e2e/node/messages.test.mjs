// The Anthropic Messages front door (POST /v1/messages) with the official Anthropic JavaScript SDK,
// against the proxy (PROXY_URL, default http://127.0.0.1:18787); routes `msg-*` of
// tests/routes/e2e.toml. Run: node_modules/.bin/node --test "tests/e2e/node/*.test.mjs"
//
// Test ids travel as metadata.user_id (Anthropic records it, an OpenAI upstream gets it as `user`);
// Gemini has no such field, so for msg-gemini the id is also written into the text as
// `[test_id=…]`. This SDK sends its key as `Authorization: Bearer`; Claude Code sends `x-api-key`,
// which `xApiKey` below does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import Anthropic from "@anthropic-ai/sdk";

const PROXY_URL = (process.env.PROXY_URL ?? "http://127.0.0.1:18787").replace(/\/+$/, "");
const EMULATOR_URL = (process.env.EMULATOR_URL ?? "http://127.0.0.1:18080").replace(/\/+$/, "");

const secrets = Object.fromEntries(
  readFileSync(new URL("../secrets.env", import.meta.url), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#") && l.includes("="))
    .map((l) => [l.slice(0, l.indexOf("=")).trim(), l.slice(l.indexOf("=") + 1).trim()]),
);
const TOKEN = secrets.E2E_PROXY_TOKEN;
const secretValues = Object.values(secrets);

const options = { baseURL: PROXY_URL, maxRetries: 0, timeout: 30_000 };
const client = new Anthropic({ ...options, apiKey: TOKEN });
const xApiKey = new Anthropic({ ...options, apiKey: null, authToken: null, defaultHeaders: { "X-Api-Key": TOKEN } });

// t- and 32 hex digits: the form the emulators file an OpenAI `user` under.
const newId = () => "t-" + randomUUID().replaceAll("-", "");
const tagged = (text, id) => `${text} [test_id=${id}]`;
async function recorded(testId) {
  const r = await fetch(`${EMULATOR_URL}/_emulator/requests?test_id=${encodeURIComponent(testId)}`);
  return r.json();
}
function assertNoSecrets(text) {
  for (const v of secretValues) assert.ok(!text.includes(v), "secret value leaked");
}

const WEATHER = { name: "get_weather", description: "Get the current weather", input_schema: { type: "object", properties: { location: { type: "string" } }, required: ["location"] } };
const TIME = { name: "get_time", description: "Get the local time", input_schema: { type: "object", properties: { timezone: { type: "string" } } } };

/** Checks Anthropic's event order and folds the events into the message they add up to. */
function fold(events) {
  const types = events.map((e) => e.type);
  assert.equal(types[0], "message_start", types.join());
  assert.deepEqual(types.slice(-2), ["message_delta", "message_stop"], types.join());
  const message = structuredClone(events[0].message);
  assert.deepEqual(message.content, []);
  let open = null;
  let partial = "";
  let signed = false;
  for (const e of events.slice(1, -2)) {
    if (e.type === "content_block_start") {
      assert.equal(open, null, "blocks overlap");
      assert.equal(e.index, message.content.length);
      message.content.push(structuredClone(e.content_block));
      open = e.index;
      partial = "";
      signed = false;
    } else if (e.type === "content_block_delta") {
      assert.equal(e.index, open);
      assert.ok(!signed, "a delta after signature_delta");
      const block = message.content[open];
      const d = e.delta;
      if (d.type === "text_delta") block.text += d.text;
      else if (d.type === "thinking_delta") block.thinking += d.thinking;
      else if (d.type === "signature_delta") { block.signature = d.signature; signed = true; }
      else if (d.type === "input_json_delta") partial += d.partial_json;
      else assert.fail(`unexpected delta ${d.type}`);
    } else if (e.type === "content_block_stop") {
      assert.equal(e.index, open);
      const block = message.content[open];
      if (block.type === "tool_use") block.input = JSON.parse(partial || "{}");
      if (block.type === "thinking") assert.ok(signed, "a thinking block ends with its signature");
      open = null;
    } else {
      assert.fail(`${e.type} between message_start and message_delta`);
    }
  }
  assert.equal(open, null);
  message.stop_reason = events.at(-2).delta.stop_reason;
  message.usage = { ...message.usage, ...events.at(-2).usage };
  return message;
}

/** Event types with indexes, runs of one delta collapsed. */
function shape(events) {
  const out = [];
  for (const e of events) {
    let token = e.type;
    if (e.type === "content_block_start") token = `${e.type}[${e.index}:${e.content_block.type}]`;
    else if (e.type === "content_block_delta") token = `${e.type}[${e.index}:${e.delta.type}]`;
    else if (e.type === "content_block_stop") token = `${e.type}[${e.index}]`;
    if (out.at(-1) !== token) out.push(token);
  }
  return out;
}

const texts = (message) => message.content.filter((b) => b.type === "text").map((b) => b.text).join("");

test("plain: translated (msg-openai) and passed through with x-api-key (msg-claude)", async () => {
  const id = newId();
  const msg = await client.messages.create({
    model: "msg-openai", max_tokens: 256, system: "Be terse.", metadata: { user_id: id },
    messages: [{ role: "user", content: "hello node" }],
  });
  assert.equal(msg.type, "message");
  assert.deepEqual(msg.content.map((b) => b.type), ["text"]);
  assert.equal(texts(msg), "echo: hello node");
  assert.equal(msg.stop_reason, "end_turn");
  assert.ok(msg.usage.input_tokens > 0 && msg.usage.output_tokens > 0);
  const [rec] = await recorded(id);
  assert.equal(rec.path, "/v1/chat/completions");
  assert.equal(rec.body.model, "gpt-4o-mini");
  assert.equal(rec.body.user, id);

  const other = newId();
  const passed = await xApiKey.messages.create({
    model: "msg-claude", max_tokens: 256, metadata: { user_id: other }, messages: [{ role: "user", content: "hello claude" }],
  });
  assert.equal(passed.model, "claude-sonnet-4-20250514");
  assert.equal(texts(passed), "echo: hello claude");
  const [up] = await recorded(other);
  assert.equal(up.path, "/v1/messages");
  assert.equal(up.key, secrets.E2E_KEY_OK);
  assertNoSecrets(JSON.stringify(passed));
});

test("stream: Anthropic's exact event order from a translated route (msg-gemini)", async () => {
  const id = newId();
  const stream = await client.messages.create({
    model: "msg-gemini", max_tokens: 256, stream: true, metadata: { user_id: id },
    messages: [{ role: "user", content: tagged("stream node", id) }],
  });
  const events = [];
  for await (const e of stream) events.push(e);
  assert.deepEqual(shape(events), [
    "message_start", "content_block_start[0:text]", "content_block_delta[0:text_delta]", "content_block_stop[0]",
    "message_delta", "message_stop",
  ]);
  const message = fold(events);
  assert.equal(texts(message), "echo: stream node");
  assert.equal(message.stop_reason, "end_turn");
  const [rec] = await recorded(id);
  assert.equal(rec.path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
});

test("tools: streamed parallel calls (msg-claude, msg-openai), then the results answered", async () => {
  for (const [model, expected] of [
    ["msg-claude", [["get_weather", { location: "Paris" }], ["get_time", { timezone: "Europe/Paris" }]]],
    ["msg-openai", [["get_weather", { location: "Boston, MA" }], ["get_time", { location: "Boston, MA" }]]],
  ]) {
    const stream = await client.messages.create({
      model, max_tokens: 512, stream: true, tools: [WEATHER, TIME], messages: [{ role: "user", content: "Weather and time in Paris?" }],
    });
    const events = [];
    for await (const e of stream) events.push(e);
    const message = fold(events);
    assert.equal(message.stop_reason, "tool_use", model);
    const calls = message.content.filter((b) => b.type === "tool_use");
    assert.deepEqual(calls.map((c) => [c.name, c.input]), expected, model);
    for (const c of calls) assert.match(c.id, /^[a-zA-Z0-9_-]+$/);

    const answer = await client.messages.create({
      model, max_tokens: 512, tools: [WEATHER, TIME],
      messages: [
        { role: "user", content: "Weather and time in Paris?" },
        { role: "assistant", content: message.content },
        { role: "user", content: calls.map((c, i) => ({ type: "tool_result", tool_use_id: c.id, content: ["18C", "14:00"][i] })) },
      ],
    });
    assert.equal(answer.stop_reason, "end_turn", model);
    assert.ok(texts(answer).startsWith("tool said: ") && texts(answer).includes("14:00"), texts(answer));
  }
});

test("errors: unknown model, wrong token, every key rate-limited", async () => {
  await assert.rejects(
    client.messages.create({ model: "no-such-route", max_tokens: 10, messages: [{ role: "user", content: "x" }] }),
    (err) => {
      assert.ok(err instanceof Anthropic.NotFoundError, String(err));
      assert.equal(err.status, 404);
      assert.equal(err.error.type, "error");
      assert.equal(err.error.error.type, "not_found_error");
      assert.equal(err.headers.get("x-should-retry"), "false");
      return true;
    },
  );
  const wrong = new Anthropic({ ...options, apiKey: "not-the-token" });
  await assert.rejects(
    wrong.messages.create({ model: "msg-claude", max_tokens: 10, messages: [{ role: "user", content: "x" }] }),
    (err) => err instanceof Anthropic.AuthenticationError && err.status === 401 && err.error.error.type === "authentication_error",
  );
  await assert.rejects(
    client.messages.create({ model: "all-429", max_tokens: 10, messages: [{ role: "user", content: "x" }] }),
    (err) => {
      assert.ok(err instanceof Anthropic.RateLimitError, String(err));
      assert.equal(err.error.error.type, "rate_limit_error");
      assertNoSecrets(JSON.stringify(err.error) + String(err.message));
      return true;
    },
  );
});

test("count_tokens: Anthropic's own count, Gemini's, an estimate elsewhere", async () => {
  const id = newId();
  const messages = [{ role: "user", content: tagged("How many tokens is this?", id) }];
  const counted = await client.messages.countTokens({ model: "msg-claude", system: "Be terse.", messages });
  const records = await recorded(id);
  assert.equal(records.length, 1);
  assert.equal(records[0].path, "/v1/messages/count_tokens");
  const direct = await fetch(`${EMULATOR_URL}/v1/messages/count_tokens`, {
    method: "POST", body: records[0].raw,
    headers: { "x-api-key": secrets.E2E_KEY_OK, "anthropic-version": "2023-06-01", "content-type": "application/json" },
  });
  assert.equal(counted.input_tokens, (await direct.json()).input_tokens);

  const gemini = await client.messages.countTokens({ model: "msg-gemini", messages });
  assert.ok(gemini.input_tokens > 0);
  assert.equal((await recorded(id)).at(-1).path, "/v1beta/models/gemini-2.5-flash:countTokens");

  const estimate = await client.messages.countTokens({ model: "msg-openai", messages: [{ role: "user", content: "estimate me" }] });
  assert.ok(Number.isInteger(estimate.input_tokens) && estimate.input_tokens > 0);
});
