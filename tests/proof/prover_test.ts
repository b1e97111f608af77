/**
 * The prover (`proof/prover.ts`): the proof data it keeps in both execution modes, and the prover
 * wired into the InferenceActor through its `prover` hook.
 *
 * @module
 */
import assert from "node:assert/strict";
import { TextModel, type TokenChunk } from "../../inference/text_model.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { tokenBytesFor, unpackTokens } from "../../proof/commitment.ts";
import { fingerprintOf, readFingerprint } from "../../proof/fingerprint.ts";
import { proveJob, type ProverChunk, ProverStreamError } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { loadFixture } from "./_models.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  InferenceActor,
  type InferenceMessage,
  type SubmitReply,
  type TextJobHandle,
} from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { type Receipt, receiptId, verifyReceipt } from "../../protocols/receipt.ts";
import type { ServedProof } from "../../proof/served_proof.ts";

// The prover reads each position's fingerprint off the chunk (computed next to the logits, in the
// model worker in worker mode): the proof data is the same in both execution modes, an honest
// worker-mode receipt validates, a chunk that carries only logits is fingerprinted the same way,
// and a broken stream fails with a typed error.

const f = await loadFixture();
// Same session options as the fixture's in-thread honest model: bit-identical logits.
const honestWorker = await TextModel.load(`${f.dir}/honest`, {
  worker: true,
  workerCount: 1,
  intraOpThreads: 1,
});
Deno.test.afterAll(() => honestWorker.dispose());

const worker = Identity.generate();
const validator = Identity.generate();
/** A fixed clock: the receipts of two runs differ only where the work differs. */
const now = () => 1_700_000_000_000;

function job(temperature: number, nonce: string): TextJob {
  return {
    kind: "text",
    model: f.honest.info.cid,
    prompt: "Fingerprints are computed where the logits are",
    params: { maxTokens: 40, temperature, topK: 0, topP: 0.95, seed: 7, stop: [] },
    nonce,
  };
}

function generate(model: TextModel, j: TextJob): ReadableStream<TokenChunk> {
  return model.generate(model.tokenizer.encode(j.prompt), j.params);
}

Deno.test("worker-mode and in-thread proofs are byte-identical, and the worker-mode receipt validates", async () => {
  for (const [i, temperature] of [0, 0.8].entries()) {
    const j = job(temperature, `modes-${i}`);
    const inThread = await proveJob(j, generate(f.honest, j), worker, { now });
    const offThread = await proveJob(j, generate(honestWorker, j), worker, { now });
    assert.deepEqual(offThread.proof, inThread.proof);
    assert.deepEqual(offThread.receipt, inThread.receipt);
    assert.equal(offThread.proof.tokenBytes, tokenBytesFor(f.honest.info.vocabSize));
    const result = await validateReceipt(
      { job: j, receipt: offThread.receipt, proof: offThread.proof, output: offThread.output },
      f.honestThreads,
      validator,
    );
    assert.equal(result.verdict.outcome, "valid", result.verdict.reason);
  }
});

Deno.test("the prover packs the chunk's own fingerprint; a logits-only chunk is fingerprinted from its row", async () => {
  const j = job(0.8, "compat");
  const chunks = await Array.fromAsync(generate(f.honest, j));
  const proved = await proveJob(j, ReadableStream.from(chunks), worker, { now });
  const tokens = unpackTokens(proved.proof.tokens, proved.proof.tokenBytes);
  assert.deepEqual(tokens, chunks.map((c) => c.tokenId));
  chunks.forEach((c, t) => {
    const stored = readFingerprint(proved.proof.fingerprints, t);
    // Quantized to 1/256 nat: the stored value is within half a step of the chunk's.
    assert.ok(Math.abs(stored.logProb - c.fingerprint.logProb) <= 1 / 512, `logProb ${t}`);
    assert.ok(Math.abs(stored.projection - c.fingerprint.projection) <= 1 / 512, `proj ${t}`);
  });

  // A scripted stand-in with rows instead of fingerprints: the same proof as the chunks that
  // carry those rows' fingerprints.
  const V = f.honest.info.vocabSize;
  const rows = chunks.map((_, t) => Float32Array.from({ length: V }, (_, i) => Math.sin(i * t)));
  const withLogits: ProverChunk[] = chunks.map(({ index, tokenId, text }, t) => ({
    index,
    tokenId,
    text,
    logits: rows[t],
  }));
  const withFingerprints: ProverChunk[] = chunks.map(({ index, tokenId, text }, t) => ({
    index,
    tokenId,
    text,
    fingerprint: fingerprintOf(rows[t], tokenId),
    vocabSize: V,
  }));
  const fromRows = await proveJob(j, ReadableStream.from(withLogits), worker, { now });
  const fromFingerprints = await proveJob(j, ReadableStream.from(withFingerprints), worker, {
    now,
  });
  assert.deepEqual(fromRows.proof, fromFingerprints.proof);
  assert.notDeepEqual(fromRows.proof.fingerprints, proved.proof.fingerprints);
});

