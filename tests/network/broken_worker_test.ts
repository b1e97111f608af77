/**
 * A worker whose stream breaks the inference protocol (`inference_stream_invalid`) is handled
 * like a lost one: before its first token the job goes to the next worker, after it the job
 * resumes on another from the last good token, and the router keeps the broken worker off the
 * model (`worker_refused_model`). Ending the client's job instead let one broken or malicious
 * worker, chosen first for the room its hello claims, fail every job for its model.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import type { TextModel, TokenChunk } from "../../inference/text_model.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  INFERENCE_PROTOCOL,
  type InferenceEvent,
  type SubmitBody,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { parseReceipt } from "../../protocols/receipt.ts";
import { toHex } from "../../protocols/hash.ts";
import { proveJob } from "../../proof/prover.ts";
import { loadTinyModel, params, StaticModels } from "../server/_fixtures.ts";
import { spawnRouter, Workers } from "./_router_doubles.ts";

interface TestWorker {
  identity: Identity;
  toWorker: Connection;
  submissions: SubmitBody[];
  close(): Promise<void>;
}

/** A worker over an in-memory link; `serve` installs its handler of `inference.submit`. */
async function linked(
  serve: (atWorker: Connection, identity: Identity, submissions: SubmitBody[]) => void,
): Promise<TestWorker> {
  const identity = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity, protocols }),
  ]);
  const submissions: SubmitBody[] = [];
  serve(atWorker, identity, submissions);
  const close = async () => {
    await toWorker.close();
    await atWorker.close();
  };
  return { identity, toWorker, submissions, close };
}

/** An honest worker running `model` with a prover. */
function honestWorker(system: ActorSystem, model: TextModel): Promise<TestWorker> {
  return linked((atWorker, identity, submissions) => {
    const models = new StaticModels([model]);
    const prover = async (job: TextJob, _id: string, chunks: ReadableStream<TokenChunk>) =>
      (await proveJob(job, chunks, identity)).receipt;
    const inference = system.spawn<InferenceMessage>({
      name: `honest/${crypto.randomUUID()}`,
      factory: () => new InferenceActor({ models, prover }),
    });
    const port = inference.then((ref) => new LocalInferencePort({ inference: ref, models }));
    serveInference(atWorker, {
      submit: async (job, options) => {
        submissions.push({ job, resume: options?.resume ? [...options.resume] : undefined });
        return (await port).submit(job, options);
      },
      models: async () => (await port).models(),
      stats: async () => (await port).stats(),
    });
  });
}

/** A worker that answers every job with the events `script` gives. */
function scriptedWorker(
  script: (job: TextJob, identity: Identity) => InferenceEvent[] | Promise<InferenceEvent[]>,
): Promise<TestWorker> {
  return linked((atWorker, identity, submissions) => {
    atWorker.handle(SubmitMessage, async (body) => {
      submissions.push(body);
      const events = await script(body.job, identity);
      return new ReadableStream<InferenceEvent>({
        start: (c) => events.forEach((e) => c.enqueue(e)),
      });
    });
  });
}

/** The job `nonce` for `model`. */
function jobFor(model: TextModel, nonce: string): TextJob {
  return {
    kind: "text",
    model: model.info.cid,
    prompt: "Once upon a time",
    params: params({ maxTokens: 12, temperature: 0.9, topK: 40, seed: 7 }),
    nonce,
  };
}

/** A router whose first choice is a worker answering with `script`, then an honest one. */
async function setup(
  script: (
    model: TextModel,
  ) => Promise<(job: TextJob, identity: Identity) => InferenceEvent[] | Promise<InferenceEvent[]>>,
) {
  const model = await loadTinyModel();
  const system = new ActorSystem({ name: "broken-worker" });
  const broken = await scriptedWorker(await script(model));
  const honest = await honestWorker(system, model);
  const workers = new Workers([broken.toWorker, honest.toWorker], [model.info]);
  const { port, recorder, settled } = await spawnRouter(system, workers);
  const close = async () => {
    await broken.close();
    await honest.close();
    await system.shutdown();
  };
  return { model, port, broken, honest, workers, recorder, settled, close };
}

/** The job's undisturbed run on the model: what every relay must deliver. */
async function reference(model: TextModel, job: TextJob): Promise<TokenChunk[]> {
  const chunks: TokenChunk[] = [];
  for await (const c of model.generate(model.tokenizer.encode(job.prompt), job.params)) {
    chunks.push(c);
  }
  return chunks;
}

async function readAll(stream: ReadableStream<StreamedToken>): Promise<StreamedToken[]> {
  const tokens: StreamedToken[] = [];
  for await (const t of stream) tokens.push(t);
  return tokens;
}

