/**
 * Review at stop 50 of the OpenAI-compatible API as its clients and its operator meet it: a
 * model named the way Hugging Face names them (`org/name`) looked up by `GET /v1/models/{id}`, a
 * model named by its CID while another listed model (a peer's) takes that CID as its name, what a
 * 400 says of a field that may be a string or an array (`stop`, `prompt`, chat `content`), an
 * internal error (a 500, HTTP or WebSocket) that must leave the operator a log line to find its
 * cause by, and an SSE body whose reader cancels it at once after a read (an in-process consumer
 * of `app.fetch`), which must not be taken later for an idle client.
 */
import { assert, assertEquals } from "./_assert.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import type { TextJob } from "../../protocols/job.ts";
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

Deno.test("review s50: GET /v1/models/{id} finds a model by a name with a slash (org/name), written as is or percent-encoded; an unknown one is 404 unknown_model", async () => {
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

Deno.test("review s50: an internal error (500 internal_error) is logged with its cause, which the client's body leaves out", async () => {
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

Deno.test("review s50: an internal error a WebSocket frame runs into is logged with its cause; the client is told internal_error for its id", async () => {
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

Deno.test("review s54: a typed internal error (a 500) at a WebSocket submission is sent with its code, not its text, which the operator's log keeps", async () => {
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

Deno.test("review s50: a request naming a model by its CID gets that model, though a model listed before it (a peer's) has that CID as its name", async () => {
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

Deno.test("review s50: a 400 for a string-or-array field sent as an array says what is wrong inside the array (5 stop sequences: the limit of 4; an image part: its type), not just 'Invalid input'", async () => {
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

Deno.test("review s50: an SSE body cancelled right after a read (before its pull has returned) arms no idle timer: the job is cancelled once and no idle cut-off is counted", async () => {
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
