/**
 * A worker whose stream breaks the inference protocol, or that turns a job away before its `start`:
 * the job goes on to the next worker and the broken one is kept off the model.
 */
import { signed } from "./_scripted_worker_fixture.ts";
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
import type { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { WORKER_FAILED } from "../../network/failover.ts";
import { INFO, MODEL } from "./_router_fixture.ts";
import {
  Honest,
  honestWorker,
  jobFor,
  linked,
  routerPort,
  type TestWorker,
  token,
  TOKENS,
} from "./_hostile_worker_fixture.ts";
import { VeriflowError } from "../../protocols/errors.ts";

// ---- broken worker --------------------------------------------------------------------------------
// A worker whose stream breaks the inference protocol (`inference_stream_invalid`) is handled like
// a lost one: before its first token the job goes to the next worker, after it the job resumes on
// another from the last good token, and the router keeps the broken worker off the model
// (`worker_refused_model`). Ending the client's job instead let one broken or malicious worker,
// chosen first for the room its hello claims, fail every job for its model.

interface TestWorkerBrokenWorker {
  identity: Identity;
  toWorker: Connection;
  submissions: SubmitBody[];
  close(): Promise<void>;
}

/** A worker over an in-memory link; `serve` installs its handler of `inference.submit`. */
async function linkedBrokenWorker(
  serve: (atWorker: Connection, identity: Identity, submissions: SubmitBody[]) => void,
): Promise<TestWorkerBrokenWorker> {
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
function honestWorkerBrokenWorker(
  system: ActorSystem,
  model: TextModel,
): Promise<TestWorkerBrokenWorker> {
  return linkedBrokenWorker((atWorker, identity, submissions) => {
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
): Promise<TestWorkerBrokenWorker> {
  return linkedBrokenWorker((atWorker, identity, submissions) => {
    atWorker.handle(SubmitMessage, async (body) => {
      submissions.push(body);
      const events = await script(body.job, identity);
      return signed(
        new ReadableStream<InferenceEvent>({
          start: (c) => events.forEach((e) => c.enqueue(e)),
        }),
        identity,
        body,
      );
    });
  });
}

/** The job `nonce` for `model`. */
function jobForBrokenWorker(model: TextModel, nonce: string): TextJob {
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
  const honest = await honestWorkerBrokenWorker(system, model);
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
        const job = jobForBrokenWorker(t.model, nonce);
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
    expected = await reference(model, jobForBrokenWorker(model, "mid"));
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
    const handle = await t.port.submit(jobForBrokenWorker(t.model, "mid"));
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
    expected = await reference(model, jobForBrokenWorker(model, "error-end"));
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
    const handle = await t.port.submit(jobForBrokenWorker(t.model, "error-end"));
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

// ---- a hostile worker picked first ----------------------------------------------------------------
// The router's failover: a hostile worker, picked first, against an honest one. Workers are
// in-memory connections; the hostile one writes raw `inference.event`s.

/** A worker that answers every job with the events `script` gives, then leaves it open. */
function scriptedWorkerRouting(script: (job: TextJob) => InferenceEvent[]): Promise<TestWorker> {
  return linked((atWorker, submissions, identity) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      const events = script(body.job);
      return Promise.resolve(
        signed(
          new ReadableStream<InferenceEvent>({
            start: (c) => events.forEach((e) => c.enqueue(e)),
          }),
          identity,
          body,
        ),
      );
    });
  });
}

async function setupRouting(script: (job: TextJob) => InferenceEvent[]) {
  const system = new ActorSystem({ name: "review-s45" });
  const hostile = await scriptedWorkerRouting(script);
  const honestPort = new Honest();
  const honest = await honestWorker(honestPort);
  const workers = new Workers([hostile.toWorker, honest.toWorker]);
  const { port, recorder, settled } = await spawnRouter(system, workers, { tokensPerEvent: 1 });
  const close = async () => {
    await hostile.close();
    await honest.close();
    await system.shutdown();
  };
  const run1 = (nonce: string) => run(port, jobFor(nonce));
  return { port, hostile, honest, honestPort, workers, recorder, settled, close, run1 };
}

/** Read a job to its end: the indices the client got, and how it ended. */
async function run(port: NetworkInferencePort, job: TextJob) {
  const handle = await port.submit(job);
  const got: number[] = [];
  let failed: string | undefined;
  try {
    for await (const t of handle.tokens) got.push(t.index);
  } catch (error) {
    failed = (error as { code?: string }).code ?? String(error);
  }
  const summary = await handle.done;
  return { got, failed, finishReason: summary.finishReason, code: summary.error?.code };
}

const WHOLE = Array.from({ length: TOKENS }, (_, i) => i);

function start(job: TextJob): InferenceEvent {
  return { kind: "start", jobId: jobId(job), model: INFO, promptTokens: 1 };
}

function wireToken(i: number): InferenceEvent {
  const { index, tokenId, text } = token(i);
  return { kind: "token", index, tokenId, text };
}

for (const finishReason of ["cancelled", "error"] as const) {
  Deno.test(`s45: a worker that ends a started job mid-stream with an end event (${finishReason}) instead of an error does not cut the client's job short: it resumes on the honest worker, and the worker is not asked first again`, async () => {
    const t = await setupRouting((job) => [
      start(job),
      wireToken(0),
      wireToken(1),
      {
        kind: "end",
        summary: {
          jobId: jobId(job),
          finishReason,
          usage: { promptTokens: 1, completionTokens: 2 },
          timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
        },
      },
    ]);
    try {
      assert.deepEqual(await t.run1("a"), {
        got: WHOLE,
        failed: undefined,
        finishReason: "length",
        code: undefined,
      });
      assert.deepEqual(t.honestPort.resumes, [2], "resumed after the 2 tokens delivered");
      await t.run1("b");
      assert.equal(t.hostile.submissions.length, 1, "the hostile worker was asked first again");
    } finally {
      await t.close();
    }
  });
}

Deno.test("s45: a worker whose start names another model than the job's is passed over for the next and kept off the model: the client is never told it ran another model", async () => {
  const t = await setupRouting((job) => [
    {
      kind: "start",
      jobId: jobId(job),
      model: { ...INFO, cid: "bafkothermodel" },
      promptTokens: 1,
    },
    ...WHOLE.map(wireToken),
  ]);
  try {
    const handle = await t.port.submit(jobFor("m"));
    assert.equal(handle.model.cid, MODEL, "the client was told another model");
    const got: number[] = [];
    for await (const x of handle.tokens) got.push(x.index);
    assert.deepEqual(got, WHOLE);
    assert.equal((await handle.done).finishReason, "length");
    assert.deepEqual(t.honestPort.resumes, [undefined], "the honest worker ran it from the start");
    assert.ok(t.workers.avoided.has(toHex(t.hostile.identity.publicKey)));
  } finally {
    await t.close();
  }
});

// ---- refusals before the start --------------------------------------------------------------------
// The router's choice of a job's first worker (`NetworkInferencePort`): what a worker says before
// its `start` when it turns a job away. A refusal "about the job itself" (bad parameters, a prompt
// too long for the model, ...) went to the client at once, and so did any code the router did not
// know as a refusal: one hostile worker, picked first for the room its hellos claim, turned away
// every client's job with an error of its choosing (a 400, or a 401 "invalid API key" to a client
// whose key was good), was never asked last nor kept off the model for it, and an honest worker
// with room stood by.
//
// Workers are in-memory connections (`_hostile_worker_fixture.ts`); the hostile one answers
// every `inference.submit` with an error frame of the code a test gives.

/** A worker that refuses every job before its start with an error frame of `code`. */
function refuser(code: string): Promise<TestWorker> {
  return linked((atWorker, submissions) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      throw new VeriflowError(code, `refused (${code})`);
    });
  });
}