for (
  const [what, opening] of [
    ["a queued event before its start", () => ({ kind: "queued", position: 1 })],
    ["a start for another job", (_job: TextJob, model: TextModel) => ({
      kind: "start",
      jobId: "ab".repeat(32),
      model: model.info,
      promptTokens: 4,
    })],
    ["a start that claims a resume nobody asked for", (job: TextJob, model: TextModel) => ({
      kind: "start",
      jobId: jobId(job),
      model: model.info,
      promptTokens: 4,
      resumedFrom: 2,
    })],
  ] as [string, (job: TextJob, model: TextModel) => InferenceEvent][]
) {
  Deno.test(`a worker whose stream opens with ${what} is passed over for the next, and kept off the model`, async () => {
    const t = await setup((model) => Promise.resolve((job) => [opening(job, model)]));
    try {
      for (const nonce of ["first", "second"]) {
        const job = jobFor(t.model, nonce);
        const handle = await t.port.submit(job);
        const tokens = await readAll(handle.tokens);
        const expected = await reference(t.model, job);
        assert.deepEqual(tokens.map((x) => x.tokenId), expected.map((c) => c.tokenId));
        const summary = await handle.done;
        assert.equal(summary.finishReason, "length");
        assert.equal(
          toHex(parseReceipt(summary.receipt).worker),
          toHex(t.honest.identity.publicKey),
          "the honest worker signed it",
        );
      }
      // Asked once: the second job went straight to the honest worker.
      assert.equal(t.broken.submissions.length, 1);
      assert.ok(t.workers.avoided.has(toHex(t.broken.identity.publicKey)));
    } finally {
      await t.close();
    }
  });
}

Deno.test("a worker that repeats a token mid-stream is replaced: the job resumes on another from the last good token, identical to an undisturbed run, and the broken worker is kept off the model", async () => {
  const GOOD = 3;
  let expected: TokenChunk[] = [];
  const t = await setup(async (model) => {
    expected = await reference(model, jobFor(model, "mid"));
    // The job's true first tokens (as the honest model computes them), then the last again.
    const good = expected.slice(0, GOOD).map(({ index, tokenId, text }) => ({
      kind: "token" as const,
      index,
      tokenId,
      text,
    }));
    return (job) => [
      { kind: "start", jobId: jobId(job), model: model.info, promptTokens: 16 },
      ...good,
      good[GOOD - 1],
    ];
  });
  try {
    const handle = await t.port.submit(jobFor(t.model, "mid"));
    const tokens = await readAll(handle.tokens);
    assert.deepEqual(tokens.map((x) => x.index), expected.map((c) => c.index), "each once");
    assert.deepEqual(tokens.map((x) => x.tokenId), expected.map((c) => c.tokenId));
    const summary = await handle.done;
    assert.equal(summary.finishReason, "length");
    assert.equal(toHex(parseReceipt(summary.receipt).worker), toHex(t.honest.identity.publicKey));
    assert.deepEqual(t.honest.submissions.map((s) => s.resume?.length), [GOOD], "resumed at 3");
    assert.ok(t.workers.avoided.has(toHex(t.broken.identity.publicKey)));
  } finally {
    await t.close();
  }
});

Deno.test("a receipt with a job that ended in an error (a prover signs only a finished job) reaches neither the client nor the validator, and the worker is kept off the model", async () => {
  const TOKENS = 2;
  let expected: TokenChunk[] = [];
  const t = await setup(async (model) => {
    expected = await reference(model, jobFor(model, "error-end"));
    return async (job, identity) => {
      // A receipt the worker signed over the true first tokens, all the client gets.
      const chunks = expected.slice(0, TOKENS);
      const { receipt } = await proveJob(job, ReadableStream.from(chunks), identity);
      return [
        { kind: "start", jobId: jobId(job), model: model.info, promptTokens: 16 },
        ...chunks.map(({ index, tokenId, text }) => ({
          kind: "token" as const,
          index,
          tokenId,
          text,
        })),
        {
          kind: "end",
          summary: {
            jobId: jobId(job),
            finishReason: "error",
            usage: { promptTokens: 16, completionTokens: TOKENS },
            timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
            receipt,
            error: { code: "model_worker_failed", message: "the model worker died" },
          },
        },
      ];
    };
  });
  try {
    const handle = await t.port.submit(jobFor(t.model, "error-end"));
    // The worker's end with its own error fails it, as its error frame would (review s45): the
    // job resumes on the honest worker after the tokens the client got.
    const tokens = await readAll(handle.tokens);
    assert.deepEqual(tokens.map((x) => x.tokenId), expected.map((c) => c.tokenId));
    const summary = await handle.done;
    await t.settled();
    assert.equal(summary.finishReason, "length");
    const honestKey = toHex(t.honest.identity.publicKey);
    assert.equal(toHex(parseReceipt(summary.receipt).worker), honestKey, "not the broken one's");
    assert.deepEqual(
      t.recorder.told.map((m) => m.type === "receipt" && toHex(parseReceipt(m.receipt).worker)),
      [honestKey],
      "the broken worker's receipt never reached the validator",
    );
    assert.deepEqual(t.honest.submissions.map((s) => s.resume?.length), [TOKENS]);
    assert.ok(t.workers.avoided.has(toHex(t.broken.identity.publicKey)));
  } finally {
    await t.close();
  }
});
