/**
 * The node's validator as `node/node.ts` wires it re-counts every receipt's prompt tokens at
 * intake with the registered model's tokenizer alone (`ValidatorModelSource.promptCounting`,
 * review s78 vprompt F1): at p = 0 an honest count is credited with no model session loaded, and
 * an inflated one is challenged whatever the coin.
 *
 * @module
 */
import assert from "node:assert/strict";
import { proveJob } from "../../proof/prover.ts";
import { loadFixture, manualStream } from "../proof/_models.ts";
import { settleJob, startValidatorNode, tellReceipt } from "../node/_validator_node.ts";

const f = await loadFixture();

Deno.test("a node's validator re-counts a receipt's prompt tokens at intake with the tokenizer alone: an honest count is taken with no model loaded, an inflated one is challenged though the coin draws nothing", async () => {
  const v = await startValidatorNode(f, 1_000_000);
  const { models, worker } = v;
  try {
    const submit = async (count: (truth: number) => number) => {
      const job = settleJob(v, f.honest.info.cid);
      const ids = f.honest.tokenizer.encode(job.prompt);
      const proved = await proveJob(job, manualStream(() => f.honest, ids, job.params), worker, {
        promptTokens: count(ids.length),
      });
      return await tellReceipt(v, proved.receipt, job);
    };
    const honest = await submit((truth) => truth);
    assert.equal(honest.recorded, true);
    assert.equal(honest.challenged, false);
    assert.deepEqual(models.health(), [], "a model session was loaded to count a prompt");
    const inflated = await submit(() => 100_000);
    assert.equal(inflated.recorded, true);
    assert.equal(inflated.challenged, true, "the inflated count was left to the coin");
    inflated.result?.catch(() => {});
  } finally {
    await v.close();
  }
});
