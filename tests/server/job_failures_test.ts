/**
 * What a failed job tells whom: an internal failure's text goes to the operator's log, the client
 * gets its code and the status that code has (a worker that never started a job is the upstream's
 * silence, not the client's fault, and costs no API-key start), over HTTP, SSE and the WebSocket
 * API, a receipt that could not be made included.
 */
import { assertEquals, assertRejects } from "./_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ActorCrashedError } from "../../actors/errors.ts";
import { InferenceActor } from "../../actors/inference_actor.ts";
import { failingPort } from "./_failing_port.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { createApp } from "../../server/app.ts";
import { ScriptedModel, StaticModels } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type InferenceStats,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { doneMessage } from "../../server/stream_protocol.ts";
import assert from "node:assert/strict";
import { DeliveredTokensDivergedError } from "../../network/failover.ts";
import { errorResponse, httpStatusOf } from "../../server/http_errors.ts";
import OpenAI from "openai";
import { codesOfRetries, REFUSING_PORT_MODEL, refusingPort } from "./_refusing_port.ts";
import { serve } from "../../server/serve.ts";
import { StartTimeoutError } from "../../inference/remote_errors.ts";
import { RequestTimeoutError } from "../../server/body_limit.ts";

// What a failed job tells whom: an internal failure's text (a plain Error's message, a crashed
// actor's reason: file paths, internals, peers) stays out of the client's 500 body and SSE error
// event, and goes instead to the node's log line of the job, once, so the operator keeps the cause;
// the client's own errors (and the node's 5xx that say which worker or why) keep their message,
// which is meant for the client. The last test pins what the rule must leave alone.

const LOOPBACK = { transport: "tcp", hostname: "127.0.0.1", port: 40000 } as const;

/** What an internal failure may say that no client should read. */
const SECRET = "/var/lib/veriflow/models/secret.onnx";

/** A model whose first step throws a plain Error naming a file, as a runtime's failure does. */
class FailingModel extends ScriptedModel {
  override generate(): ReadableStream<TokenChunk> {
    return new ReadableStream<TokenChunk>({
      pull: () => {
        throw new Error(`ENOENT: no such file or directory, open '${SECRET}'`);
      },
    });
  }
}

/** POST a completion to `app` from this machine; the answer's status and text. */
async function complete(
  app: ReturnType<typeof createApp>,
  model: string,
  stream: boolean,
): Promise<{ status: number; text: string }> {
  const response = await app.fetch(
    new Request("http://127.0.0.1/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, prompt: "hi", max_tokens: 4, stream }),
    }),
    { remoteAddr: LOOPBACK },
  );
  return { status: response.status, text: await response.text() };
}

/** The `error` member of a JSON body, or of an SSE body's error event. */
function errorOf(text: string): { code: string; message: string; type: string } {
  const event = text.split("\n").find((line) => line.startsWith('data: {"error"'));
  return JSON.parse(event === undefined ? text : event.slice("data: ".length)).error;
}

Deno.test("a job that fails with a plain Error answers 500 internal_error without its message, as JSON and as SSE, and the node's log names the cause once per job", async () => {
  const model = new FailingModel({ name: "failing" });
  const system = new ActorSystem({ name: "review-s53b" });
  try {
    const models = new StaticModels([model]);
    const inference = await system.spawn({
      name: "node/inference",
      factory: () => new InferenceActor({ models, concurrency: 1, queueLimit: 1 }),
    });
    const lines: string[] = [];
    const app = createApp({
      inference: new LocalInferencePort({ inference, models }),
      defaultModel: model.info.cid,
      log: (line) => lines.push(line),
    });
    const json = await complete(app, model.info.cid, false);
    assertEquals(json.status, 500);
    assertEquals(errorOf(json.text).code, "internal_error");
    assertEquals(errorOf(json.text).type, "server_error");
    assert(!json.text.includes(SECRET), `the body leaks: ${json.text}`);
    const sse = await complete(app, model.info.cid, true);
    assertEquals(sse.status, 200);
    assertEquals(errorOf(sse.text).code, "internal_error");
    assert(!sse.text.includes(SECRET), `the event leaks: ${sse.text}`);
    // The operator's one record of why: each failed job's line has the cause, once.
    const causes = lines.filter((line) => line.includes(SECRET));
    assertEquals(causes.length, 2, `log: ${JSON.stringify(lines)}`);
    assert(causes.every((line) => / failed after /.test(line)), JSON.stringify(causes));
  } finally {
    await system.shutdown();
  }
});

