/**
 * A text job that names its input by CID (`protocols/job_input.ts`): how the worker, the prover,
 * the validator and the fraud checker handle the input, and each way it can be wrong.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import type { TextModel } from "../../inference/text_model.ts";
import { cidOf } from "../../protocols/cid.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { signFraudProof } from "../../protocols/fraud_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  jobBytes,
  jobId,
  MAX_NETWORK_JOB_BYTES,
  type TextJob,
  textJobSchema,
} from "../../protocols/job.ts";
import {
  isJobInputCid,
  type JobInputReader,
  jobInputRoom,
  jobPromptText,
  MAX_JOB_INPUT_BYTES,
} from "../../protocols/job_input.ts";
import { maxPromptTokens } from "../../inference/remote_port.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import { loadFixture } from "./_models.ts";
import { checkServed } from "../../actors/withheld_check.ts";
import { proveJob, type ProverChunk } from "../../proof/prover.ts";

// A text job that names its input by CID (`protocols/job_input.ts`): the worker reads the bytes
// from storage and the model reads their text before the prompt; the prover keeps them with the
// proof data, so a validator re-runs the job without finding the file, and a fraud proof carries
// them to every node. Each way the input can be wrong has its refusal or its consequence.

const encoder = new TextEncoder();
const STORED = encoder.encode("The river rose in the night, and by morning the town was ");
const INPUT = cidOf(STORED);
const PARAMS = { maxTokens: 16, temperature: 0.8, topK: 0, topP: 1, seed: 11, stop: [] };

function inputJob(model: string, nonce = "in-1"): TextJob {
  return { kind: "text", model, prompt: "Then ", params: PARAMS, nonce, input: INPUT };
}

/** A storage that holds `blocks` (by CID) and nothing else. */
function storageOf(blocks: Record<string, Uint8Array>): JobInputReader {
  return (cid) =>
    blocks[cid] === undefined
      ? Promise.reject(new ChunkNotFoundError(cid, "any storage peer"))
      : Promise.resolve(blocks[cid]);
}

/** A worker (InferenceActor with its prover) running `model` as `served`, with `read` storage. */
async function worker(
  system: ActorSystem,
  model: TextModel,
  served: string,
  read?: JobInputReader,
) {
  const identity = Identity.generate();
  const prover = await system.spawn<ProverMessage>({
    name: `${system.name}/prover`,
    factory: () => new ProverActor({ identity }),
  });
  const inference = await system.spawn<InferenceMessage>({
    name: `${system.name}/inference`,
    factory: () =>
      new InferenceActor({
        models: { get: (cid) => Promise.resolve(cid === served ? model : undefined) },
        prover: proverHook(prover),
      }),
  });
  const port = new LocalInferencePort({
    inference,
    models: { list: () => Promise.resolve([model.info]) },
    readInput: read,
  });
  return { identity, prover, port };
}

/** Run `job` on `port` to its end: its text and receipt. */
async function run(port: LocalInferencePort, job: TextJob) {
  const handle = await port.submit(job);
  let output = "";
  for await (const token of handle.tokens) output += token.text;
  const summary = await handle.done;
  assert.ok(summary.receipt, `no receipt: ${JSON.stringify(summary.error)}`);
  return { output, receipt: summary.receipt as Receipt };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof VeriflowError, String(error));
    return error.code;
  }
  return "resolved";
}

Deno.test("jobPromptText: the input's text then the prompt, checked against the CID; without an input, the prompt", () => {
  const job = inputJob("m");
  assert.equal(jobPromptText(job, STORED), new TextDecoder().decode(STORED) + "Then ");
  const { input: _input, ...plain } = job;
  assert.equal(jobPromptText(plain), "Then ");
  const refused = (bytes?: Uint8Array, named = job) => {
    try {
      jobPromptText(named, bytes);
      return "accepted";
    } catch (e) {
      return (e as VeriflowError).code;
    }
  };
  assert.equal(refused(undefined), "input_required");
  assert.equal(refused(encoder.encode("another text")), "input_mismatch");
  const binary = new Uint8Array([0x66, 0xff, 0xfe]);
  assert.equal(refused(binary, { ...job, input: cidOf(binary) }), "input_not_text");
  const big = new Uint8Array(MAX_JOB_INPUT_BYTES + 1).fill(0x61);
  assert.equal(refused(big, { ...job, input: cidOf(big) }), "input_too_large");
});

Deno.test("a job's input is a raw CID (a public file of one chunk); absent, the job and its id are what they always were", () => {
  assert.ok(isJobInputCid(INPUT));
  const dagPb = "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y";
  assert.ok(!isJobInputCid(dagPb), "a dag-pb file of many chunks is not one block");
  assert.ok(!textJobSchema.safeParse({ ...inputJob("m"), input: dagPb }).success);
  assert.ok(!textJobSchema.safeParse({ ...inputJob("m"), input: "QmNotACid" }).success);
  const { input: _input, ...plain } = inputJob("m");
  assert.deepEqual(textJobSchema.parse(plain), plain, "no input key added");
  assert.notEqual(jobId(inputJob("m")), jobId(plain), "the id commits to the input");
});