/** A router whose network picks `first`, then an honest worker (or a second refuser). */
async function setupJobErrorClaim(first: TestWorker, second?: TestWorker) {
  const system = new ActorSystem({ name: "review-s52-claims" });
  const honestPort = new Honest();
  const other = second ?? await honestWorker(honestPort);
  const workers = new Workers([first.toWorker, other.toWorker]);
  const port = await routerPort(system, workers);
  /** Run one job to its end: how many tokens the client got, or the code it was refused with. */
  const run = async (nonce: string) => {
    let handle;
    try {
      handle = await port.submit(jobFor(nonce));
    } catch (error) {
      return { refused: (error as VeriflowError).code };
    }
    let got = 0;
    for await (const _ of handle.tokens) got++;
    return { got, finishReason: (await handle.done).finishReason };
  };
  const close = async () => {
    await first.close();
    await other.close();
    await system.shutdown();
  };
  return { run, honestPort, workers, close };
}

const RAN = { got: TOKENS, finishReason: "length" };

for (const code of ["context_length_exceeded", "invalid_generation_params", "wrong_model_kind"]) {
  Deno.test(`s52: a worker that calls every job bad before its start (${code}) does not end the client's job while another starts it; the claim proven false, it is kept off the model`, async () => {
    const hostile = await refuser(code);
    const t = await setupJobErrorClaim(hostile);
    try {
      assert.deepEqual(await t.run("a"), RAN, "the job ran on the honest worker");
      assert.equal(t.honestPort.resumes.length, 1);
      assert.ok(t.workers.avoided.has(hostile.key), "the false claimant was kept off the model");
      assert.deepEqual(await t.run("b"), RAN);
      assert.equal(hostile.submissions.length, 1, "the claimant was asked first again");
    } finally {
      await t.close();
    }
  });
}

for (const code of ["invalid_api_key", "no_such_code", "job_cancelled"]) {
  Deno.test(`s52: a worker's refusal before its start with a code that is neither about the job nor a known refusal (${code}) is its own: the job runs on the next worker, and it is kept off the model`, async () => {
    const hostile = await refuser(code);
    const t = await setupJobErrorClaim(hostile);
    try {
      assert.deepEqual(await t.run("a"), RAN, `the client was told ${code}`);
      assert.ok(t.workers.avoided.has(hostile.key), "the worker was kept off the model");
      assert.deepEqual(await t.run("b"), RAN);
      assert.equal(hostile.submissions.length, 1, "it was asked first again");
    } finally {
      await t.close();
    }
  });
}

Deno.test("s52: a job every worker calls bad (context_length_exceeded) is refused with that code, and no worker is kept off the model for it", async () => {
  const a = await refuser("context_length_exceeded");
  const b = await refuser("context_length_exceeded");
  const t = await setupJobErrorClaim(a, b);
  try {
    assert.deepEqual(await t.run("a"), { refused: "context_length_exceeded" });
    assert.equal(a.submissions.length + b.submissions.length, 2, "each asked once");
    assert.deepEqual([...t.workers.avoided], [], "a true claim costs its worker nothing");
  } finally {
    await t.close();
  }
});

Deno.test("s71: a job every worker refuses before its start with a code of its own choice (invalid_api_key) is refused worker_failed, not that code: the client's good key is not called bad", async () => {
  const a = await refuser("invalid_api_key");
  const b = await refuser("invalid_api_key");
  const t = await setupJobErrorClaim(a, b);
  try {
    assert.deepEqual(await t.run("a"), { refused: WORKER_FAILED });
    assert.equal(a.submissions.length + b.submissions.length, 2, "each asked once");
  } finally {
    await t.close();
  }
});
