/**
 * The node's validator answers "can this ledger check it" from the node's model registry at
 * receipt intake, loading nothing: a peer's assigned receipt on a registered model is credited,
 * one on a model not registered here is recorded without credit (`model_unavailable`), and
 * neither loads a model.
 */
import assert from "node:assert/strict";
import { parseNodeConfig } from "../../node/config.ts";
import { NODE_ACTORS, startNode } from "../../node/node.ts";
import type { ReceiptHandled, ValidatorMessage } from "../../actors/validator_actor.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { TextJob } from "../../protocols/job.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { proveJob } from "../../proof/prover.ts";
import { loadFixture, manualStream } from "../proof/_models.ts";

const f = await loadFixture();

Deno.test("a node's validator credits a peer's receipt only on a model registered here, and loads no model to tell", async () => {
  const dataDir = await Deno.makeTempDir();
  const models = new ModelRegistry();
  await models.register(`${f.dir}/honest`);
  const config = parseNodeConfig({
    dataDir,
    http: { port: 0 },
    network: { listen: { port: 0 } },
    heartbeatMs: 0,
    roles: { inference: false, prover: false, validator: true },
    // No coin: what is asserted is the intake's credit, not a challenge.
    validator: { challengeProbability: 0 },
  });
  const node = await startNode(config, { models, log: () => {} });
  const worker = Identity.generate();
  const requester = Identity.generate();
  try {
    const validator = node.system.lookup<ValidatorMessage>(NODE_ACTORS.validator)!;
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
    const submit = async (model: string) => {
      const job: TextJob = {
        kind: "text",
        model,
        prompt: "Settle this",
        params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
        nonce: crypto.randomUUID(),
        requester: toHex(requester.publicKey),
      };
      const ids = f.honest.tokenizer.encode(job.prompt);
      const proved = await proveJob(job, manualStream(() => f.honest, ids, job.params), worker);
      const handled = await validator.ask<ReceiptHandled>({
        type: "receipt",
        receipt: proved.receipt,
        job,
        assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester),
        origin: toHex(requester.publicKey),
      });
      const record = await validator.ask<ReceiptRecord>({
        type: "receipt_status",
        receiptId: receiptId(proved.receipt),
      });
      return { handled, record };
    };
    const held = await submit(f.honest.info.cid);
    assert.equal(held.handled.uncredited, undefined);
    assert.ok(held.record.credit > 0);
    const unheld = await submit(f.otherSeed.info.cid);
    assert.equal(unheld.handled.uncredited, "model_unavailable");
    assert.equal(unheld.record.credit, 0);
    assert.deepEqual(models.health(), [], "no model was loaded to answer");
  } finally {
    await node.shutdown();
    await node.finished;
    await models.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