Deno.test("a job ended by a crashed actor (actor_crashed, a 500) is answered without the crash's reason, which the node's log keeps", async () => {
  const crash = new ActorCrashedError("node/inference", new Error(`cannot read ${SECRET}`));
  const lines: string[] = [];
  const app = createApp({
    inference: failingPort({ code: crash.code, message: crash.message }),
    log: (line) => lines.push(line),
  });
  for (const stream of [false, true]) {
    const answer = await complete(app, "bafkfailing", stream);
    assertEquals(answer.status, stream ? 200 : 500);
    assertEquals(errorOf(answer.text).code, "actor_crashed");
    assert(!answer.text.includes(SECRET), `the answer leaks: ${answer.text}`);
  }
  assertEquals(lines.filter((line) => line.includes(SECRET)).length, 2, JSON.stringify(lines));
});

Deno.test("a job that fails with the client's own error, or a 5xx that says which upstream, keeps its message for the client", async () => {
  const cases = [
    { code: "context_length_exceeded", message: "prompt of 90 tokens + max_tokens 40 > 64" },
    { code: "invalid_generation_params", message: "temperature must be at most 2" },
    { code: "rate_limited", message: "over 60 requests a minute for this key" },
    { code: "worker_stalled", message: "worker 1a2b… sent nothing for 30 s" },
  ];
  for (const error of cases) {
    const app = createApp({ inference: failingPort(error) });
    for (const stream of [false, true]) {
      const answer = await complete(app, "bafkfailing", stream);
      assertEquals(errorOf(answer.text).code, error.code);
      assertEquals(errorOf(answer.text).message, error.message, `${error.code}, stream ${stream}`);
    }
  }
});

// A failed job's text over the WebSocket API follows the HTTP API's rule (above): an internal
// failure's message (a crashed actor's reason, a plain Error's: file paths, internals, peers) is
// not sent to the client, whose error message says only that the node failed; the client's own
// errors keep theirs.

/** The `error` message ending one WebSocket job on a node whose jobs fail with `error`. */
async function wsFailure(error: { code: string; message: string }) {
  const app = createApp({ inference: failingPort(error), log: () => {} });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request, info) => app.fetch(request, info),
  );
  try {
    const ws = await WsProbe.open(`ws://127.0.0.1:${server.addr.port}/v1/stream`);
    try {
      ws.send({ type: "infer", id: "a", model: "bafkfailing", prompt: "hi", max_tokens: 2 });
      return await ws.next((m) => m.type === "error" && "id" in m && m.id === "a") as {
        code: string;
        message: string;
      };
    } finally {
      ws.socket.close();
      await ws.closed;
    }
  } finally {
    await server.shutdown();
  }
}

Deno.test("a WebSocket job ended by an internal failure (a crashed actor) is told its code without the failure's text", async () => {
  const crash = new ActorCrashedError("node/inference", new Error(`cannot read ${SECRET}`));
  const error = await wsFailure({ code: crash.code, message: crash.message });
  assertEquals(error.code, "actor_crashed");
  assert(!error.message.includes(SECRET), `the message leaks: ${error.message}`);
  const plain = await wsFailure({ code: "internal_error", message: `ENOENT: open '${SECRET}'` });
  assertEquals(plain.code, "internal_error");
  assert(!plain.message.includes(SECRET), `the message leaks: ${plain.message}`);
});

Deno.test("a WebSocket job that fails with the client's own error keeps its message", async () => {
  const message = "prompt is 5000 tokens, the model's context is 2048";
  const error = await wsFailure({ code: "context_length_exceeded", message });
  assertEquals(error.code, "context_length_exceeded");
  assertEquals(error.message, message);
});

// What a client is told when something internal fails beside its job: a finished job's receipt that
// could not be made (`veriflow_receipt_error` over HTTP, the WebSocket `done`'s `receipt_error`)
// and a typed internal error (a 500: `model_load_failed`, `actor_crashed`, a peer's unknown code)
// thrown at submission. Their text may name files, internals or peers: the client gets the code,
// the operator the text, as for a failed job (`jobFailureForClient`). The last test pins what the
// rule must leave alone.

/** What an internal failure may say that no client should read. */
const RECEIPT_SECRET = "/var/lib/veriflow/proofs/7f3a";

const MODEL = { cid: "bafkreceipts", name: "receipts", kind: "text" } as const;

/**
 * A port whose every job streams one token and finishes (`stop`) without a receipt, `error`
 * saying why, as a job whose prover failed does; or, with `refusal`, refuses every submission.
 */
