// The Node SDKs against sluicegate's protocol translation. Usage: node sdk.mjs <gateway base URL>
// Prints one JSON object with what each SDK saw; tests/integration/inference/test_translate_node.py asserts on it.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { streamText, tool, jsonSchema } from "ai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { createAnthropic } from "@ai-sdk/anthropic";

const base = process.argv[2];
const MSG = [{ role: "user", content: "Weather in Paris and Tokyo?" }];
const schema = { type: "object", properties: { location: { type: "string" } } };
const out = {};

async function step(name, fn) {
  try {
    out[name] = await fn();
  } catch (err) {
    out[name] = { thrown: String(err && err.message ? err.message : err), name: err && err.constructor && err.constructor.name };
  }
}

const oai = new OpenAI({ baseURL: `${base}/llm/v1`, apiKey: "client-placeholder", maxRetries: 0 });
const ant = new Anthropic({ baseURL: `${base}/llm`, apiKey: "client-placeholder", maxRetries: 0 });

await step("openai_chat_tools", async () => {
  const stream = oai.chat.completions.stream({
    model: "an-anthropic_tools", messages: MSG, stream_options: { include_usage: true },
    tools: [{ type: "function", function: { name: "get_weather", parameters: schema } }],
  });
  const final = await stream.finalChatCompletion();
  const c = final.choices[0];
  return { content: c.message.content, finish: c.finish_reason, usage: final.usage,
           calls: (c.message.tool_calls || []).map((t) => [t.id, t.function.name, JSON.parse(t.function.arguments)]) };
});

await step("openai_chat_error", async () => {
  const stream = await oai.chat.completions.create({ model: "an-anthropic_error", messages: MSG, stream: true });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content || "";
  return { text };
});

await step("anthropic_tools", async () => {
  const stream = ant.messages.stream({ model: "oc-openai_tools", max_tokens: 100, messages: MSG,
                                       tools: [{ name: "get_weather", input_schema: schema }] });
  const final = await stream.finalMessage();
  return { stop: final.stop_reason, usage: final.usage,
           calls: final.content.filter((b) => b.type === "tool_use").map((b) => [b.id, b.name, b.input]) };
});

await step("openai_responses_tools", async () => {
  const types = [];
  const stream = oai.responses.stream({ model: "an-anthropic_tools", input: "Weather?", store: false,
                                        tools: [{ type: "function", name: "get_weather", parameters: schema }] });
  stream.on("event", (e) => types.push(e.type));
  const final = await stream.finalResponse();
  return { types, status: final.status, usage: final.usage,
           calls: final.output.filter((o) => o.type === "function_call").map((o) => [o.call_id, JSON.parse(o.arguments)]) };
});

// A chat provider that opens every tool call, then interleaves their argument deltas by index
// (tests/data/translate/openai_tools_interleaved.sse), translated to Messages and to Responses.
await step("anthropic_tools_interleaved", async () => {
  const seq = [];
  const stream = ant.messages.stream({ model: "oc-openai_tools_interleaved", max_tokens: 300, messages: MSG,
                                       tools: [{ name: "get_weather", input_schema: schema }] });
  stream.on("streamEvent", (e) => {
    if (e.type.startsWith("content_block_")) seq.push([e.type, e.index, e.delta ? e.delta.partial_json ?? null : null]);
  });
  const final = await stream.finalMessage();
  return { seq, stop: final.stop_reason, usage: final.usage,
           calls: final.content.filter((b) => b.type === "tool_use").map((b) => [b.id, b.name, b.input]) };
});

await step("openai_responses_tools_interleaved", async () => {
  const deltas = {};
  const done = {};
  const stream = oai.responses.stream({ model: "oc-openai_tools_interleaved", input: "Weather and time?", store: false,
                                        tools: [{ type: "function", name: "get_weather", parameters: schema }] });
  stream.on("event", (e) => {
    if (e.type === "response.function_call_arguments.delta") deltas[e.output_index] = (deltas[e.output_index] || "") + e.delta;
    if (e.type === "response.output_item.done" && e.item.type === "function_call") done[e.item.call_id] = e.item.arguments;
  });
  const final = await stream.finalResponse();
  return { status: final.status, usage: final.usage, deltas, done,
           calls: final.output.filter((o) => o.type === "function_call").map((o) => [o.call_id, o.name, o.arguments]) };
});

const compat = createOpenAICompatible({ name: "gw", baseURL: `${base}/llm/v1`, apiKey: "x", includeUsage: true });
const anthropicProvider = createAnthropic({ baseURL: `${base}/llm/v1`, apiKey: "x" });

await step("vercel_compat_text", async () => {
  const r = streamText({ model: compat("an-anthropic_text"), prompt: "hi", maxRetries: 0 });
  return { text: await r.text, finish: await r.finishReason, usage: await r.usage };
});

await step("vercel_compat_tools", async () => {
  const r = streamText({ model: compat("an-anthropic_tools"), prompt: "hi", maxRetries: 0,
                         tools: { get_weather: tool({ inputSchema: jsonSchema(schema) }) } });
  const calls = await r.toolCalls;
  return { finish: await r.finishReason, usage: await r.usage, calls: calls.map((c) => [c.toolCallId, c.toolName, c.input]) };
});

await step("vercel_anthropic_text", async () => {
  const r = streamText({ model: anthropicProvider("oc-openai_text"), prompt: "hi", maxRetries: 0 });
  return { text: await r.text, finish: await r.finishReason, usage: await r.usage };
});

await step("vercel_anthropic_tools_interleaved", async () => {
  const r = streamText({ model: anthropicProvider("oc-openai_tools_interleaved"), prompt: "hi", maxRetries: 0,
                         tools: { get_weather: tool({ inputSchema: jsonSchema(schema) }),
                                  get_time: tool({ inputSchema: jsonSchema({ type: "object" }) }) } });
  const calls = await r.toolCalls;
  return { finish: await r.finishReason, usage: await r.usage, calls: calls.map((c) => [c.toolCallId, c.toolName, c.input]) };
});

await step("vercel_anthropic_error", async () => {
  const errors = [];
  const r = streamText({ model: anthropicProvider("oc-openai_error"), prompt: "hi", maxRetries: 0,
                         onError: ({ error }) => errors.push(String(error && error.message ? error.message : JSON.stringify(error))) });
  let text = "";
  for await (const part of r.fullStream) {
    if (part.type === "text-delta") text += part.text;
  }
  return { text, errors };
});

console.log(JSON.stringify(out));