Deno.test("a job with an input streams what the same text inline streams; its receipt validates on the bytes the proof data carries", async () => {
  const f = await loadFixture();
  const cid = f.honest.info.cid;
  const system = new ActorSystem({ name: "input-honest" });
  try {
    const w = await worker(system, f.honest, cid, storageOf({ [INPUT]: STORED }));
    const job = inputJob(cid);
    const { output, receipt } = await run(w.port, job);
    const inline: TextJob = {
      kind: "text",
      model: cid,
      prompt: new TextDecoder().decode(STORED) + "Then ",
      params: PARAMS,
      nonce: "inline-1",
    };
    assert.equal(output, (await run(w.port, inline)).output, "the model read the input's text");
    const served = await w.prover.ask<ServedProof>({
      type: "get_proof",
      receiptId: receiptId(receipt),
    });
    assert.deepEqual(served.proof.input, STORED, "the proof data keeps the input");
    const validator = Identity.generate();
    const valid = await validateReceipt(
      { job, receipt, proof: served.proof, proofSig: served.sig, output },
      f.honestThreads,
      validator,
    );
    assert.equal(valid.verdict.outcome, "valid", valid.verdict.reason);
    // Served without its input, the proof data is not whole: the worker's fault, as withheld data.
    const { input: _input, ...bare } = served.proof;
    const withheld = await validateReceipt(
      {
        job,
        receipt,
        proof: bare,
        proofSig: signServedProof(receiptId(receipt), bare, w.identity).sig,
        output,
      },
      f.honestThreads,
      validator,
    );
    assert.deepEqual(
      [withheld.verdict.outcome, withheld.verdict.reason],
      ["invalid", "proof_unavailable"],
    );
  } finally {
    await system.shutdown();
  }
});

Deno.test("a worker that cheats on a job with an input is convicted by a fraud proof carrying the input, which every node checks; stripped of it, the proof does not hold", async () => {
  const f = await loadFixture();
  const cid = f.honest.info.cid;
  const system = new ActorSystem({ name: "input-cheat" });
  try {
    // The worker serves another model's output under the honest model's CID.
    const w = await worker(system, f.otherSeed, cid, storageOf({ [INPUT]: STORED }));
    const job = inputJob(cid, "cheat-1");
    const { output, receipt } = await run(w.port, job);
    const served = await w.prover.ask<ServedProof>({
      type: "get_proof",
      receiptId: receiptId(receipt),
    });
    const validator = Identity.generate();
    const result = await validateReceipt(
      { job, receipt, proof: served.proof, proofSig: served.sig, output },
      f.honestThreads,
      validator,
    );
    assert.equal(result.verdict.outcome, "fraud", result.verdict.reason);
    const proof = result.fraudProof!;
    assert.deepEqual(proof.input, STORED, "the fraud proof carries the input");
    const checked = await checkFraudProof(proof, f.honest);
    assert.ok(checked.confirmed, checked.reason);
    const { input: _input, sig: _sig, validator: _key, ...unsigned } = proof;
    const stripped = await checkFraudProof(signFraudProof(unsigned, validator), f.honest);
    assert.deepEqual([stripped.confirmed, stripped.reason], [false, "input_mismatch"]);
  } finally {
    await system.shutdown();
  }
});

Deno.test("a worker refuses a job whose input it cannot use: no storage, stored nowhere, not the named block, not text", async () => {
  const f = await loadFixture();
  const cid = f.honest.info.cid;
  const system = new ActorSystem({ name: "input-refusals" });
  try {
    const job = inputJob(cid);
    const noStorage = await worker(system, f.honest, cid);
    assert.equal(await codeOf(noStorage.port.submit(job)), "input_unavailable");
    const binary = new Uint8Array([0xc3, 0x28, 0x41]);
    const second = new ActorSystem({ name: "input-refusals-2" });
    try {
      const w = await worker(second, f.honest, cid, storageOf({ [cidOf(binary)]: binary }));
      assert.equal(await codeOf(w.port.submit(job)), "input_not_found");
      assert.equal(
        await codeOf(w.port.submit({ ...job, input: cidOf(binary) })),
        "input_not_text",
      );
      // A store that answers other bytes than the CID names (a bug, or a lying peer behind it).
      const liar = new ActorSystem({ name: "input-refusals-3" });
      try {
        const l = await worker(liar, f.honest, cid, () => Promise.resolve(binary));
        assert.equal(await codeOf(l.port.submit(job)), "input_mismatch");
      } finally {
        await liar.shutdown();
      }
    } finally {
      await second.shutdown();
    }
  } finally {
    await system.shutdown();
  }
});

