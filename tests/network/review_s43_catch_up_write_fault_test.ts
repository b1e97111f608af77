/**
 * Review s43: node A's ledger write of a peer's conviction is durable, then the ledger fails
 * (its history index throws: a disk error after the entry was written) and the ValidatorActor
 * crashes; its supervisor restarts it, the ledger reopened from disk holding the conviction.
 * Before, the conviction was kept in the catch-up only after the settlement returned: the
 * restarted validator found the accusation settled (the proof taken again from the held evidence
 * is a repeated accusation) and never kept it, so ledger C, which had the cheat's receipt and
 * was away, connected to A after the crash and paid the cheat every other ledger slashed. The
 * catch-up now writes the conviction ahead of the settlement, and each start of the validator
 * keeps what was written ahead that the ledger settled.
 *
 * No clock is raced: every ledger runs on a clock fixed at `START`.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled } from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LedgerIndex } from "../../proof/ledger_index.ts";
import { eventually } from "../_helpers/wait.ts";
import { ledgerReads, START } from "../actors/_validator_fixture.ts";
import {
  assertAwaySlashed,
  cheatCase,
  fraudProofOf,
  spawnAwayLedger,
  spawnKnowingA,
} from "./_catch_up_second_life.ts";
import { joinLedgerNodes, STAKE } from "./_ledger_node.ts";

/** During the next `settleFraud`, the index's apply throws once, after the entry is durable. */
function failIndexDuringSettlement(): () => void {
  const settle = Ledger.prototype.settleFraud;
  const apply = LedgerIndex.prototype.apply;
  const restore = () => {
    Ledger.prototype.settleFraud = settle;
    LedgerIndex.prototype.apply = apply;
  };
  Ledger.prototype.settleFraud = function (this: Ledger, settlement) {
    Ledger.prototype.settleFraud = settle;
    LedgerIndex.prototype.apply = function () {
      LedgerIndex.prototype.apply = apply;
      throw Object.assign(new Error("Input/output error (os error 5) (simulated)"), {
        code: "EIO",
      });
    };
    return settle.call(this, settlement);
  };
  return restore;
}

Deno.test("review s43: a conviction whose durable ledger write crashed the validator reaches a ledger that connects after the restart: the cheat is slashed there", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "review-s43-write-fault" });
  const counts = { crashes: 0, restarts: 0 };
  system.events.subscribe((event) => {
    if (event.name !== "a/validator") return;
    if (event.type === "crashed") counts.crashes++;
    if (event.type === "restarted") counts.restarts++;
  });
  let restore = () => {};
  try {
    const clock = { t: START };
    const cheating = await cheatCase();
    const { cheat, v, id, evidence } = cheating;
    const fraudProof = await fraudProofOf(cheating);
    assert.ok(fraudProof);
    const a = await spawnKnowingA(system, dir, cheating, clock);
    // V's proof, from a peer: A checks it, and its settlement's write fails once durable.
    restore = failIndexDuringSettlement();
    const taken = await a.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true);
    await eventually(() => counts.restarts === 1, "A's validator to crash and be restarted");
    restore();
    const readsA = ledgerReads(() => a.validator, clock);
    await eventually(
      async () => (await readsA.record(id))?.status === "fraud",
      "A's restarted validator to hold the settled conviction",
    );
    // C had the cheat's receipt (through other peers) and the accuser's stake; it was away.
    const c = await spawnAwayLedger(system, dir, clock, evidence);
    await joinLedgerNodes(a, c);
    const slash = await assertAwaySlashed(c, clock, evidence);
    assert.equal(counts.crashes, 1);
    // And A settled it once.
    await readsA.closeWindow();
    assert.equal((await readsA.account(cheat.publicKey)).stake, STAKE - slash);
    assert.equal(
      (await readsA.account(v.publicKey)).balance,
      slash * DEFAULT_ECONOMICS.validatorRewardShare,
    );
  } finally {
    restore();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
