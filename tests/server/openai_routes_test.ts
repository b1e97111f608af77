/**
 * The OpenAI-compatible routes (`server/openai_routes.ts`) driven by the `openai` client and by
 * hand: streamed and whole answers against a direct generate, the errors' status and shape, models
 * named by name, by `org/name` or by CID (and a name two models claim), and internal errors logged
 * for the operator.
 */
import OpenAI from "openai";
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { directText, eventually, startTestNode, type TestNode } from "./_fixtures.ts";
import { renderChatPrompt, withTurnStops } from "../../server/chat_template.ts";
import { GENERATION_LIMITS, type TextJob } from "../../protocols/job.ts";
import { jobSeedOf } from "../../server/request_schemas.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  JobSummary,
  ServedModelInfo,
  StreamedToken,
} from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { sseAnswer } from "../../server/openai_answers.ts";
import { CHAT_SHAPE, COMPLETION_SHAPE } from "../../server/openai_shapes.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { serve } from "../../server/serve.ts";
import { WsProbe } from "./_ws_probe.ts";
import { httpStatusOf } from "../../server/http_errors.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { refusingPort } from "./_refusing_port.ts";

const prover = async (job: TextJob, jobId: string, chunks: ReadableStream<TokenChunk>) => {
  let count = 0;
  for await (const _ of chunks) count++;
  return { jobId, model: job.model, count, signature: new Uint8Array([1, 2, 254]) };
};

async function withNode(
  options: Parameters<typeof startTestNode>[0],
  body: (node: TestNode, client: OpenAI) => Promise<void>,
): Promise<void> {
  const node = await startTestNode(options);
  const client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "dummy", maxRetries: 0 });
  try {
    await body(node, client);
  } finally {
    await node.close();
  }
}

Deno.test("POST /v1/completions with the openai client (stream: true): SSE text equals a direct generate, receipt on the last chunk", async () => {
  await withNode({ prover }, async (node, client) => {
    const stream = await client.completions.create({
      model: node.model.info.cid,
      prompt: "Once upon a time",
      max_tokens: 40,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    const finishReasons: (string | null)[] = [];
    // deno-lint-ignore no-explicit-any
    let last: any;
    let usage;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) {
        text += choice.text;
        finishReasons.push(choice.finish_reason);
        last = chunk;
      }
    }
    assertEquals(text, await directText(node.model, "Once upon a time", { maxTokens: 40 }));
    assert(["stop", "length"].includes(finishReasons.at(-1)!));
    assert(finishReasons.slice(0, -1).every((r) => r === null));
    assertEquals(last.veriflow_receipt.signature, "0102fe");
    assertEquals(last.veriflow_receipt.jobId, last.veriflow_job_id);
    assertEquals(usage?.completion_tokens, last.veriflow_receipt.count);
  });
});

Deno.test("POST /v1/chat/completions with the openai client (stream: true): deltas equal a direct generate of the chat template", async () => {
  await withNode({}, async (node, client) => {
    const messages = [
      { role: "system" as const, content: "You are terse." },
      { role: "user" as const, content: "Say hi." },
    ];
    const stream = await client.chat.completions.create({
      model: "default",
      messages,
      max_tokens: 32,
      stream: true,
    });
    let text = "";
    let role: string | undefined;
    let finish: string | null = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      role ??= choice.delta.role;
      text += choice.delta.content ?? "";
      finish = choice.finish_reason ?? finish;
    }
    assertEquals(role, "assistant");
    const expected = await directText(node.model, renderChatPrompt(messages), {
      maxTokens: 32,
      stop: withTurnStops([]),
    });
    assertEquals(text, expected);
    assert(finish === "stop" || finish === "length");
  });
});

