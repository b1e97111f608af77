/**
 * What a dashboard page reading with an API key (job text blanked) is sent of a fraud proof and
 * of a `job_ended`'s receipt, and what `fraud_proof` asks cost (review s82 dash F1–F3). A deny-list
 * blanked the prompt and the tokens but sent the job's nonce beside the receipt's `inputHash` (an
 * HMAC of the prompt keyed by that nonce), the unkeyed `outputHash`, the stop strings and the
 * input file's bytes: a dictionary gave the prompt and a short output back. Such a page now gets
 * both from an allow-list; the operator gets the whole proof. Each ask was copied and encoded
 * anew (~0.5 MiB for a proof of an input job) without bound: now encoded once per proof and form,
 * and over the client's allowance an ask is refused.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { ApiKeys } from "../../server/api_keys.ts";
import type { EdgeEnv } from "../../server/client_access.ts";
import {
  type DashboardLimits,
  dashboardRoutes,
  type DashboardSources,
} from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  JobSummary,
} from "../../inference/inference_port.ts";
import { NodeActivity } from "../../node/node_activity.ts";
import { Identity } from "../../protocols/identity.ts";
import { inputHashOf, signReceipt, textOutputHash } from "../../protocols/receipt.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { cidOf } from "../../protocols/cid.ts";
import { type FraudProof, signFraudProof } from "../../protocols/fraud_proof.ts";
import { hmacSha256, toHex } from "../../protocols/hash.ts";
import { toJsonValue } from "../../server/json_value.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { KEY, NO_JOBS_PORT, OPERATOR, REMOTE } from "./_dashboard_node.ts";
import { quietSources } from "./_dashboard_sources.ts";

const PROMPT = "Is the merger approved?";
const OUTPUT = "yes";
const STOP = "SECRET-STOP";
const INPUT = new TextEncoder().encode("a stored public file the job reads");

/** Another client's job, its worker's receipt, and a validator's fraud proof over it. */
function keptProof() {
  const job: TextJob = {
    kind: "text",
    model: "bafkreitiny",
    prompt: PROMPT,
    input: cidOf(INPUT),
    params: { maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [STOP] },
    nonce: "a1b2c3d4e5f60718293a4b5c6d7e8f90",
  };
  const receipt = signReceipt({
    v: 1,
    kind: "text",
    jobId: jobId(job),
    model: job.model,
    inputHash: inputHashOf(job),
    params: job.params,
    outputHash: textOutputHash(OUTPUT),
    commitment: { scheme: "merkle-sha256", root: "00".repeat(32), chunkSize: 16, tokenBytes: 4 },
    tokenCount: 1,
    timings: { startedAt: 1, firstTokenMs: 1, totalMs: 1 },
  }, Identity.generate());
  const proof = signFraudProof({
    v: 1,
    kind: "output",
    job,
    receipt,
    chunks: [{ index: 0, tokens: new Uint8Array([1, 2, 3, 4]), path: [new Uint8Array(32)] }],
    cited: [{ position: 0, logProb: -1.5 }],
    input: INPUT,
    issuedAt: 1,
  } as never, Identity.generate()) as FraudProof;
  const activity = new NodeActivity();
  activity.record({ kind: "fraud", proof, confirmed: true, reason: "output_mismatch" });
  return { job, receipt, activity, id: activity.recent()[0].fraudProof! };
}

/** The dashboard on a free port, every request from another machine. */
function node(
  sources: DashboardSources,
  inference: InferencePort = NO_JOBS_PORT,
  limits: Partial<DashboardLimits> = {},
) {
  const jobs = new JobMonitor();
  const monitored = jobs.wrap(inference);
  const app = new Hono<EdgeEnv>();
  app.route(
    "/",
    dashboardRoutes({
      sources,
      inference: monitored,
      jobs,
      operatorToken: OPERATOR,
      keys: new ApiKeys([KEY]),
      allowUnauthenticatedRemote: false,
      allowedOrigins: [],
      tickMs: 60_000,
      limits: { ...limits, now: () => 0 },
      timers: new FakeTimers(),
    }),
  );
  const server = serve({
    app: { fetch: (req: Request) => app.fetch(req, { remoteAddr: REMOTE }) },
    hostname: "127.0.0.1",
    port: 0,
  });
  return { server, inference: monitored };
}

// deno-lint-ignore no-explicit-any -- the tests read loose JSON
type Message = Record<string, any>;