function receiptlessPort(
  error: { code: string; message: string },
  refusal?: unknown,
): InferencePort {
  let jobs = 0;
  return {
    submit: () => {
      if (refusal !== undefined) return Promise.reject(refusal);
      const jobId = String(++jobs).padStart(64, "0");
      const summary: JobSummary = {
        jobId,
        finishReason: "stop",
        usage: { promptTokens: 1, completionTokens: 1 },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 1, tokensPerS: 0 },
        error,
      };
      let sent = false;
      const handle: InferenceHandle = {
        jobId,
        model: MODEL,
        promptTokens: 1,
        tokens: new ReadableStream<StreamedToken>({
          pull: (controller) => {
            if (sent) return controller.close();
            sent = true;
            controller.enqueue({ index: 0, tokenId: 0x61, text: "a", finishReason: "stop" });
          },
        }, { highWaterMark: 0 }),
        done: Promise.resolve(summary),
        cancel: () => {},
      };
      return Promise.resolve(handle);
    },
    models: () => Promise.resolve([MODEL]),
    stats: () => Promise.resolve({} as InferenceStats),
  };
}

/** POST a completion to `app` from this machine; the answer's status and text. */
async function completeBeside(
  app: ReturnType<typeof createApp>,
  stream: boolean,
): Promise<{ status: number; text: string }> {
  const response = await app.fetch(
    new Request("http://127.0.0.1/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL.cid, prompt: "hi", max_tokens: 4, stream }),
    }),
    { remoteAddr: LOOPBACK },
  );
  return { status: response.status, text: await response.text() };
}

/** The `veriflow_receipt_error` of a JSON body, or of an SSE body's last chunk. */
function receiptErrorOf(text: string): { code: string; message: string } | undefined {
  const event = text.split("\n").findLast((line) => line.startsWith('data: {"id"'));
  return JSON.parse(event === undefined ? text : event.slice("data: ".length))
    .veriflow_receipt_error;
}

Deno.test("a finished job whose receipt failed internally (proof_store_failed, internal_error, actor_crashed) tells its client the code without the text, over JSON, SSE and the WebSocket done", async () => {
  for (const code of ["proof_store_failed", "internal_error", "actor_crashed"]) {
    const error = {
      code,
      message: `cannot write ${RECEIPT_SECRET}/job: Not a directory (os error 20)`,
    };
    const app = createApp({ inference: receiptlessPort(error) });
    for (const stream of [false, true]) {
      const answer = await completeBeside(app, stream);
      assertEquals(answer.status, 200);
      assertEquals(receiptErrorOf(answer.text)?.code, code, answer.text);
      assert(!answer.text.includes(RECEIPT_SECRET), `the answer leaks (${code}): ${answer.text}`);
    }
    const done = doneMessage("a", {
      jobId: "0".repeat(64),
      finishReason: "stop",
      usage: { promptTokens: 1, completionTokens: 1 },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 1, tokensPerS: 0 },
      error,
    });
    assertEquals(done.receipt_error?.code, code);
    assert(
      !JSON.stringify(done).includes(RECEIPT_SECRET),
      `done leaks (${code}): ${JSON.stringify(done)}`,
    );
  }
});

Deno.test("a typed internal error (a 500) at submission is answered with its code and without its text, which the operator's log keeps once", async () => {
  const refusals = [
    new VeriflowError(
      "model_load_failed",
      `cannot read model.onnx and config.json in ${RECEIPT_SECRET}`,
    ),
    new VeriflowError(
      "actor_crashed",
      `actor "node/inference" crashed: Error: open ${RECEIPT_SECRET}`,
    ),
  ];
  for (const refusal of refusals) {
    const lines: string[] = [];
    const app = createApp({
      inference: receiptlessPort({ code: "unused", message: "" }, refusal),
      log: (line) => lines.push(line),
    });
    const answer = await completeBeside(app, false);
    assertEquals(answer.status, 500);
    const body = JSON.parse(answer.text);
    assertEquals(body.error.code, refusal.code);
    assertEquals(body.error.type, "server_error");
    assert(!answer.text.includes(RECEIPT_SECRET), `the body leaks: ${answer.text}`);
    // Before the fix the body had the text and the log nothing: the text is now the operator's.
    const logged = lines.filter((line) => line.includes(RECEIPT_SECRET));
    assertEquals(logged.length, 1, `log: ${JSON.stringify(lines)}`);
    assert(logged[0].includes(refusal.code), logged[0]);
    assert(logged[0].includes("POST /v1/completions"), logged[0]);
  }
});

