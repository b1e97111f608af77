/**
 * Review s60: a peer's gossiped training receipt that reaches the training validator while its
 * ledger (the ValidatorActor) does not answer.
 *
 * `ReceiptCredits.record` (`training/_receipt_credits.ts`) took "no answer" as "not recorded, not
 * new": the receipt was neither recorded here nor passed on (gossip stopped at this node), and
 * nothing asked again. A receipt is recorded uncredited so that a fraud proof can slash the stake it
 * locks: a peer's proof about it then found its receipt unknown here, was held for a receipt that
 * never came, and the lazy trainer every other ledger slashed kept its stake in this one (and in
 * every node that hears of the receipt only through this one). The test reads the ledger outcome:
 * the receipt's status and the trainer's stake here, and whether the receipt was passed on.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { Account } from "../../proof/ledger.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { LAZY_TRAINER_STAKE } from "./_loss_fraud.ts";
import { spawnLazyReceiptLedger } from "./_training_ledger.ts";

/** The relaying peers (hex keys). */
const RELAY = "ee".repeat(32);
const ACCUSER_RELAY = "dd".repeat(32);

/**
 * A ledger and a training validator on a test clock (retries 5 ms, doubling); `restart` says
 * whether the training validator restarts while the receipt is kept. Returns nothing: asserts.
 */
async function receiptWhileLedgerDown(name: string, restart: boolean): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-s60-receipt-${name}-` });
  const system = new ActorSystem({ name: `s60-receipt-${name}` });
  const clock = 1_000_000;
  const told: NetworkMessage[] = [];
  try {
    const { down, model, ledger, training, restartTraining, proof, id } =
      await spawnLazyReceiptLedger(system, dir, { now: () => clock, told });
    const record = () =>
      ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id });
    // The receipt's gossip comes while the ledger does not answer.
    down(true);
    await training.ask({
      type: "receipt",
      body: {
        receipt: proof.receipt,
        terms: { round: 0, startModel: model.cid, steps: proof.receipt.steps },
      },
      origin: RELAY,
    });
    const now = restart ? await restartTraining() : training;
    down(false);
    // The accuser's proof comes once the ledger is back.
    await eventually(async () => (await record()) !== undefined, "the receipt recorded here", {
      timeoutMs: 5_000,
    }).catch(() => {});
    await now.ask({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: ACCUSER_RELAY,
    });
    await eventually(
      async () => (await record())?.status === "fraud",
      "the proof to settle",
      { timeoutMs: 10_000 },
    ).catch(() => {});
    assert.equal((await record())?.status, "fraud", "the lazy trainer is convicted here");
    const trainer = await ledger.ask<Account>({ type: "account", key: proof.receipt.trainer });
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "the lazy trainer's stake is cut here");
    assert.ok(
      told.some((m) => {
        const gossip = (m as { type: string; gossip?: { kind: string } }).gossip;
        return m.type === "publish_training" && gossip?.kind === "receipt";
      }),
      "the receipt was passed on",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("review s60: a peer's training receipt gossiped while this node's ledger is stopped is recorded and passed on once the ledger is back: a later fraud proof slashes the lazy trainer here too", () =>
  receiptWhileLedgerDown("stopped", false));

Deno.test("review s60: a peer's training receipt kept for a stopped ledger outlives a restart of the training validator: a later fraud proof slashes the lazy trainer here too", () =>
  receiptWhileLedgerDown("restart", true));
