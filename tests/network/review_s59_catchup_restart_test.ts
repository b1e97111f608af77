/**
 * Review s59: a validator's "proof withheld" fault survives, in its catch-up (`actors/_catch_up.ts`),
 * a restart of its node's process. Validator V decides that worker W withheld its proof data (W
 * slashed in V's ledger) with no peer connected, so its gossip reaches nobody; V's process then
 * restarts (a new ValidatorActor on the same ledger). Ledger L was away meanwhile; it connects to
 * V's new process. The fault's verdict was kept in memory only (convictions were kept on disk):
 * L never heard the claim, never asked W, and paid the worker V slashed (or, never having had
 * the receipt, left it its stake).
 *
 * A new process is stood in for by V's ledger directory copied under another name while V is
 * down: the catch-up is one per ledger directory in a process (`CatchUp.of`), so the copy is read
 * from disk as a new process reads it. Every ledger runs on the test's clock; asserted on L's
 * ledger after the window.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { CATCH_UP_VERDICTS_DIR } from "../../actors/_catch_up.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  textJob,
} from "../actors/_validator_fixture.ts";
import {
  copyDir,
  inLedgerSetting,
  latePeerCatchesUp,
  type LedgerNode,
  type LedgerSetting,
  spawnLedgerNode,
  withholds,
} from "./_ledger_node.ts";

const STAKE = 1_000_000;

/** W's work, and the away ledger L holding W's and V's stake (`knows`: and W's receipt). */
async function awayLedger({ dir, clock, system }: LedgerSetting, v: Identity, knows: boolean) {
  const [worker, requester] = [Identity.generate(), Identity.generate()];
  const job = textJob(requester, crypto.randomUUID());
  const { receipt } = await proveOn(job, worker);
  const nodeL = await spawnLedgerNode(system, dir, "l", {
    identity: Identity.generate(),
    models: HONEST_MODELS,
    clock,
    validator: { challengeProbability: 0, source: withholds },
  });
  for (const key of [worker, v]) {
    await nodeL.validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
  }
  if (knows) {
    // Through its requester.
    const handled = await announceAssigned(nodeL.validator, receipt, job, requester);
    assert.equal(handled.recorded, true);
  }
  return { worker, requester, job, receipt, id: receiptId(receipt), nodeL };
}

/**
 * V's first life, in a system of its own: it decides alone (the worker withholds: a fault), then
 * its process ends; its second life, on a copy of its ledger directory (`v2`), in `system`.
 */
async function vRestartsAfterDeciding(
  setting: LedgerSetting,
  v: Identity,
  w: Awaited<ReturnType<typeof awayLedger>>,
): Promise<LedgerNode> {
  const { dir, clock, system } = setting;
  const spawnV = (on: ActorSystem, name: string) =>
    spawnLedgerNode(on, dir, name, {
      identity: v,
      models: HONEST_MODELS,
      clock,
      validator: { challengeProbability: 1, source: withholds },
    });
  const first = new ActorSystem({ name: "s59-first-life" });
  try {
    const nodeV = await spawnV(first, "v");
    await nodeV.validator.ask({ type: "deposit", key: w.worker.publicKey, amount: STAKE });
    const handled = await announceAssigned(nodeV.validator, w.receipt, w.job, w.requester);
    assert.equal(handled.challenged, true);
    await handled.result;
    const readsV = ledgerReads(() => nodeV.validator, clock);
    assert.equal((await readsV.record(w.id))?.status, "fraud", "V slashed the worker");
  } finally {
    await first.shutdown();
  }
  await copyDir(`${dir}/v`, `${dir}/v2`);
  return await spawnV(system, "v2");
}

/**
 * W's work and the away ledger L (`knows`: and W's receipt); V decides alone, its process restarts,
 * and L catches up with V's new process ({@link latePeerCatchesUp}).
 */
async function awayLedgerCatchesUpAfterRestart(setting: LedgerSetting, knows: boolean) {
  const v = Identity.generate();
  const w = await awayLedger(setting, v, knows);
  const nodeV2 = await vRestartsAfterDeciding(setting, v, w);
  const caughtUp = await latePeerCatchesUp(w.nodeL, nodeV2, setting.clock, w.id, w.worker);
  return { w, ...caughtUp };
}

Deno.test("a withheld fault a validator decided reaches, after its process restarted, a ledger that was away with the receipt: the worker is slashed there too, not paid", () =>
  inLedgerSetting("s59-catch-up-restart", async (setting) => {
    const { w, readsL, record, before } = await awayLedgerCatchesUpAfterRestart(setting, true);
    assert.ok(record !== undefined && record.credit > 0, "L would pay the work");
    assert.equal(
      (await readsL.record(w.id))?.status,
      "fraud",
      `L paid the worker that withheld (its stake there: ${before.stake} of ${STAKE})`,
    );
    assert.deepEqual(
      await readsL.account(w.worker.publicKey),
      { balance: 0, stake: STAKE - record.locked, locked: 0 },
      "slashed in L as in V, not paid",
    );
    assert.equal((await readsL.stats()).challenged, 1, "L took V's claim over");
    const files = await Array.fromAsync(Deno.readDir(`${setting.dir}/v2/${CATCH_UP_VERDICTS_DIR}`));
    assert.equal(files.length, 1, "V kept its fault on disk, one file");
  }));

Deno.test("a withheld fault kept across a process restart goes after its receipt and job: a ledger that never had the receipt records it, takes the claim over and slashes the worker", () =>
  inLedgerSetting("s59-catch-up-restart-evidence", async (setting) => {
    const { w, readsL, record, before } = await awayLedgerCatchesUpAfterRestart(setting, false);
    assert.equal(
      (await readsL.record(w.id))?.status,
      "fraud",
      `L ${record === undefined ? "never recorded the receipt" : "did not slash the worker"}` +
        ` (its stake there: ${before.stake} of ${STAKE})`,
    );
    assert.deepEqual(
      await readsL.account(w.worker.publicKey),
      { balance: 0, stake: STAKE - record!.locked, locked: 0 },
      "slashed in L as in V",
    );
  }));
