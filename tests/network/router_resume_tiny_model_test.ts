/**
 * A resumed stream is checked, not believed, on the real tiny model (`network/failover.ts`,
 * `inference/resumed_generation.ts`): the worker that takes a job over replays the tokens the
 * client already has through its own model, under the job's seeded sampling rule, so it finds
 * the first one a lost worker got wrong; and a prefix a client hands the router itself
 * (`SubmitOptions.resume`, `inference.submit { resume }`) is checked the same way, by the
 * worker that runs it, before any token is streamed or signed.
 *
 * Workers are InferenceActors with a prover, served over in-memory connections; the router's
 * NetworkActor and ValidatorActor are stand-ins that record whom it keeps off the model and
 * what reaches the ledger.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  type GenerativeModel,
  InferenceActor,
  type InferenceMessage,
} from "../../actors/inference_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import type { GenerateOptions, TextModel, TokenChunk } from "../../inference/text_model.ts";
import type { InferenceHandle } from "../../inference/inference_port.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import type { GenerationParams, TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { parseReceipt } from "../../protocols/receipt.ts";
import { proveJob } from "../../proof/prover.ts";
import { loadTinyModel, params, StaticModels } from "../server/_fixtures.ts";
import { spawnRouter, Workers } from "./_router_doubles.ts";

/** Tokens of every job here: seeded sampling, so each position is the rule's, not argmax's. */
const JOB_PARAMS = params({ maxTokens: 16, temperature: 0.9, topK: 40, seed: 5 });

/** A dead link's peer never ends its side: do not wait the default 2 s for it on close. */
const closeGraceMs = 50;

/** One worker: an InferenceActor with a prover running `model`, served on a link to the router. */
async function startWorker(system: ActorSystem, name: string, model: GenerativeModel) {
  const identity = Identity.generate();
  const models = new StaticModels([model]);
  const prover = async (job: TextJob, _id: string, chunks: ReadableStream<TokenChunk>) =>
    (await proveJob(job, chunks, identity)).receipt;
  const inference = await system.spawn<InferenceMessage>({
    name: `${name}/inference`,
    factory: () => new InferenceActor({ models, prover }),
  });
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols, closeGraceMs }),
    Connection.open(b, { identity, protocols, closeGraceMs }),
  ]);
  serveInference(atWorker, new LocalInferencePort({ inference, models }));
  return {
    key: toHex(identity.publicKey),
    toWorker,
    /** The worker dies: its connection closes under whatever it was streaming. */
    die: () => atWorker.close(),
    close: async () => {
      await toWorker.close();
      await atWorker.close();
    },
  };
}

/** A router over workers running `models` (best first) on the tiny model's CID. */
async function routerOver(tiny: TextModel, models: GenerativeModel[]) {
  const system = new ActorSystem({ name: "router-resume-tiny" });
  const workers: Awaited<ReturnType<typeof startWorker>>[] = [];
  for (const [i, model] of models.entries()) {
    workers.push(await startWorker(system, `worker${i}`, model));
  }
  const net = new Workers(workers.map((w) => w.toWorker));
  const { port, recorder, settled } = await spawnRouter(system, net);
  const job = (nonce: string): TextJob => ({
    kind: "text",
    model: tiny.info.cid,
    prompt: "Once upon a time",
    params: JOB_PARAMS,
    nonce,
  });
  const close = async () => {
    for (const w of workers) await w.close();
    await system.shutdown();
  };
  return { port, job, workers, net, recorder, settled, close };
}

/** The undisturbed run of `job` on the model itself. */
async function undisturbed(model: TextModel, job: TextJob) {
  const chunks: TokenChunk[] = [];
  for await (const c of model.generate(model.tokenizer.encode(job.prompt), job.params)) {
    chunks.push(c);
  }
  return chunks.map((c) => c.tokenId);
}

/** The tiny model, except that the token it streams at `position` is `id` (its text "?"). */
function wrongAt(tiny: TextModel, position: number, id: number): GenerativeModel {
  return {
    info: tiny.info,
    tokenizer: tiny.tokenizer,
    forward: (tokens: readonly number[], o?: { signal?: AbortSignal }) => tiny.forward(tokens, o),
    generate: (ids: number[], p: GenerationParams, o?: GenerateOptions) =>
      tiny.generate(ids, p, o).pipeThrough(
        new TransformStream<TokenChunk, TokenChunk>({
          transform: (chunk, out) =>
            out.enqueue(chunk.index === position ? { ...chunk, tokenId: id, text: "?" } : chunk),
        }),
      ),
  } as GenerativeModel;
}

