/**
 * `ValidatorStats.own` (`veriflow_validator_own_receipts_total`, the page's `own`) counts this
 * node's own receipts that its ledger recorded, as its doc says (review s71, finding 1: an
 * immutable `ledger.log` gave `own 3` next to `refused 3`, none recorded). The ledger's write is
 * held and failed by the test (`_ledger_write_fault.ts`); its clock is the test's.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ReceiptHandled } from "../../actors/validator_messages.ts";
import { recordedReceipts } from "../../actors/recorded_receipts.ts";
import { Identity } from "../../protocols/identity.ts";
import { holdNextAppend } from "./_ledger_write_fault.ts";
import {
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

/** Enough stake for this node's own receipts (each locks a little). */
const STAKE = 10_000;

Deno.test("an own receipt lost to a ledger write that failed is refused, not counted own; one recorded is, once, and its copy is not", () =>
  inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const [me, requester] = [Identity.generate(), Identity.generate()];
    const system = new ActorSystem({ name: "own-receipts" });
    try {
      const validator = await spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
        log: () => {},
      });
      await validator.ask({ type: "deposit", key: me.publicKey, amount: STAKE });
      const ledger = ledgerReads(() => validator, clock);
      /** This node's worker hands its own receipt for `nonce`'s job to its validator. */
      const own = async (nonce: string) => {
        const job = textJob(requester, nonce);
        const { receipt } = await proveOn(job, me);
        return () =>
          validator.ask<ReceiptHandled>({ type: "receipt", receipt, job, origin: "local" });
      };

      const lost = await own("lost");
      const write = holdNextAppend(ledgerDir);
      let handled: ReceiptHandled;
      try {
        const answer = lost();
        await write.called;
        write.fail();
        handled = await answer;
      } finally {
        write.restore();
      }
      assert.equal(handled.recorded, false);
      let stats = await ledger.stats();
      // Failed before the fix: own 1 next to refused 1, though nothing was recorded.
      assert.equal(stats.refused, 1);
      assert.equal(stats.own, 0);
      assert.equal(recordedReceipts(stats).recorded, 0);

      // On a ledger that writes (a fresh one, in a directory of its own), an own receipt is
      // counted once, and a copy of it (announced back by a peer, say) is not counted again.
      await system.stop("node/validator");
      const sound = await spawnValidator(system, {
        identity: me,
        ledgerDir: `${ledgerDir}-sound`,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
        log: () => {},
      });
      await sound.ask({ type: "deposit", key: me.publicKey, amount: STAKE });
      const job = textJob(requester, "kept");
      const { receipt } = await proveOn(job, me);
      for (let i = 0; i < 2; i++) {
        const kept = await sound.ask<ReceiptHandled>({
          type: "receipt",
          receipt,
          job,
          origin: "local",
        });
        assert.equal(kept.recorded, true);
      }
      stats = await ledgerReads(() => sound, clock).stats();
      assert.equal(stats.copies, 1);
      assert.equal(stats.own, 1);
      assert.equal(recordedReceipts(stats).recorded, 1);
    } finally {
      await system.shutdown(); // both ledgers' directories go with inLedgerDir's
    }
  }));