Deno.test("a receipt error meant for the client (a forwarded job's receipt_rejected, a prover's ask_timeout) and a 5xx refusal that says why keep their text, and only internal errors are logged", async () => {
  const meant = [
    {
      code: "receipt_rejected",
      message: "the worker's receipt: it claims 9 tokens, and 8 were relayed to the client",
    },
    { code: "ask_timeout", message: 'ask to "node/prover" timed out after 30000 ms' },
  ];
  for (const error of meant) {
    const app = createApp({ inference: receiptlessPort(error) });
    for (const stream of [false, true]) {
      assertEquals(receiptErrorOf((await completeBeside(app, stream)).text), error);
    }
  }
  const lines: string[] = [];
  const refusal = new VeriflowError("no_worker", "no connected peer runs bafkreceipts");
  const app = createApp({
    inference: receiptlessPort({ code: "unused", message: "" }, refusal),
    log: (line) => lines.push(line),
  });
  const answer = await completeBeside(app, false);
  assertEquals(answer.status, 503);
  assertEquals(JSON.parse(answer.text).error.message, refusal.message);
  assertEquals(lines, []);
});

Deno.test("a finished job's internal receipt failure, withheld from its client, is in the operator's log line of the job", async () => {
  const error = { code: "internal_error", message: `TypeError: cannot read ${RECEIPT_SECRET}/job` };
  const lines: string[] = [];
  const app = createApp({ inference: receiptlessPort(error), log: (line) => lines.push(line) });
  const answer = await completeBeside(app, false);
  assert(!answer.text.includes(RECEIPT_SECRET), `the answer leaks: ${answer.text}`);
  await new Promise((resolve) => setTimeout(resolve, 0)); // the job's end line follows `done`
  const ended = lines.filter((line) => line.includes("ended (stop)"));
  assertEquals(ended.length, 1, `log: ${JSON.stringify(lines)}`);
  assert(ended[0].includes(`without a receipt: internal_error: ${error.message}`), ended[0]);
});

// A stream whose lost worker's tokens every takeover refused ends with `delivered_tokens_diverged`
// (`network/failover.ts`). Its answer is a 502 that keeps the message naming the wrong token and
// the lost worker — not a 500 with the generic internal message, which is what a code missing from
// the status table gets.

Deno.test("delivered_tokens_diverged answers 502 with its own message, a server_error", async () => {
  const message = "the tokens sent were not the job's output from token 3 on (worker ab12)";
  const response = errorResponse(new DeliveredTokensDivergedError(message, 3, "ab12", undefined));
  assert.equal(response.status, 502);
  const { error } = await response.json();
  assert.equal(error.code, "delivered_tokens_diverged");
  assert.equal(error.message, message);
  assert.equal(error.type, "server_error");
});

// `request_timeout` names two different waits. At the edge it is the client's body that did not
// arrive in time (408, the client's fault, docs/API.md); from a port it is a forwarded job's worker
// that accepted the job and never started it (`StartTimeoutError`, the start timeout of
// docs/PROTOCOL.md), which a router hands to the client when no other worker took the job. That one
// is the upstream's silence: an OpenAI client must get a 5xx `server_error` (a gateway timeout),
// not a 408 `invalid_request_error` telling it that its own request was too slow, and `/metrics`
// must not count it as a client refused at the edge.
//
// Nor is any refusal of a job that no worker started (the start timeout; a worker lost before its
// start: `connection_closed`, `peer_timeout`) the client's: like a full node's `too_many_jobs`, it
// must not cost the client's API key one of its starts a minute, or a client retrying through a
// router's bad minute ends up `rate_limited` for jobs that never ran.

const FORWARDED_MODEL: ServedModelInfo = { cid: "bafkforwarded", name: "forwarded", kind: "text" };
/** The router's start timeout (DEFAULT_START_TIMEOUT_MS). */
const START_TIMEOUT_MS = 30_000;

/** A router's port whose only worker accepted each job and never started it. */
class SilentWorkerPort implements InferencePort {
  submitted = 0;
  submit(): Promise<InferenceHandle> {
    this.submitted++;
    return Promise.reject(new StartTimeoutError(START_TIMEOUT_MS));
  }
  models(): Promise<readonly ServedModelInfo[]> {
    return Promise.resolve([FORWARDED_MODEL]);
  }
  stats(): Promise<InferenceStats> {
    return Promise.resolve(emptyInferenceStats());
  }
}

const REQUESTS: [string, Record<string, unknown>][] = [
  ["/v1/completions", { model: "forwarded", prompt: "hi", max_tokens: 4 }],
  ["/v1/completions", { model: "forwarded", prompt: "hi", max_tokens: 4, stream: true }],
  ["/v1/chat/completions", {
    model: "forwarded",
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 4,
  }],
  ["/v1/chat/completions", {
    model: "forwarded",
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 4,
    stream: true,
  }],
];