Deno.test("Non-streamed completions and chat completions return one OpenAI body with usage and the receipt", async () => {
  await withNode({ prover }, async (node, client) => {
    const completion = await client.completions.create({
      model: node.model.info.name,
      prompt: "Hello",
      max_tokens: 20,
    });
    const expected = await directText(node.model, "Hello", { maxTokens: 20 });
    assertEquals(completion.object, "text_completion");
    assertEquals(completion.choices[0].text, expected);
    assertEquals(completion.usage?.prompt_tokens, 5);
    // deno-lint-ignore no-explicit-any
    const receipt = (completion as any).veriflow_receipt;
    assertEquals(receipt.count, completion.usage?.completion_tokens);
    const chat = await client.chat.completions.create({
      model: node.model.info.cid,
      messages: [{ role: "user", content: "Hi" }],
      max_completion_tokens: 16,
    });
    assertEquals(chat.object, "chat.completion");
    assertEquals(chat.choices[0].message.role, "assistant");
    assertEquals(
      chat.choices[0].message.content,
      await directText(node.model, "User: Hi\nAssistant:", {
        maxTokens: 16,
        stop: withTurnStops([]),
      }),
    );
    // deno-lint-ignore no-explicit-any
    assertEquals((chat as any).veriflow_receipt.signature, "0102fe");
  });
});

