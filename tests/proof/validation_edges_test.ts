/**
 * Honest receipts at the edges of what a job and a model allow must validate, and receipts no
 * honest worker can produce must cost the worker on evidence any node can check: near-zero
 * temperatures, masked (−∞) logits, chunk size 1 commitments, prompts that fill the context
 * window. Each test builds on the tiny model or a scripted stand-in (fast).
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { generationParamsSchema, type TextJob } from "../../protocols/job.ts";
import { proveJob } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import { FraudProofSchema } from "../../protocols/fraud_proof.ts";
import { verifyVerdict } from "../../protocols/verdict.ts";
import { BUILTIN_PAD_TOKEN_ID } from "../../inference/byte_tokenizer.ts";
import { tinyModel } from "../inference/_fixtures.ts";
import { generateChunks, scriptedModel } from "./_scripted_model.ts";

const tiny = await tinyModel();
Deno.test.afterAll(() => tiny.cleanup());
const m = tiny.model;

Deno.test("an honest receipt at a denormal temperature validates (greedy below MIN_SAMPLING_TEMPERATURE)", async () => {
  // l/T overflowed to +∞ for every positive logit: the sampler took the smallest such id, the
  // check computed ∞ − ∞ = NaN and convicted the worker of `sampling`; the checker agreed.
  for (const [i, temperature] of [5e-324, 1e-310, 5e-7].entries()) {
    for (const topP of [1, 0.9]) {
      const params = { maxTokens: 8, temperature, topK: 0, topP, seed: 1, stop: [] };
      assert.ok(generationParamsSchema.safeParse(params).success, "the schema accepts the job");
      const job: TextJob = {
        kind: "text",
        model: m.info.cid,
        prompt: "Hello there",
        params,
        nonce: `tiny-t-${i}-${topP}`,
      };
      const proved = await proveJob(
        job,
        m.generate(m.tokenizer.encode(job.prompt), params),
        Identity.generate(),
      );
      const res = await validateReceipt(
        { job, receipt: proved.receipt, proof: proved.proof, output: proved.output },
        m,
        Identity.generate(),
      );
      assert.equal(
        res.verdict.outcome,
        "valid",
        `T=${temperature} topP=${topP}: ${res.verdict.reason}`,
      );
    }
  }
});

Deno.test("a model with masked (−∞) ids: honest receipts validate; a cheat's proof and verdict hold only finite numbers", async () => {
  // The pad id and 'x' are masked in every row, as exported models mask unused ids.
  const X = "x".charCodeAt(0);
  const model = scriptedModel("bafy-masked", {
    patch: (row) => {
      row[BUILTIN_PAD_TOKEN_ID] = -Infinity;
      row[X] = -Infinity;
    },
  });
  const prompt = model.tokenizer.encode("Hello");
  const run = async (params: TextJob["params"], nonce: string, cheat = false) => {
    const job: TextJob = { kind: "text", model: model.info.cid, prompt: "Hello", params, nonce };
    const chunks = generateChunks(model, prompt, params, {
      replace: cheat ? (t, token) => (t === 0 ? X : token) : undefined,
    });
    const proved = await proveJob(job, ReadableStream.from(chunks), Identity.generate());
    return await validateReceipt(
      { job, receipt: proved.receipt, proof: proved.proof, output: proved.output },
      model,
      Identity.generate(),
    );
  };
  for (const temperature of [0, 0.8]) {
    const params = { maxTokens: 12, temperature, topK: 0, topP: 1, seed: 3, stop: [] };
    const res = await run(params, `masked-${temperature}`);
    // The projection was NaN at every position: fingerprint_mismatch, and a verdict whose
    // details (maxDistance NaN) did not verify.
    assert.equal(res.verdict.outcome, "valid", `T=${temperature}: ${res.verdict.reason}`);
    assert.ok(verifyVerdict(res.verdict));
  }
  // The cheat emits a masked id (probability 0) at its first position: its recomputed logProb is
  // −∞, which made the signed proof malformed, so the checker refuted the honest validator.
  const params = { maxTokens: 4, temperature: 0.8, topK: 0, topP: 1, seed: 3, stop: [] };
  const res = await run(params, "masked-cheat", true);
  assert.equal(res.verdict.outcome, "fraud");
  assert.ok(verifyVerdict(res.verdict), "the verdict verifies");
  assert.ok(res.fraudProof && FraudProofSchema.safeParse(res.fraudProof).success, "proof parses");
  for (const c of res.fraudProof.cited) {
    for (const v of Object.values(c)) {
      assert.ok(v === undefined || Number.isFinite(v), JSON.stringify(c));
    }
  }
  const check = await checkFraudProof(res.fraudProof, model);
  assert.ok(check.confirmed, check.reason);
});
