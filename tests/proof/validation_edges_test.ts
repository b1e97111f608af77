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
import { tinyModel } from "../inference/_fixtures.ts";

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