async function postError(node: TestNode, path: string, body: string) {
  const response = await fetch(`${node.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  const json = await response.json();
  assertEquals(Object.keys(json), ["error"]);
  assertEquals(Object.keys(json.error).sort(), ["code", "message", "param", "type"]);
  assertEquals(typeof json.error.message, "string");
  return { status: response.status, ...json.error };
}

Deno.test("Bad requests get the right 4xx and the OpenAI error shape", async () => {
  await withNode({}, async (node) => {
    const completions = (body: unknown) => postError(node, "/v1/completions", JSON.stringify(body));
    let e = await completions({ model: "no-such-model", prompt: "x" });
    assertEquals([e.status, e.code, e.type], [404, "unknown_model", "invalid_request_error"]);
    e = await postError(node, "/v1/completions", '{"prompt": "x",');
    assertEquals([e.status, e.code], [400, "invalid_json"]);
    e = await completions({ prompt: "z".repeat(400) });
    assertEquals([e.status, e.code], [400, "context_length_exceeded"]);
    for (
      const [field, value] of [
        ["temperature", 3],
        ["temperature", -1],
        ["max_tokens", 0],
        ["max_tokens", 1.5],
        // The edge's bounds are GENERATION_LIMITS: one past each is refused here, before a job
        // (but max_tokens, taken as its cap: openai_request_edges_test.ts).
        ["temperature", GENERATION_LIMITS.maxTemperature + 0.5],
        ["top_k", GENERATION_LIMITS.maxTopK + 1],
        ["stop", Array(GENERATION_LIMITS.maxStopSequences + 1).fill("x")],
        ["top_p", -0.1],
        ["top_p", 1.5],
        ["top_k", -2],
        ["seed", 0.5],
        ["n", 2],
      ] as const
    ) {
      e = await completions({ prompt: "x", [field]: value });
      assertEquals(
        [e.status, e.code, e.param],
        [400, "invalid_request", field],
        `${field}=${value}`,
      );
    }
    e = await completions({ model: 7, prompt: "x" });
    assertEquals([e.status, e.param], [400, "model"]);
    e = await completions({ max_tokens: 3 });
    assertEquals([e.status, e.param], [400, "prompt"]);
    e = await postError(node, "/v1/chat/completions", JSON.stringify({ messages: [] }));
    assertEquals([e.status, e.param], [400, "messages"]);
    e = await postError(
      node,
      "/v1/chat/completions",
      JSON.stringify({ messages: [{ role: "wizard", content: "x" }] }),
    );
    assertEquals([e.status, e.param], [400, "messages.0.role"]);
    const missing = await fetch(`${node.url}/v2/nothing`);
    assertEquals([missing.status, (await missing.json()).error.code], [404, "not_found"]);
  });
});

Deno.test("context_length_exceeded and empty_prompt name the field the prompt came from, as OpenAI: prompt (completions), messages (chat)", async () => {
  await withNode({}, async (node) => {
    const long = "z".repeat(400); // past the tiny model's context in tokens, under maxPromptChars
    let e = await postError(node, "/v1/completions", JSON.stringify({ prompt: long }));
    assertEquals([e.status, e.code, e.param], [400, "context_length_exceeded", "prompt"]);
    e = await postError(
      node,
      "/v1/chat/completions",
      JSON.stringify({ messages: [{ role: "user", content: long }] }),
    );
    assertEquals([e.status, e.code, e.param], [400, "context_length_exceeded", "messages"]);
    // A prompt with no tokens is the prompt's fault as well.
    e = await postError(node, "/v1/completions", JSON.stringify({ prompt: "" }));
    assertEquals([e.status, e.code, e.param], [400, "empty_prompt", "prompt"]);
  });
});

Deno.test("Any int64 seed is accepted (2^53 + 1, 2^62, 2^63 - 1, -2^63), and the same seed always samples the same job seed, a safe integer; past int64 or fractional is a 400", async () => {
  await withNode({}, async (node) => {
    const text = async (path: string, seed: string) => {
      // Sent as JSON text: 2^63 - 1 is not a JavaScript number, as a Python client writes it.
      const body = path === "/v1/completions"
        ? `{"prompt":"Once upon a time","max_tokens":16,"temperature":1.5,"seed":${seed}}`
        : `{"messages":[{"role":"user","content":"Hi"}],"max_tokens":16,"temperature":1.5,"seed":${seed}}`;
      const response = await fetch(`${node.url}${path}`, { method: "POST", body });
      const json = await response.json();
      assertEquals(response.status, 200, `${path} seed ${seed}: ${JSON.stringify(json)}`);
      return json.choices[0].text ?? json.choices[0].message.content;
    };
    for (const path of ["/v1/completions", "/v1/chat/completions"]) {
      for (
        const seed of [
          "9007199254740993",
          "4611686018427387904",
          "9223372036854775807",
          "-9223372036854775808",
        ]
      ) {
        const first = await text(path, seed);
        assertEquals(await text(path, seed), first, `${path} seed ${seed} reproduces`);
        // The job ran with the safe integer jobSeedOf gives, as a client may send it directly.
        const jobSeed = jobSeedOf(Number(seed));
        assert(Number.isSafeInteger(jobSeed), `${seed} -> ${jobSeed}`);
        assertEquals(await text(path, String(jobSeed)), first, `${path} seed ${seed}`);
      }
    }
    // A safe seed is the job's seed itself; 2^62 and 2^63 do not collapse to one value.
    assertEquals([jobSeedOf(0), jobSeedOf(-7), jobSeedOf(Number.MAX_SAFE_INTEGER)], [
      0,
      -7,
      Number.MAX_SAFE_INTEGER,
    ]);
    assert(new Set([2 ** 53, 2 ** 62, 2 ** 63, -(2 ** 63), 0].map(jobSeedOf)).size === 5);
    for (const seed of ["18446744073709551616", "-9223372036854777856", "1e300", "2.5"]) {
      const e = await postError(node, "/v1/completions", `{"prompt":"x","seed":${seed}}`);
      assertEquals([e.status, e.code, e.param], [400, "invalid_request", "seed"], seed);
    }
  });
});

Deno.test("Too many concurrent jobs gives 429 (openai client: RateLimitError); the running job is unaffected", async () => {
  await withNode({ concurrency: 1, queueLimit: 0 }, async (node, client) => {
    const first = await client.completions.create({
      model: "gated",
      prompt: "x",
      max_tokens: 3,
      stream: true,
    });
    await eventually(() => node.gated.waiting === 1);
    const e = await postError(
      node,
      "/v1/completions",
      JSON.stringify({ model: "gated", prompt: "y" }),
    );
    assertEquals([e.status, e.code, e.type], [429, "too_many_jobs", "rate_limit_error"]);
    // A 429 says when to come back, as OpenAI clients expect (they honour Retry-After).
    const refused = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "gated", prompt: "y" }),
    });
    assertEquals([refused.status, refused.headers.get("retry-after")], [429, "1"]);
    await refused.body?.cancel();
    await assertRejects(
      () =>
        client.chat.completions.create({
          model: "gated",
          messages: [{ role: "user", content: "y" }],
        }),
      OpenAI.RateLimitError,
    );
    node.gated.release(3);
    let text = "";
    for await (const chunk of first) text += chunk.choices[0]?.text ?? "";
    assertEquals(text, "abc");
  });
});

Deno.test("An SSE client that disconnects mid-stream cancels its job (compute stops) while another stream continues", async () => {
  await withNode({}, async (node) => {
    const abort = new AbortController();
    const response = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gated", prompt: "x", max_tokens: 50, stream: true }),
      signal: abort.signal,
    });
    assertEquals(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const reader = response.body!.getReader();
    node.gated.release(2);
    let received = "";
    while (!received.includes('"text":"b"')) {
      received += new TextDecoder().decode((await reader.read()).value);
    }
    abort.abort();
    await reader.cancel().catch(() => {});
    await eventually(async () => (await node.stats()).jobsCancelled === 1);
    // Another stream on the same node runs to its end.
    const other = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "Still serving", max_tokens: 24, stream: true }),
    });
    const sse = await other.text();
    assert(sse.endsWith("data: [DONE]\n\n"));
    const text = sse.split("\n\n").filter((e) => e.startsWith("data: {")).map((e) =>
      JSON.parse(e.slice("data: ".length)).choices[0]?.text ?? ""
    ).join("");
    assertEquals(text, await directText(node.model, "Still serving", { maxTokens: 24 }));
    node.gated.release(100);
    await new Promise((r) => setTimeout(r, 20));
    assert(node.gated.steps <= 3, `computed ${node.gated.steps} steps after a disconnect at 2`);
    const stats = await node.stats();
    assertEquals([stats.activeJobs, stats.jobsCancelled], [0, 1]);
  });
});

Deno.test("A non-streamed request whose client disconnects cancels its job too", async () => {
  await withNode({}, async (node) => {
    const abort = new AbortController();
    const pending = fetch(`${node.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gated", messages: [{ role: "user", content: "x" }] }),
      signal: abort.signal,
    }).then((r) => r.text()).catch((error) => error);
    node.gated.release(2);
    await node.gated.stepsReached(2);
    abort.abort();
    assert((await pending) instanceof Error);
    await eventually(async () => (await node.stats()).jobsCancelled === 1);
    node.gated.release(100);
    await new Promise((r) => setTimeout(r, 20));
    assert(node.gated.steps <= 3, `computed ${node.gated.steps} steps after a disconnect at 2`);
  });
});

