/**
 * Review s52: `request_timeout` names two different waits. At the edge it is the client's body
 * that did not arrive in time (408, the client's fault, docs/API.md); from a port it is a
 * forwarded job's worker that accepted the job and never started it (`StartTimeoutError`, the
 * start timeout of docs/PROTOCOL.md), which a router hands to the client when no other worker
 * took the job. That one is the upstream's silence: an OpenAI client must get a 5xx
 * `server_error` (a gateway timeout), not a 408 `invalid_request_error` telling it that its own
 * request was too slow, and `/metrics` must not count it as a client refused at the edge.
 *
 * Nor is any refusal of a job that no worker started (the start timeout; a worker lost before
 * its start: `connection_closed`, `peer_timeout`) the client's: like a full node's
 * `too_many_jobs` (review s47), it must not cost the client's API key one of its starts a
 * minute, or a client retrying through a router's bad minute ends up `rate_limited` for jobs
 * that never ran.
 */
import OpenAI from "openai";
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { codesOfRetries, refusingPort } from "./_refusing_port.ts";
import { createApp } from "../../server/app.ts";
import { serve } from "../../server/serve.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  ServedModelInfo,
} from "../../inference/inference_port.ts";
import { emptyInferenceStats } from "../../inference/inference_port.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { StartTimeoutError } from "../../inference/remote_errors.ts";
import { RequestTimeoutError } from "../../server/body_limit.ts";
import { httpStatusOf } from "../../server/http_errors.ts";

const MODEL: ServedModelInfo = { cid: "bafkforwarded", name: "forwarded", kind: "text" };
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
    return Promise.resolve([MODEL]);
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

Deno.test("review s52: a forwarded job whose worker never started it (start timeout) is answered 504 server_error, not 408 invalid_request_error blaming the client, on every /v1 route, streamed or not", async () => {
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

Deno.test("review s52: a worker's start timeout is not counted in /metrics as a client refused at the edge (veriflow_http_refused_total)", async () => {
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
  assert(
    !metrics.includes('veriflow_http_refused_total{code="request_timeout"}'),
    metrics.split("\n").filter((line) => line.startsWith("veriflow_http_refused")).join("\n"),
  );
});

Deno.test("review s52: the openai client raises a worker's start timeout as a server error (InternalServerError, 504), not as a 4xx about its request", async () => {
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

Deno.test("review s52: the edge's own body timeout is still the client's 408; only the upstream's request_timeout is a 504", () => {
  assertEquals(httpStatusOf(new RequestTimeoutError(1_000)), 408);
  assertEquals(httpStatusOf(new RequestTimeoutError(1_000, true)), 408);
  assertEquals(httpStatusOf(new StartTimeoutError(START_TIMEOUT_MS)), 504);
});

const KEY = "a-long-random-key-for-tests-1234";

const NOT_STARTED: [string, () => Error][] = [
  ["request_timeout", () => new StartTimeoutError(START_TIMEOUT_MS)],
  ["connection_closed", () => new VeriflowError("connection_closed", "the worker went away")],
  ["peer_timeout", () => new VeriflowError("peer_timeout", "the worker went silent")],
];

for (const [code, refusal] of NOT_STARTED) {
  Deno.test(`review s52: a client retrying while no worker starts its job (${code}) keeps its API key's starts a minute: it is told ${code} every time, never rate_limited`, async () => {
    const app = createApp({
      inference: refusingPort(refusal),
      edge: { apiKeys: [KEY], perKeyRequestsPerMinute: 2 },
    });
    const codes = await codesOfRetries(app, KEY);
    assertEquals(codes, Array(5).fill(code));
  });
}