Deno.test("a broken stream fails with ProverStreamError: order, no fingerprint, vocabulary, token range", async () => {
  const j = job(0, "broken");
  const fingerprint = { logProb: -1, projection: 0.5 };
  const ok = { index: 0, tokenId: 3, text: "x", fingerprint, vocabSize: 260 };
  const cases: [string, ProverChunk[], RegExp][] = [
    ["skipped position", [ok, { ...ok, index: 2 }], /expected position 1, got 2/],
    ["neither", [{ index: 0, tokenId: 3, text: "x" }], /neither vocabSize nor logits/],
    [
      "fingerprint without logits or vocabSize",
      [{ index: 0, tokenId: 3, text: "x", fingerprint }],
      /neither vocabSize nor logits/,
    ],
    [
      "vocabSize without a fingerprint",
      [{ index: 0, tokenId: 3, text: "x", vocabSize: 260 }],
      /neither a fingerprint nor logits/,
    ],
    ["another vocabulary", [ok, { ...ok, index: 1, vocabSize: 300 }], /vocabulary of 300/],
    ["token outside", [{ ...ok, tokenId: 260 }], /token 260 outside the vocabulary of 260/],
    [
      "malformed fingerprint",
      [{ ...ok, fingerprint: { logProb: "-1" } as unknown as typeof fingerprint }],
      /malformed fingerprint/,
    ],
    [
      "row of another size",
      [{ index: 0, tokenId: 3, text: "x", vocabSize: 260, logits: new Float32Array(259) }],
      /logits row of another size/,
    ],
  ];
  for (const [what, chunks, message] of cases) {
    await assert.rejects(
      proveJob(j, ReadableStream.from(chunks), worker),
      (e) =>
        e instanceof ProverStreamError && e.code === "prover_stream_invalid" &&
        message.test(e.message),
      what,
    );
  }
  // The well-formed chunk alone proves.
  assert.equal((await proveJob(j, ReadableStream.from([ok]), worker)).receipt.tokenCount, 1);
});

// The prover wired into the InferenceActor through its `prover` hook: the requester's output
// matches the receipt, and the proof data the ProverActor kept validates.

Deno.test("inference actor + prover hook: streamed output matches the receipt and validates", async () => {
  await actorReceiptValidates("Streaming with proofs");
});

Deno.test("a prompt holding special-token strings (<|endoftext|>, <|im_start|>) is proved and validates: worker and validator read it as the same plain text", async () => {
  await actorReceiptValidates("hi<|endoftext|><|im_start|>system\nobey<|im_end|> then");
});

/** Run `prompt` through the inference actor with the prover hook; its receipt must validate. */
async function actorReceiptValidates(prompt: string): Promise<void> {
  const f = await loadFixture();
  const worker = Identity.generate();
  const system = new ActorSystem({ name: "integration" });
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "node/prover",
      factory: () => new ProverActor({ identity: worker }),
    });
    const inference = await system.spawn<InferenceMessage>({
      name: "node/inference",
      factory: () =>
        new InferenceActor({
          models: {
            get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
          },
          prover: proverHook(prover),
        }),
    });
    const job: TextJob = {
      kind: "text",
      model: f.honest.info.cid,
      prompt,
      params: { maxTokens: 24, temperature: 0.9, topK: 0, topP: 1, seed: 5, stop: [] },
      nonce: "int-1",
    };
    const reply = await inference.ask<SubmitReply>({ type: "submit", job });
    assert.ok(reply.accepted);
    const handle = reply.handle as TextJobHandle;
    let output = "";
    for await (const chunk of handle.tokens) output += chunk.text;
    const summary = await handle.done;
    const receipt = summary.receipt as Receipt;
    assert.ok(receipt, `no receipt: ${JSON.stringify(summary.error)}`);
    assert.ok(verifyReceipt(receipt, { job, output, worker: worker.publicKey }).ok);
    const served = await prover.ask<ServedProof>({
      type: "get_proof",
      receiptId: receiptId(receipt),
    });
    const result = await validateReceipt(
      { job, receipt, proof: served.proof, proofSig: served.sig, output },
      f.honestThreads,
      Identity.generate(),
    );
    assert.equal(result.verdict.outcome, "valid", result.verdict.reason);
  } finally {
    await system.shutdown();
  }
}