Deno.test("GET /v1/models, /healthz and /metrics describe the node", async () => {
  await withNode({}, async (node, client) => {
    const models = [];
    for await (const model of client.models.list()) models.push(model);
    assertEquals(models.map((m) => m.id), [node.model.info.cid, node.gated.info.cid]);
    // deno-lint-ignore no-explicit-any
    assertEquals((models[0] as any).veriflow.context_length, node.model.info.contextLength);
    const counted = await client.completions.create({
      model: "default",
      prompt: "count me",
      max_tokens: 5,
    });
    const tokens = counted.usage!.completion_tokens;
    const health = await (await fetch(`${node.url}/healthz`)).json();
    assertEquals(health, { status: "ok", models: 2, active_jobs: 0, queued_jobs: 0 });
    const metrics = await fetch(`${node.url}/metrics`);
    assertEquals(metrics.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const text = await metrics.text();
    assert(text.includes("# TYPE veriflow_inference_jobs_started_total counter\n"));
    assert(text.includes("veriflow_inference_jobs_finished_total 1\n"));
    assert(text.includes(`veriflow_inference_tokens_generated_total ${tokens}\n`), text);
    assert(text.includes("veriflow_inference_active_jobs 0\n"));
    assert(text.includes("veriflow_inference_queued_jobs 0\n"));
    assert(text.includes("veriflow_inference_jobs_cancelled_total 0\n"));
  });
});

// The OpenAI-compatible API as its clients and its operator meet it: a model named the way Hugging
// Face names them (`org/name`) looked up by `GET /v1/models/{id}`, a model named by its CID while
// another listed model (a peer's) takes that CID as its name, what a 400 says of a field that may
// be a string or an array (`stop`, `prompt`, chat `content`), an internal error (a 500, HTTP or
// WebSocket) that must leave the operator a log line to find its cause by, and an SSE body whose
// reader cancels it at once after a read (an in-process consumer of `app.fetch`), which must not be
// taken later for an idle client.

const LOOPBACK = { transport: "tcp", hostname: "127.0.0.1", port: 40000 } as const;

/** A Hugging Face export's name: `config.json`'s `_name_or_path`, which has a slash. */
const HF_MODEL: ServedModelInfo = {
  cid: "bafkhfmodel",
  name: "HuggingFaceTB/SmolLM2-135M-Instruct",
  kind: "text",
  contextLength: 2048,
};

function portOf(models: () => Promise<readonly ServedModelInfo[]>): InferencePort {
  return {
    submit: () => Promise.reject(new Error("no jobs in these tests")),
    models,
    stats: () => Promise.resolve({} as InferenceStats),
  };
}

Deno.test("GET /v1/models/{id} finds a model by a name with a slash (org/name), written as is or percent-encoded; an unknown one is 404 unknown_model", async () => {
  const app = createApp({ inference: portOf(() => Promise.resolve([HF_MODEL])) });
  const get = (path: string) =>
    app.fetch(new Request(`http://127.0.0.1${path}`), { remoteAddr: LOOPBACK });
  // curl, and clients that put the id in the path unencoded.
  const plain = await get("/v1/models/HuggingFaceTB/SmolLM2-135M-Instruct");
  assertEquals(plain.status, 200);
  assertEquals((await plain.json()).id, HF_MODEL.cid);
  // The openai Node client encodes the slash.
  const encoded = await get("/v1/models/HuggingFaceTB%2FSmolLM2-135M-Instruct");
  assertEquals(encoded.status, 200);
  assertEquals((await encoded.json()).id, HF_MODEL.cid);
  // By CID, as the listing gives it.
  assertEquals((await (await get(`/v1/models/${HF_MODEL.cid}`)).json()).id, HF_MODEL.cid);
  // A name with a slash that no model has is an unknown model, not an unknown route.
  const unknown = await get("/v1/models/HuggingFaceTB/nothing-here");
  assertEquals(unknown.status, 404);
  assertEquals((await unknown.json()).error.code, "unknown_model");
});

Deno.test("an internal error (500 internal_error) is logged with its cause, which the client's body leaves out", async () => {
  const lines: string[] = [];
  const app = createApp({
    inference: portOf(() => Promise.reject(new TypeError("catalog read a field of undefined"))),
    log: (line) => lines.push(line),
  });
  const response = await app.fetch(new Request("http://127.0.0.1/v1/models"), {
    remoteAddr: LOOPBACK,
  });
  assertEquals(response.status, 500);
  const body = await response.json();
  assertEquals(body.error.code, "internal_error");
  assertEquals(body.error.message.includes("catalog"), false, "internals stay out of the body");
  // The operator's only way to learn what failed.
  const logged = lines.filter((line) => line.includes("catalog read a field of undefined"));
  assertEquals(logged.length, 1, `log: ${JSON.stringify(lines)}`);
  assert(logged[0].includes("GET /v1/models"), logged[0]);
  // A refusal (a 4xx) is the client's mistake, not the operator's concern: not logged.
  const refused = await app.fetch(
    new Request("http://127.0.0.1/v1/completions", { method: "POST", body: "{" }),
    { remoteAddr: LOOPBACK },
  );
  assertEquals(refused.status, 400);
  assertEquals(lines.length, 1, `log: ${JSON.stringify(lines)}`);
});

Deno.test("an internal error a WebSocket frame runs into is logged with its cause; the client is told internal_error for its id", async () => {
  const lines: string[] = [];
  const port = portOf(() => Promise.resolve([HF_MODEL]));
  port.submit = () => Promise.reject(new TypeError("submit read a field of undefined"));
  const abort = new AbortController();
  const server = serve({
    app: createApp({ inference: port, log: (line) => lines.push(line) }),
    port: 0,
    signal: abort.signal,
  });
  const ws = await WsProbe.open(`${server.url.replace("http:", "ws:")}/v1/stream`);
  try {
    ws.send({ type: "infer", id: "r1", prompt: "hi" });
    const end = await ws.end("r1");
    assertEquals(end, {
      type: "error",
      id: "r1",
      code: "internal_error",
      message: "internal server error",
    });
    const logged = lines.filter((line) => line.includes("submit read a field of undefined"));
    assertEquals(logged.length, 1, `log: ${JSON.stringify(lines)}`);
    // A refused frame is the client's mistake: not logged.
    ws.send({ type: "infer", id: "r2", prompt: "hi", max_tokens: 0 });
    assertEquals((await ws.end("r2")).type, "error");
    assertEquals(lines.length, 1, `log: ${JSON.stringify(lines)}`);
  } finally {
    await ws.close();
    abort.abort();
    await server.finished;
  }
});

Deno.test("a typed internal error (a 500) at a WebSocket submission is sent with its code, not its text, which the operator's log keeps", async () => {
  const secret = "/var/lib/veriflow/models/secret.onnx";
  const lines: string[] = [];
  const port = portOf(() => Promise.resolve([HF_MODEL]));
  port.submit = () =>
    Promise.reject(new VeriflowError("model_load_failed", `cannot read ${secret}`));
  const abort = new AbortController();
  const server = serve({
    app: createApp({ inference: port, log: (line) => lines.push(line) }),
    port: 0,
    signal: abort.signal,
  });
  const ws = await WsProbe.open(`${server.url.replace("http:", "ws:")}/v1/stream`);
  try {
    ws.send({ type: "infer", id: "r1", prompt: "hi" });
    assertEquals(await ws.end("r1"), {
      type: "error",
      id: "r1",
      code: "model_load_failed",
      message: "internal server error",
    });
    const logged = lines.filter((line) => line.includes(secret));
    assertEquals(logged.length, 1, `log: ${JSON.stringify(lines)}`);
    assert(logged[0].includes("model_load_failed"), logged[0]);
  } finally {
    await ws.close();
    abort.abort();
    await server.finished;
  }
});

Deno.test("a request naming a model by its CID gets that model, though a model listed before it (a peer's) has that CID as its name", async () => {
  // What a router node lists: every connected worker's models, the first to connect first. A
  // worker may name its model anything, a CID another worker serves included.
  const good: ServedModelInfo = { cid: "bafkgoodmodel", name: "good", kind: "text" };
  const impostor: ServedModelInfo = { cid: "bafkimpostor", name: good.cid, kind: "text" };
  const submitted: string[] = [];
  const port = portOf(() => Promise.resolve([impostor, good]));
  port.submit = (job: TextJob) => {
    submitted.push(job.model);
    return Promise.reject(new VeriflowError("too_many_jobs", "full"));
  };
  const app = createApp({ inference: port });
  const fetchApp = (path: string, body?: unknown) =>
    app.fetch(
      new Request(`http://127.0.0.1${path}`, {
        method: body === undefined ? "GET" : "POST",
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
      { remoteAddr: LOOPBACK },
    );
  assertEquals((await (await fetchApp(`/v1/models/${good.cid}`)).json()).id, good.cid);
  await fetchApp("/v1/completions", { model: good.cid, prompt: "hi" });
  await fetchApp("/v1/chat/completions", {
    model: good.cid,
    messages: [{ role: "user", content: "hi" }],
  });
  assertEquals(submitted, [good.cid, good.cid]);
  // A name no CID matches still finds its model.
  await fetchApp("/v1/completions", { model: "good", prompt: "hi" });
  assertEquals(submitted.at(-1), good.cid);
});

Deno.test("a 400 for a string-or-array field sent as an array says what is wrong inside the array (5 stop sequences: the limit of 4; an image part: its type), not just 'Invalid input'", async () => {
  const app = createApp({ inference: portOf(() => Promise.resolve([HF_MODEL])) });
  const refusal = async (path: string, body: unknown) => {
    const response = await app.fetch(
      new Request(`http://127.0.0.1${path}`, { method: "POST", body: JSON.stringify(body) }),
      { remoteAddr: LOOPBACK },
    );
    assertEquals(response.status, 400);
    return (await response.json()).error as { message: string; param: string; code: string };
  };
  const stops = await refusal("/v1/completions", {
    prompt: "x",
    stop: ["a", "b", "c", "d", "e"],
  });
  assertEquals([stops.code, stops.param], ["invalid_request", "stop"]);
  assert(stops.message.includes("4"), stops.message);
  const batch = await refusal("/v1/completions", { prompt: ["one", "two"] });
  assertEquals(batch.param, "prompt");
  assert(batch.message.includes("1"), batch.message);
  const image = await refusal("/v1/chat/completions", {
    messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }],
  });
  assertEquals(image.param, "messages.0.content.0.type");
  assert(image.message.includes('"text"'), image.message);
  // A value of neither type is still named at the field, as before.
  const neither = await refusal("/v1/chat/completions", {
    messages: [{ role: "user", content: null }],
  });
  assertEquals(neither.param, "messages.0.content");
});

Deno.test("an SSE body cancelled right after a read (before its pull has returned) arms no idle timer: the job is cancelled once and no idle cut-off is counted", async () => {
  for (const shape of [CHAT_SHAPE, COMPLETION_SHAPE]) {
    const jobId = "cd".repeat(32);
    const summary = Promise.withResolvers<JobSummary>();
    let cancels = 0;
    const handle: InferenceHandle = {
      jobId,
      model: { cid: "bafkscripted", name: "scripted", kind: "text" },
      promptTokens: 1,
      // A model still writing: one token now, the rest never (until cancelled).
      tokens: new ReadableStream<StreamedToken>({
        start: (controller) => controller.enqueue({ index: 0, tokenId: 0x61, text: "a" }),
      }, { highWaterMark: 0 }),
      done: summary.promise,
      cancel: () => {
        cancels++;
        summary.resolve({
          jobId,
          finishReason: "cancelled",
          usage: { promptTokens: 1, completionTokens: 1 },
          timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
        });
      },
    };
    const timers = new ManualTimers();
    const stats = new EdgeStats();
    const body = sseAnswer(handle, shape, {
      stops: [],
      logprobs: false,
      includeUsage: false,
      idleTimeoutMs: 1_000,
      stats,
      computesOnEventLoop: false,
      timers,
    }).body!;
    const reader = body.getReader();
    const first = await reader.read();
    assertEquals(first.done, false);
    // The reader has what it wanted and lets go at once, as an in-process consumer does.
    await reader.cancel();
    assertEquals(cancels, 1);
    await timers.advance(5_000);
    assertEquals(stats.idleTimeouts, 0, "a client that went away is not an idle one");
    assertEquals(cancels, 1);
    assertEquals(timers.pending, 0);
  }
});

// On a router, the models a client can name are what connected workers list, and a name is only a
// label a lister chose (a CID names content; a name names nothing). A stranger that listed its own
// model under a popular name (`brown`), connected first, took every request by that name: the
// router resolved a name to the first model listed under it, and the client got another model's
// text, validated as that model's. A name two models claim is now refused as ambiguous, with their
// CIDs, so a client asks by CID; a name one model claims resolves as before.

const HONEST: ServedModelInfo = { cid: "bafkhonest", name: "brown", kind: "text" };
const SQUATTER: ServedModelInfo = { cid: "bafksquatter", name: "brown", kind: "text" };
const OTHER: ServedModelInfo = { cid: "bafkother", name: "other", kind: "text" };

/** A router's port whose workers list `models` (in the order they connected). */
function listing(models: ServedModelInfo[]): InferencePort {
  return { ...refusingPort(() => undefined), models: () => Promise.resolve(models) };
}

/** What resolving `name` on a gateway over `models` gives: a CID, or an error code. */
async function resolved(models: ServedModelInfo[], name: string): Promise<string> {
  const gateway = new InferenceGateway({ inference: listing(models) });
  return await gateway.resolveModel(name).then((m) => m.cid, (e) => (e as VeriflowError).code);
}

Deno.test("a model name two listed models claim is refused as ambiguous, whichever was listed first, instead of resolving to the first lister's model", async () => {
  assertEquals(await resolved([SQUATTER, HONEST, OTHER], "brown"), "ambiguous_model");
  assertEquals(await resolved([HONEST, SQUATTER, OTHER], "brown"), "ambiguous_model");
});

Deno.test("a name one model claims, or a CID, resolves as before, squatter or not", async () => {
  assertEquals(await resolved([HONEST, OTHER], "brown"), HONEST.cid);
  assertEquals(await resolved([SQUATTER, HONEST, OTHER], HONEST.cid), HONEST.cid);
  assertEquals(await resolved([SQUATTER, HONEST, OTHER], "other"), OTHER.cid);
});

Deno.test("a completion naming an ambiguous model is a 400 invalid_request_error on `model` that names the CIDs to ask by", async () => {
  const app = createApp({ inference: listing([SQUATTER, HONEST]) });
  const response = await app.fetch(
    new Request("http://127.0.0.1/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "brown", prompt: "hi", max_tokens: 1 }),
    }),
    { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } },
  );
  const body = await response.json();
  assertEquals(
    [response.status, body.error?.type, body.error?.code, body.error?.param],
    [400, "invalid_request_error", "ambiguous_model", "model"],
  );
  for (const cid of [HONEST.cid, SQUATTER.cid]) {
    assertEquals(body.error.message.includes(cid), true, `names ${cid}: ${body.error.message}`);
  }
  assertEquals(httpStatusOf(new VeriflowError("ambiguous_model", "x")), 400);
});
