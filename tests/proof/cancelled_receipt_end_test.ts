/**
 * The validator's end check on a receipt signed `end: "cancelled"` (review s77 F1): the output may
 * end where its requester cancelled, without a stop, and positions 0 … k−1 are re-run as for any
 * receipt; a `truncated` accusation against it does not hold up with any checker; a stop before its
 * last position is still an overrun; a node from before the field sees a bad signature, and so
 * pays and convicts nothing on it.
 *
 * @module
 */
import { assert, assertEquals } from "../server/_assert.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { proveJob } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import { signFraudProof } from "../../protocols/fraud_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { verifyReceipt } from "../../protocols/receipt.ts";
import { loadTinyModel, params } from "../server/_fixtures.ts";

/** Tokens the requester held when it cancelled, of the job's `maxTokens`. */
const HELD = 6;
const MAX_TOKENS = 16;

/** The first `count` chunks of `job` as the model generates them. */
async function firstChunks(job: TextJob, count: number): Promise<TokenChunk[]> {
  const model = await loadTinyModel();
  const ids = model.tokenizer.encode(job.prompt);
  const chunks: TokenChunk[] = [];
  for await (const chunk of model.generate(ids, job.params)) {
    chunks.push(chunk);
    if (chunks.length === count) break;
  }
  assertEquals(chunks.length, count, "the model ended the job before the cancel");
  return chunks;
}

async function job(nonce: string, stop: string[] = []): Promise<TextJob> {
  const model = await loadTinyModel();
  return {
    kind: "text",
    model: model.info.cid,
    prompt: "The quick brown fox",
    params: params({ maxTokens: MAX_TOKENS, temperature: 0.9, seed: 3, stop }),
    nonce,
  };
}

Deno.test("F1: a receipt signed `cancelled` at k is valid with k positions re-run; the same k tokens signed as a whole output are truncated, and that accusation does not hold against the cancelled one", async () => {
  const model = await loadTinyModel();
  const worker = Identity.generate();
  const validator = Identity.generate();
  const j = await job("cancelled-end");
  const chunks = await firstChunks(j, HELD);
  const cancelled = await proveJob(j, ReadableStream.from(chunks), worker, {
    end: () => ({ reason: "cancelled", tokens: HELD }),
  });
  assertEquals(cancelled.receipt.end, "cancelled");
  assertEquals(cancelled.receipt.tokenCount, HELD);
  const ok = await validateReceipt(
    { job: j, receipt: cancelled.receipt, proof: cancelled.proof },
    model,
    validator,
  );
  assertEquals(ok.verdict.outcome, "valid", ok.verdict.reason);
  assertEquals(ok.verdict.details?.positions, HELD);

  // Without the end, the same tokens claim a whole output that stops nowhere: truncated.
  const whole = await proveJob(j, ReadableStream.from(chunks), worker);
  assertEquals(whole.receipt.end, undefined);
  const caught = await validateReceipt(
    { job: j, receipt: whole.receipt, proof: whole.proof },
    model,
    validator,
  );
  assertEquals(caught.verdict.outcome, "fraud");
  assertEquals(caught.verdict.reason, "truncated");
  assert(caught.fraudProof !== undefined);

  // The same accusation, aimed at the cancelled receipt (same commitment, same openings), is
  // refuted by any checker: the requester ended that output, not the worker.
  const { sig: _sig, validator: _v, receipt: _r, ...accusation } = caught.fraudProof;
  const aimed = signFraudProof({ ...accusation, receipt: cancelled.receipt }, validator);
  const checked = await checkFraudProof(aimed, model);
  assertEquals(checked.confirmed, false, checked.reason);
  assertEquals(checked.reason, "not_reproduced");
});

Deno.test("F1: a receipt signed `cancelled` whose output has a stop before its last position is still an overrun", async () => {
  const model = await loadTinyModel();
  const free = await firstChunks(await job("overrun-probe"), HELD);
  // A stop string the output completes at position 1 (with no stop, the model runs on past it):
  // the job with that stop ended there, so tokens after it were no cancel's to sign.
  const stopAt = free.findIndex((c, t) => t >= 1 && c.text.length > 0);
  assert(stopAt >= 1 && stopAt < HELD - 1, "no position to stop at before the last");
  const stop = free.slice(0, stopAt + 1).map((c) => c.text).join("");
  const j = await job("overrun-probe", [stop]);
  const run = await proveJob(j, ReadableStream.from(free), Identity.generate(), {
    end: () => ({ reason: "cancelled", tokens: HELD }),
  });
  const { verdict } = await validateReceipt(
    { job: j, receipt: run.receipt, proof: run.proof },
    model,
    Identity.generate(),
  );
  assertEquals(verdict.outcome, "fraud");
  assertEquals(verdict.reason, "overrun");
});

Deno.test("F1: a node from before the `end` field (its schema drops the field) sees a cancelled receipt's signature fail, so it records and pays nothing on it", async () => {
  const j = await job("old-node");
  const chunks = await firstChunks(j, HELD);
  const run = await proveJob(j, ReadableStream.from(chunks), Identity.generate(), {
    end: () => ({ reason: "cancelled", tokens: HELD }),
  });
  assert(verifyReceipt(run.receipt, { job: j }).ok, "the new schema reads it");
  const { end: _dropped, ...asOldNodesRead } = run.receipt;
  const old = verifyReceipt(asOldNodesRead, { job: j });
  assertEquals(old.ok ? "ok" : old.reason, "bad_signature");
});