/** A page let in with `token`: its messages, raw and parsed. */
async function page(url: string, token: string) {
  const socket = new WebSocket(url.replace("http", "ws") + "/dashboard/live");
  const messages: Message[] = [];
  const raw: string[] = [];
  socket.onmessage = (e) => (raw.push(e.data), messages.push(JSON.parse(e.data)));
  const closed = new Promise((resolve) => (socket.onclose = resolve));
  await new Promise((resolve) => (socket.onopen = resolve));
  socket.send(JSON.stringify({ type: "auth", token }));
  await eventually(() => messages.find((m) => m.type === "snapshot"), "let in");
  const access = messages.findLast((m) => m.type === "hello")?.access;
  /** What came after it was let in (before: the `api_key_required` of a page elsewhere). */
  const since = messages.length;
  const after = () => messages.slice(since);
  const close = async () => {
    socket.close();
    await closed;
  };
  return { socket, messages, raw, close, access, after };
}

/** The prompt among `guesses` whose HMAC under `nonce` is `inputHash`, as a dictionary finds it. */
function guessPrompt(nonce: unknown, inputHash: unknown, guesses: string[]): string | undefined {
  if (typeof nonce !== "string" || typeof inputHash !== "string") return undefined;
  const text = (s: string) => new TextEncoder().encode(s);
  return guesses.find((g) =>
    toHex(hmacSha256(text(nonce), text(`veriflow/input/v2:${g}`))) === inputHash
  );
}

Deno.test("dashboard: a fraud proof reaches an API-key reader from an allow-list — no nonce, input, stop strings, input or output hash, commitment, tokens or signatures — and the operator whole", async () => {
  const { job, receipt, activity, id } = keptProof();
  const { server } = node(quietSources({ activity }));
  try {
    const ask = async (token: string) => {
      const p = await page(server.url, token);
      p.socket.send(JSON.stringify({ type: "fraud_proof", id }));
      const got = await eventually(() => p.messages.find((m) => m.type === "fraud_proof"), "it");
      const text = p.raw.find((r) => r.startsWith('{"type":"fraud_proof"'))!;
      await p.close();
      return { proof: got.proof as Message, text, access: p.access };
    };
    const read = await ask(KEY);
    assert.equal(read.access, "read", "a page elsewhere, let in by its key");
    const guesses = ["Is the deal done?", PROMPT, "hello"];
    assert.equal(
      guessPrompt(read.proof.job.nonce, read.proof.receipt.inputHash, guesses),
      undefined,
    );
    assert.equal(
      ["no", OUTPUT].find((g) => textOutputHash(g) === read.proof.receipt.outputHash),
      undefined,
      "no output read back from its hash",
    );
    for (
      const gone of [PROMPT, STOP, job.nonce, receipt.inputHash, receipt.outputHash, "01020304"]
    ) {
      assert(!read.text.includes(gone), `${gone} reached the reader: ${read.text}`);
    }
    assert.deepEqual(Object.keys(read.proof).sort(), [
      "chunks",
      "cited",
      "issuedAt",
      "job",
      "kind",
      "receipt",
      "v",
      "validator",
    ]);
    assert.deepEqual(read.proof.job, {
      kind: "text",
      model: job.model,
      params: { maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0 },
    });
    assert.equal(read.proof.receipt.jobId, receipt.jobId, "which job, by whom, stays");
    assert.equal(read.proof.receipt.worker, toHex(receipt.worker));
    assert.equal(read.proof.receipt.tokenCount, 1);
    for (const field of ["inputHash", "outputHash", "commitment", "sig"]) {
      assert.equal(field in read.proof.receipt, false, field);
    }
    assert.deepEqual(read.proof.chunks, [{ index: 0 }]);
    assert.deepEqual(read.proof.cited, [{ position: 0, logProb: -1.5 }]);

    const operator = await ask(OPERATOR);
    assert.equal(operator.access, "operator");
    assert.equal(operator.proof.job.prompt, PROMPT, "the operator gets the whole proof");
    assert.equal(operator.proof.job.nonce, job.nonce);
    assert.equal(operator.proof.receipt.outputHash, receipt.outputHash);
    assert.equal(operator.proof.input, toHex(INPUT));
  } finally {
    await server.shutdown();
  }
});

