/**
 * What an audit fetches for a hostile outcome (`training/round_audit.ts`, review s71 F4): a
 * receipt claiming a delta size no delta of the outcome's model has is refused before any file
 * is fetched, and the deltas are fetched a few at a time, the audit stopping at the first that is
 * not its receipt's.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { AUDIT_FETCH_BATCH, auditRound, type RoundAudit } from "../../training/round_audit.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import { gptDeltaBytes } from "../../training/delta_bytes.ts";
import type { TrainingReceipt } from "../../training/training_receipt.ts";
import { constantDelta, craftedReceipt } from "./_crafted_receipts.ts";
import { TEST_ARCH } from "./_fixtures.ts";

/** Reports in each hostile outcome: several batches' worth, so a bounded audit shows. */
const REPORTS = 3 * AUDIT_FETCH_BATCH;
const H = 2;

/** An auditor's round models over one storage, counting the files the audit fetches. */
async function countingAuditor(dir: string, system: ActorSystem) {
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => new StorageActor({ dir: join(dir, "store") }),
  });
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => storage });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const fetched: string[] = [];
  const getFile = models.getFile.bind(models);
  models.getFile = (file: string) => {
    fetched.push(file);
    return getFile(file);
  };
  /** The audit of round 0 from the seed over `reports`, signed by a (hostile) coordinator. */
  const audit = (
    reports: { receipt: TrainingReceipt; deltaFile: string }[],
  ): Promise<RoundAudit> => {
    const outcome: OutcomeBody = signOutcome({
      round: 0,
      startModel: seed.cid,
      startFile: seed.file!,
      model: seed.cid,
      file: seed.file!,
      arch: TEST_ARCH,
      accepted: reports.map((r) => toHex(r.receipt.trainer)),
      reports,
      excluded: [],
    }, Identity.generate());
    return auditRound(outcome, {
      models,
      momentumAfter: () => undefined,
      convicted: () => Promise.resolve(false),
    });
  };
  return { models, seed, fetched, audit };
}

Deno.test("an outcome whose receipts claim a delta size no delta of its model has is refused before any delta is fetched", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-audit-fetch-size-" });
  const system = new ActorSystem({ name: "audit-fetch-size" });
  try {
    const { models, seed, fetched, audit } = await countingAuditor(dir, system);
    // Each report a fresh key's validly signed receipt over a file of its own (distinct work),
    // a size of the coordinator's choosing: not the size of a delta of the test model.
    const reports = [];
    for (let i = 0; i < REPORTS; i++) {
      const junk = new Uint8Array(1024 + i).fill(i);
      const deltaFile = (await models.putFile(junk, `junk-${i}.bin`))!;
      const receipt = craftedReceipt(Identity.generate(), 0, seed.cid, H, junk);
      reports.push({ receipt, deltaFile });
    }
    const size = gptDeltaBytes(TEST_ARCH);
    assert.ok(reports.every((r) => r.receipt.deltaBytes !== size), "no claim is the model's size");
    const fetchedBefore = fetched.length;
    const result = await audit(reports);
    assert.ok(!result.ok, JSON.stringify(result));
    assert.equal(result.reason, "delta_size_mismatch", result.detail);
    assert.deepEqual(fetched.slice(fetchedBefore), [], "no file is fetched for it");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an audit fetches the deltas a few at a time and stops at the first that is not its receipt's", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-audit-fetch-stop-" });
  const system = new ActorSystem({ name: "audit-fetch-stop" });
  try {
    const { models, seed, fetched, audit } = await countingAuditor(dir, system);
    const reports = [];
    for (let i = 0; i < REPORTS; i++) {
      const delta = constantDelta(0.01 * (i + 1));
      // The first report's file is another delta of the right size: not the one it signs.
      const stored = i === 0 ? constantDelta(-0.5) : delta;
      const deltaFile = (await models.putFile(stored, `delta-${i}.bin`))!;
      reports.push({
        receipt: craftedReceipt(Identity.generate(), 0, seed.cid, H, delta),
        deltaFile,
      });
    }
    const deltaFiles = new Set(reports.map((r) => r.deltaFile));
    const result = await audit(reports);
    assert.ok(!result.ok, JSON.stringify(result));
    assert.equal(result.reason, "delta_mismatch", result.detail);
    const deltasFetched = fetched.filter((f) => deltaFiles.has(f));
    assert.equal(
      deltasFetched.length,
      AUDIT_FETCH_BATCH,
      `one batch fetched of ${REPORTS} deltas: ${deltasFetched.length}`,
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
