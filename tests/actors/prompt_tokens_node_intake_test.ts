/**
 * The node's validator as `node/node.ts` wires it re-counts every receipt's prompt tokens at
 * intake with the registered model's tokenizer alone (`ValidatorModelSource.promptCounting`,
 * review s78 vprompt F1): at p = 0 an honest count is credited with no model session loaded, and
 * an inflated one is challenged whatever the coin.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseNodeConfig } from "../../node/config.ts";
import { NODE_ACTORS, startNode } from "../../node/node.ts";
import type { ReceiptHandled, ValidatorMessage } from "../../actors/validator_actor.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { TextJob } from "../../protocols/job.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { proveJob } from "../../proof/prover.ts";
import { loadFixture, manualStream } from "../proof/_models.ts";

const f = await loadFixture();

Deno.test("a node's validator re-counts a receipt's prompt tokens at intake with the tokenizer alone: an honest count is taken with no model loaded, an inflated one is challenged though the coin draws nothing", async () => {
  const dataDir = await Deno.makeTempDir();
  const models = new ModelRegistry();
  await models.register(`${f.dir}/honest`);
  const config = parseNodeConfig({
    dataDir,
    http: { port: 0 },
    network: { listen: { port: 0 } },
    heartbeatMs: 0,
    roles: { inference: false, prover: false, validator: true },
    validator: { challengeProbability: 0 },
  });
  const node = await startNode(config, { models, log: () => {} });
  const worker = Identity.generate();
  const requester = Identity.generate();
  try {
    const validator = node.system.lookup<ValidatorMessage>(NODE_ACTORS.validator)!;
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: 1_000_000 });
    const submit = async (count: (truth: number) => number) => {
      const job: TextJob = {
        kind: "text",
        model: f.honest.info.cid,
        prompt: "Settle this",
        params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
        nonce: crypto.randomUUID(),
        requester: toHex(requester.publicKey),
      };
      const ids = f.honest.tokenizer.encode(job.prompt);
      const proved = await proveJob(job, manualStream(() => f.honest, ids, job.params), worker, {
        promptTokens: count(ids.length),
      });
      return await validator.ask<ReceiptHandled>({
        type: "receipt",
        receipt: proved.receipt,
        job,
        assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester),
        origin: toHex(requester.publicKey),
      });
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
    await node.shutdown();
    await node.finished;
    await models.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