/** A token id other than `id` that is in the vocabulary and is no end token. */
function another(tiny: TextModel, id: number): number {
  const ends = new Set(tiny.info.eosTokenIds ?? [tiny.info.eosTokenId]);
  for (let candidate = (id + 1) % tiny.info.vocabSize;; candidate++) {
    if (!ends.has(candidate)) return candidate;
  }
}

/** Read the job's tokens; `after(n)` runs once the client has read `n` of them. */
async function read(handle: InferenceHandle, after: (n: number) => unknown = () => {}) {
  const ids: number[] = [];
  let failed: string | undefined;
  try {
    for await (const t of handle.tokens) {
      ids.push(t.tokenId);
      await after(ids.length);
    }
  } catch (error) {
    failed = (error as { code?: string }).code ?? String(error);
  }
  return { ids, failed, summary: await handle.done };
}

/** Where the lying worker's output goes wrong, and how many tokens it streams before it dies. */
const WRONG_AT = 3;
const DIES_AFTER = 6;

// Failed before the fix: the stream ended `connection_closed` ("the job could not resume: … could
// not reproduce the delivered tokens (resume_mismatch)"), naming neither the wrong token nor that
// the text the client holds is not the model's.
Deno.test("router resume (tiny model): a lost worker's wrong token is found by the worker that takes the job over; the client's stream ends delivered_tokens_diverged from that token on, and nothing is paid", async () => {
  const tiny = await loadTinyModel();
  const probe = await routerOver(tiny, []);
  const reference = await undisturbed(tiny, probe.job("diverged"));
  await probe.close();
  const wrong = another(tiny, reference[WRONG_AT]);
  const t = await routerOver(tiny, [wrongAt(tiny, WRONG_AT, wrong), tiny]);
  try {
    const handle = await t.port.submit(t.job("diverged"));
    const got = await read(handle, (n) => n === DIES_AFTER && t.workers[0].die());
    // What the lying worker sent before its connection closed under the stream (a few more may
    // have crossed with the last one read).
    assert.ok(got.ids.length >= DIES_AFTER && got.ids.length < JOB_PARAMS.maxTokens);
    assert.equal(got.ids[WRONG_AT], wrong);
    assert.equal(got.failed, "delivered_tokens_diverged");
    assert.equal(got.summary.finishReason, "error");
    assert.equal(got.summary.error?.code, "delivered_tokens_diverged");
    assert.match(got.summary.error?.message ?? "", new RegExp(`from token ${WRONG_AT} on`));
    assert.match(got.summary.error?.message ?? "", new RegExp(t.workers[0].key.slice(0, 16)));
    assert.equal(got.summary.receipt, undefined);
    await t.settled();
    // The lost worker signed nothing for a job it never finished: no ledger hears of the job.
    assert.deepEqual(t.recorder.told, [], "a receipt reached the validator");
    assert.equal(t.net.avoided.has(t.workers[1].key), false, "the honest checker was blamed");
  } finally {
    await t.close();
  }
});

// Held before this change too (the worker that runs a resumed job replays its prefix): pinned here
// end to end, over the wire, on the real model.
Deno.test("router resume (tiny model): a prefix the client hands the router that the model does not give is refused before any token, with resume_mismatch naming its first wrong token; the true prefix resumes to the undisturbed run's end, with one receipt over all of it", async () => {
  const tiny = await loadTinyModel();
  const t = await routerOver(tiny, [tiny, tiny]);
  try {
    const reference = await undisturbed(tiny, t.job("forged"));
    const forged = [...reference.slice(0, 5)];
    forged[2] = another(tiny, forged[2]);
    const refused = await read(await t.port.submit(t.job("forged"), { resume: forged }));
    assert.deepEqual(refused.ids, [], "tokens were streamed after a forged prefix");
    assert.equal(refused.failed, "resume_mismatch");
    assert.match(refused.summary.error?.message ?? "", /prefix token 2 is/);
    assert.equal(refused.summary.receipt, undefined);

    const resumed = await read(
      await t.port.submit(t.job("true"), { resume: reference.slice(0, 5) }),
    );
    assert.equal(resumed.failed, undefined);
    assert.deepEqual(resumed.ids, reference.slice(5));
    const receipt = parseReceipt(resumed.summary.receipt);
    assert.equal(receipt.tokenCount, JOB_PARAMS.maxTokens);
    await t.settled();
    // Only the true prefix's job reaches the ledger; the workers that refused the forged one
    // are not blamed (no worker streamed on from it).
    assert.equal(t.recorder.told.filter((m) => m.type === "receipt").length, 1);
    assert.equal(t.net.avoided.size, 0);
  } finally {
    await t.close();
  }
});
