/**
 * A trainer whose receipt the coordinator's ledger refuses (no stake to lock) has nothing at
 * risk: a fraud proof against it would settle nowhere. Its delta is left out of the round. It
 * used to be averaged in whatever the ledger said (found by a review at stop 33), so a fresh key
 * could push a made-up delta into the model every round the coin did not draw it.
 */
import { oneRound, reportingTrainer } from "./_reporting_trainer.ts";
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { type TrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";

const STEPS = 3;

Deno.test("a trainer with no stake has its receipt refused by the ledger and its delta left out of the round", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-stakeless-" });
  const system = new ActorSystem({ name: "stakeless" });
  try {
    // The production default is 0.1: 9 rounds in 10 the coordinator challenges nothing. Here 0.
    const { ledger, start, shard, join, ended } = await oneRound(system, dir, {
      challenge: { challengeProbability: 0 },
      steps: STEPS,
      minTrainers: 1,
      stakes: [],
    });
    const sybil = Identity.generate(); // fresh key, never deposited anything
    const sent: TrainingReceipt[] = [];
    // A large made-up "delta" (a poisoning attempt), no training.
    await join(reportingTrainer(sybil, start, shard, { value: () => 500, sent }));
    const record = await ended();
    assert.deepEqual(record.accepted, []);
    assert.equal(record.model, record.startModel, "no model made of nothing");
    const why = record.excluded.find((e) => e.key === toHex(sybil.publicKey))?.reason ?? "";
    assert.match(why, /receipt not recorded \(insufficient_stake\)/);
    const inLedger = await ledger.ask({
      type: "receipt_status",
      receiptId: trainingReceiptId(sent[0]),
    });
    assert.equal(inLedger ?? undefined, undefined, "nothing recorded, nothing to pay");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