Deno.test("a router believes a worker's prompt-token count up to the input's room more for a job with an input: it reads the input's text too", () => {
  const plain: TextJob = { kind: "text", model: "m", prompt: "Then ", params: PARAMS, nonce: "n" };
  assert.equal(maxPromptTokens(plain), 6);
  const withInput = inputJob("m");
  // The stored text alone is longer than the prompt: a count of both is the worker's truth.
  assert.ok(maxPromptTokens(withInput) >= STORED.length + "Then ".length);
  assert.equal(maxPromptTokens(withInput), 6 + jobInputRoom(withInput));
});

// The checks a job's input needs hold wherever its proof data is judged — the job and its input
// within one network job's bytes (so any fraud proof about it reaches every ledger), and proof data
// served without the input is withheld data for a validator that lacks the model too (the input is
// checked by its hash, no model needed).

const CHECKED_PARAMS = { maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 1, stop: [] };

/** A job whose bytes and input's bytes together pass `MAX_NETWORK_JOB_BYTES`, each within its own bound. */
function oversizeJob(model: string): { job: TextJob; input: Uint8Array } {
  const input = new Uint8Array(200 * 1024).fill(0x61); // "aaa…": text, under one chunk
  const job: TextJob = {
    kind: "text",
    model,
    prompt: "b".repeat(300 * 1024),
    params: CHECKED_PARAMS,
    nonce: "oversize-1",
    input: cidOf(input),
  };
  assert.ok(jobBytes(job) <= MAX_NETWORK_JOB_BYTES, "the job alone may cross nodes");
  assert.ok(jobBytes(job) + input.length > MAX_NETWORK_JOB_BYTES);
  return { job, input };
}

/** One token with a logits row of `vocab` (what a worker that ran nothing can still sign). */
async function* oneToken(vocab: number): AsyncIterable<ProverChunk> {
  yield { index: 0, tokenId: 65, text: "A", logits: new Float32Array(vocab) };
}

Deno.test("jobPromptText refuses an input that with its job passes MAX_NETWORK_JOB_BYTES (input_too_large)", () => {
  const { job, input } = oversizeJob("m");
  let code = "accepted";
  try {
    jobPromptText(job, input);
  } catch (e) {
    code = (e as VeriflowError).code;
  }
  assert.equal(code, "input_too_large");
});

Deno.test("a receipt for a job whose input passes the network job bound is not a fraud proof no frame carries, but withheld-invalid", async () => {
  const f = await loadFixture();
  const cid = f.honest.info.cid;
  const { job, input } = oversizeJob(cid);
  const worker = Identity.generate();
  // A cheat skips the worker's refusal (local_port's room) and signs a receipt anyway.
  const { receipt, proof } = await proveJob(job, oneToken(f.honest.info.vocabSize), worker, {
    input,
  });
  const served = signServedProof(receiptId(receipt), proof, worker);
  const result = await validateReceipt(
    { job, receipt, proof: served.proof, proofSig: served.sig, output: "A" },
    f.honestThreads,
    Identity.generate(),
  );
  assert.deepEqual(
    [result.verdict.outcome, result.verdict.reason],
    ["invalid", "proof_unavailable"],
    `a fraud proof of ${
      result.fraudProof ? jobBytes(job) + input.length : 0
    }+ bytes of job and input`,
  );
  assert.equal(result.fraudProof, undefined);
});

Deno.test("a validator without the model does not clear proof data served without the job's input", async () => {
  const f = await loadFixture();
  const cid = f.honest.info.cid;
  const stored = new TextEncoder().encode("Notes: the river rose.\n");
  const job: TextJob = {
    kind: "text",
    model: cid,
    prompt: "Then ",
    params: CHECKED_PARAMS,
    nonce: "served-1",
    input: cidOf(stored),
  };
  const worker = Identity.generate();
  const { receipt, proof } = await proveJob(job, oneToken(f.honest.info.vocabSize), worker, {
    input: stored,
  });
  const validator = Identity.generate();
  const whole = signServedProof(receiptId(receipt), proof, worker);
  const cleared = await checkServed(
    { job, receipt, proof: whole.proof, proofSig: whole.sig, output: "A" },
    validator,
  );
  assert.equal(cleared.verdict.reason, "proof_served", "whole proof data clears the claim");
  const { input: _input, ...bare } = proof;
  const stripped = signServedProof(receiptId(receipt), bare, worker);
  const withheld = await checkServed(
    { job, receipt, proof: stripped.proof, proofSig: stripped.sig, output: "A" },
    validator,
  );
  assert.deepEqual(
    [withheld.verdict.outcome, withheld.verdict.reason],
    ["invalid", "proof_unavailable"],
    "what a validator with the model finds",
  );
  const other = new TextEncoder().encode("other bytes");
  const wrong = signServedProof(receiptId(receipt), { ...proof, input: other }, worker);
  const mismatched = await checkServed(
    { job, receipt, proof: wrong.proof, proofSig: wrong.sig, output: "A" },
    validator,
  );
  assert.deepEqual(
    [mismatched.verdict.outcome, mismatched.verdict.reason],
    ["invalid", "proof_unavailable"],
  );
});
