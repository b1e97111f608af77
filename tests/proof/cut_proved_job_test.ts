/**
 * A finished job's receipt cut to the first k positions (`cutProvedJob`, `proof/prover.ts`) and
 * the ProverActor's `cut` that signs it (review s80 bill F1): the cut is the very claim the prover
 * signs when the requester's cancel after k comes before the job's end (the same receipt id: only
 * timings differ), it refuses a count that is no prefix, and the actor signs one per job, keeps
 * both proofs, and refuses a cut within a resumed job's prefix or of a job it never finished for
 * another node.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  CutRefusedError,
  type ProveHandle,
  ProverActor,
  type ProverMessage,
} from "../../actors/prover_actor.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId, verifyReceipt } from "../../protocols/receipt.ts";
import type { ServedProof } from "../../proof/served_proof.ts";
import { cutProvedJob, type ProvedJob, proveJob, ProverStreamError } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { loadFixture } from "./_models.ts";

const f = await loadFixture();
const worker = Identity.generate();
const requester = Identity.generate();
/** A fixed clock: two runs' receipts differ only where the work differs. */
const now = () => 1_700_000_000_000;
const N = 12;

function job(nonce: string): TextJob {
  return {
    kind: "text",
    model: f.honest.info.cid,
    prompt: "Cut the receipt where the client stopped",
    params: { maxTokens: N, temperature: 0.7, topK: 0, topP: 1, seed: 3, stop: [] },
    nonce,
    requester: toHex(requester.publicKey),
  };
}

/** The job's chunks as the honest model makes them, with the branch's extra fields. */
async function chunksOf(j: TextJob): Promise<TokenChunk[]> {
  const out: TokenChunk[] = [];
  const prompt = f.honest.tokenizer.encode(j.prompt);
  for await (const chunk of f.honest.generate(prompt, j.params)) out.push(chunk);
  return out;
}

function branch(
  chunks: TokenChunk[],
  extra: Record<string, unknown>,
): ReadableStream<TokenChunk> {
  let i = 0;
  const stream = new ReadableStream<TokenChunk>({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(chunks[i++]);
      else controller.close();
    },
  });
  return Object.assign(stream, extra);
}

Deno.test("bill F1: a finished job's receipt cut to k is the claim the prover signs for a cancel after k (same receipt id), and validates re-run alone", async () => {
  const j = job("cut-same");
  const chunks = await chunksOf(j);
  assert.equal(chunks.length, N);
  const promptTokens = f.honest.tokenizer.encode(j.prompt).length;
  const finished = await proveJob(j, branch(chunks, { promptTokens }), worker, { now });
  for (const k of [1, 5, N - 1]) {
    const cut = cutProvedJob(finished, k, worker);
    const cancelled = await proveJob(
      j,
      branch(chunks, { promptTokens, cancelledEnd: () => ({ reason: "cancelled", tokens: k }) }),
      worker,
      { now },
    );
    assert.equal(receiptId(cut.receipt), receiptId(cancelled.receipt), `cut at ${k}`);
    assert.equal(cut.output, cancelled.output);
    assert.deepEqual(cut.proof, cancelled.proof);
    assert.ok(
      verifyReceipt(cut.receipt, { job: j, worker: worker.publicKey, output: cut.output }).ok,
    );
    const { verdict } = await validateReceipt(
      { job: j, receipt: cut.receipt, proof: cut.proof },
      f.honest,
      Identity.generate(),
    );
    assert.equal(verdict.outcome, "valid", verdict.reason);
  }
  // No prefix: the whole job, none of it, or a receipt that is itself cut.
  for (const k of [0, N, N + 1, 1.5]) {
    assert.throws(() => cutProvedJob(finished, k, worker), ProverStreamError);
  }
  const once = cutProvedJob(finished, 4, worker);
  assert.throws(() => cutProvedJob(once, 2, worker), ProverStreamError);
  const { outputEnds: _ends, ...without } = finished;
  assert.throws(() => cutProvedJob(without as ProvedJob, 4, worker), ProverStreamError);
});

Deno.test("bill F1: the ProverActor cuts a finished job's receipt once (asked again, the same one), keeps both proofs, and refuses a cut within a resumed prefix or of a job it keeps none for", async () => {
  const system = new ActorSystem({ name: "cut-prover" });
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity: worker, now }),
    });
    const prove = async (j: TextJob, extra: Record<string, unknown>) => {
      const chunks = branch(await chunksOf(j), extra);
      const resumedFrom = extra.resumedFrom as number | undefined;
      const handle = await prover.ask<ProveHandle>({
        type: "prove",
        job: j,
        jobId: jobId(j),
        chunks,
        resumedFrom,
      });
      return await handle.receipt;
    };
    const cut = async (id: string, tokens: number) =>
      await (await prover.ask<ProveHandle>({ type: "cut", jobId: id, tokens })).receipt;
    const proof = (r: Receipt) =>
      prover.ask<ServedProof | undefined>({ type: "get_proof", receiptId: receiptId(r) });

    const j = job("cut-actor");
    const finished = await prove(j, {});
    const first = await cut(finished.jobId, 5);
    assert.equal(first.end, "cancelled");
    assert.equal(first.tokenCount, 5);
    // Asked again, with any count: the one it signed (two would be equivocation).
    assert.equal(receiptId(await cut(finished.jobId, 7)), receiptId(first));
    assert.ok((await proof(first)) !== undefined, "no proof data for the cut receipt");
    assert.ok((await proof(finished)) !== undefined, "the finished receipt's proof was dropped");

    // A resumed job: its first 6 positions are another worker's, never cut over.
    const resumed = await prove(job("cut-resumed"), { resumedFrom: 6 });
    await assert.rejects(cut(resumed.jobId, 6), CutRefusedError);
    assert.equal((await cut(resumed.jobId, 7)).tokenCount, 7);

    // A job with no requester (this node's own): nothing is kept to cut.
    const own = await prove({ ...job("cut-own"), requester: undefined }, {});
    await assert.rejects(cut(own.jobId, 3), CutRefusedError);
    await assert.rejects(cut("ab".repeat(32), 3), CutRefusedError);
  } finally {
    await system.shutdown();
  }
});