Deno.test("a forwarded job whose worker never started it (start timeout) is answered 504 server_error, not 408 invalid_request_error blaming the client, on every /v1 route, streamed or not", async () => {
  const port = new SilentWorkerPort();
  const app = createApp({ inference: port });
  for (const [path, body] of REQUESTS) {
    const response = await app.fetch(
      new Request(`http://127.0.0.1${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }),
      { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } },
    );
    const answer = await response.json();
    assertEquals(
      [path, body.stream ?? false, response.status, answer.error?.type, answer.error?.code],
      [path, body.stream ?? false, 504, "server_error", "request_timeout"],
    );
  }
  assertEquals(port.submitted, REQUESTS.length);
});

Deno.test("a worker's start timeout is not counted in /metrics as a client refused at the edge (veriflow_http_refused_total)", async () => {
  const app = createApp({ inference: new SilentWorkerPort() });
  const info = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } };
  const refused = await app.fetch(
    new Request("http://127.0.0.1/v1/completions", {
      method: "POST",
      body: JSON.stringify({ model: "forwarded", prompt: "hi", max_tokens: 4 }),
    }),
    info,
  );
  await refused.body?.cancel();
  const metrics = await (await app.fetch(new Request("http://127.0.0.1/metrics"), info)).text();
  // Every known code is listed from the start (review s74 F4): this one stays at 0, and the 504 is
  // counted with the node's server errors (review s74 F2).
  assert(
    metrics.includes('\nveriflow_http_refused_total{code="request_timeout"} 0\n'),
    metrics.split("\n").filter((line) => line.startsWith("veriflow_http_refused")).join("\n"),
  );
  assert(
    metrics.includes('\nveriflow_http_errors_total{code="request_timeout"} 1\n'),
    metrics.split("\n").filter((line) => line.startsWith("veriflow_http_errors")).join("\n"),
  );
});

Deno.test("the openai client raises a worker's start timeout as a server error (InternalServerError, 504), not as a 4xx about its request", async () => {
  const app = createApp({ inference: new SilentWorkerPort() });
  const abort = new AbortController();
  const server = serve({ app, port: 0, signal: abort.signal });
  try {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const error = await assertRejects(
      () => client.completions.create({ model: "forwarded", prompt: "hi", max_tokens: 4 }),
    );
    assertEquals(
      [error.constructor.name, (error as { status?: number }).status],
      ["InternalServerError", 504],
    );
  } finally {
    abort.abort();
    await server.finished;
  }
});

Deno.test("the edge's own body timeout is still the client's 408; only the upstream's request_timeout is a 504", () => {
  assertEquals(httpStatusOf(new RequestTimeoutError(1_000)), 408);
  assertEquals(httpStatusOf(new RequestTimeoutError(1_000, true)), 408);
  assertEquals(httpStatusOf(new StartTimeoutError(START_TIMEOUT_MS)), 504);
});

const KEY = "a-long-random-key-for-tests-1234";

const NOT_STARTED: [string, () => Error][] = [
  ["request_timeout", () => new StartTimeoutError(START_TIMEOUT_MS)],
  ["connection_closed", () => new VeriflowError("connection_closed", "the worker went away")],
  ["peer_timeout", () => new VeriflowError("peer_timeout", "the worker went silent")],
  // The router cut the worker's connection off for the frames it sent that were refused.
  ["too_many_refusals", () => new VeriflowError("too_many_refusals", "the worker was cut off")],
];

for (const [code, refusal] of NOT_STARTED) {
  Deno.test(`a client retrying while no worker starts its job (${code}) keeps its API key's starts a minute: it is told ${code} every time, never rate_limited`, async () => {
    const app = createApp({
      inference: refusingPort(refusal),
      edge: { apiKeys: [KEY], perKeyRequestsPerMinute: 2 },
    });
    const codes = await codesOfRetries(app, KEY);
    assertEquals(codes, Array(5).fill(code));
  });
}

Deno.test("a forwarded job whose worker was cut off for the frames it sent (too_many_refusals) before it started is answered 502 server_error, a bad gateway, not 500", async () => {
  const app = createApp({
    inference: refusingPort(() => new VeriflowError("too_many_refusals", "the worker was cut off")),
  });
  const response = await app.fetch(
    new Request("http://127.0.0.1/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json", host: "127.0.0.1" },
      body: JSON.stringify({ model: REFUSING_PORT_MODEL.name, prompt: "hi", max_tokens: 1 }),
    }),
    { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } },
  );
  const answer = await response.json();
  assertEquals(
    [response.status, answer.error?.type, answer.error?.code],
    [502, "server_error", "too_many_refusals"],
  );
});