/** A port whose one job streams {@link OUTPUT} and ends with a summary carrying `receipt`. */
function onePort(receipt: unknown): InferencePort {
  return {
    submit: () => {
      const ended = Promise.withResolvers<JobSummary>();
      const tokens = ReadableStream.from([{ index: 0, tokenId: 0, text: OUTPUT }])
        .pipeThrough(
          new TransformStream({
            flush: () =>
              ended.resolve({
                jobId: "j",
                finishReason: "stop",
                usage: { promptTokens: 1, completionTokens: 1 },
                timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
                receipt,
                error: { code: "prover_failed", message: `no proof for ${PROMPT}` },
              }),
          }),
        );
      return Promise.resolve({
        jobId: "j",
        model: { cid: "m", name: "m", kind: "text" },
        promptTokens: 1,
        tokens,
        done: ended.promise,
        cancel: () => {},
      } as InferenceHandle);
    },
    models: () => Promise.resolve([]),
    stats: () => Promise.resolve({} as InferenceStats),
  };
}

Deno.test("dashboard: another client's job_ended reaches an API-key reader with its receipt's numbers only — no output or input hash, commitment, stop strings or error text — and the operator whole", async () => {
  const { receipt } = keptProof();
  const { server, inference } = node(quietSources(), onePort(toJsonValue(receipt)));
  const reader = await page(server.url, KEY);
  const operator = await page(server.url, OPERATOR);
  try {
    const handle = await inference.submit({} as never);
    for await (const _ of handle.tokens) { /* the requester reads its answer */ }
    await handle.done;
    const ended = (p: typeof reader) =>
      eventually(
        () => p.messages.find((m) => m.type === "job" && m.event.type === "job_ended"),
        "the job's end",
      );
    const read = (await ended(reader)).event;
    assert.equal(
      ["no", OUTPUT].find((g) => textOutputHash(g) === read.summary.receipt?.outputHash),
      undefined,
      "no output read back from the receipt",
    );
    assert.deepEqual(read.summary.receipt, {
      v: 1,
      kind: "text",
      jobId: receipt.jobId,
      model: receipt.model,
      tokenCount: 1,
      worker: toHex(receipt.worker),
      params: { maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0 },
      timings: { startedAt: 1, firstTokenMs: 1, totalMs: 1 },
    });
    assert.deepEqual(read.summary.error, { code: "prover_failed" }, "its code, not its text");
    assert.equal(read.summary.finishReason, "stop");
    assert.equal(read.job.text, "");
    const whole = (await ended(operator)).event;
    assert.equal(whole.summary.receipt.outputHash, receipt.outputHash, "the operator's is whole");
    assert.equal(whole.job.text, OUTPUT);
  } finally {
    await reader.close();
    await operator.close();
    await server.shutdown();
  }
});

Deno.test("dashboard: fraud_proof asks are encoded once per proof and form, and past the client's allowance refused rate_limited", async () => {
  const { activity, id } = keptProof();
  const { server } = node(quietSources({ activity }), NO_JOBS_PORT, { fraudProofAsksPerMinute: 5 });
  // Count what the node encodes as a fraud proof answer (same process).
  const stringify = JSON.stringify;
  let encodings = 0;
  JSON.stringify = ((...args: Parameters<typeof stringify>) => {
    const out = stringify(...args);
    if (out?.startsWith('{"type":"fraud_proof"')) encodings++;
    return out;
  }) as typeof JSON.stringify;
  const reader = await page(server.url, KEY);
  const operator = await page(server.url, OPERATOR);
  try {
    const ask = stringify({ type: "fraud_proof", id });
    for (let i = 0; i < 8; i++) reader.socket.send(ask);
    for (let i = 0; i < 3; i++) operator.socket.send(ask);
    const answers = (p: typeof reader) =>
      p.after().filter((m) => m.type === "fraud_proof" || m.type === "error");
    await eventually(() => answers(reader).length === 8 || undefined, "the reader's answers");
    await eventually(() => answers(operator).length === 3 || undefined, "the operator's answers");
    const kinds = answers(reader).map((m) => m.type === "error" ? m.code : m.type);
    assert.deepEqual(kinds, [...Array(5).fill("fraud_proof"), ...Array(3).fill("rate_limited")]);
    const refused = answers(reader).find((m) => m.type === "error")!;
    assert(refused.retryAfterS >= 1, "it says when to ask again");
    assert.deepEqual(answers(operator).map((m) => m.type), Array(3).fill("fraud_proof"));
    assert.equal(encodings, 2, "one encoding for readers, one for the operator");
  } finally {
    JSON.stringify = stringify;
    await reader.close();
    await operator.close();
    await server.shutdown();
  }
});
