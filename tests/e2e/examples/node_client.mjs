// README example: the official OpenAI JavaScript SDK, streaming.
//   npm install openai
//   PROXY_URL=https://your-worker.example.workers.dev PROXY_TOKEN=... node node_client.mjs
import OpenAI from "openai";

const PROXY_URL = process.env.PROXY_URL.replace(/\/+$/, "");
const MODEL = process.env.MODEL ?? "fast";

const client = new OpenAI({ baseURL: PROXY_URL + "/v1", apiKey: process.env.PROXY_TOKEN });

const stream = await client.chat.completions.create({
  model: MODEL,
  messages: [{ role: "user", content: "Hello from Node" }],
  stream: true,
});
for await (const chunk of stream) {
  process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
}
process.stdout.write("\n");
