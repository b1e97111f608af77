/**
 * Review s63 (ledger, training): "every honest node's ledger settles the same training evidence
 * the same way", the training twin of `review_s62_convergence_test.ts`. One world of signed
 * training evidence (`review_s63_training_convergence_world.ts`: pledges, receipts credited and
 * gossiped, credits from audits, confirmed and refuted training fraud proofs, a trainer's two
 * contradicting receipts for one round both ways round, an accuser short of stake, finalize ticks)
 * is fed to fresh ledgers, each owned by another key, in 20 seeded orders, and each ends, once
 * every window has closed, with the same balances, stakes, locks, convictions and receipt
 * statuses as the canonical order, replayed from disk too.
 *
 * Orders assumed: what the node in front of a ledger guarantees (see the world's module doc);
 * everything arrives inside the windows of the receipts it is about. What may differ by design
 * is left out: which of a trainer's two contradicting receipts for a round a ledger records (the
 * first to come) and what it locked while open.
 *
 * The orders that still end otherwise (a proof about one of a trainer's two contradicting
 * receipts; a larger contradicting receipt its trainer's free stake could not back) are pinned,
 * each over every order of its evidence, in `review_s63_training_convergence_open_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { prng } from "../_prng.ts";
import { withoutFsync } from "./_ledger_fixtures.ts";
import { shuffled } from "./review_s62_convergence_world.ts";
import { buildTrainingWorld, settleTraining } from "./review_s63_training_convergence_world.ts";

/** The seeds of the orders tried: fixed, so every run tries the same 20. */
const SEEDS = Array.from({ length: 20 }, (_, i) => 6300 + i);

Deno.test("review s63: honest ledgers that get the same training evidence in 20 different orders end with the same balances, stakes, slashes and receipt statuses", async () => {
  const world = buildTrainingWorld();
  await withoutFsync(async () => {
    const reference = await settleTraining(world.slots, world.evidence, 200);
    // The canonical order's outcome, spelled out: the property is not "all equally wrong".
    assert.deepEqual(reference.state.accounts, {
      // A 6 + F 2 paid; round 2's larger contradicting claim (20 × 7 = 140) slashed.
      t1: { balance: 8, stake: 10_000 - 140, locked: 0 },
      // B's lock (20 × 5 = 100) and round 3's larger claim (20 × 6 = 120) slashed; H unpaid.
      t2: { balance: 0, stake: 10_000 - 100 - 120, locked: 0 },
      // C 4 (credited from the audit) + E 3 + G 2; J's lock (100) slashed.
      t3: { balance: 9, stake: 10_000 - 100, locked: 0 },
      // Half of B's slash; its false proof of E costs 100.
      v1: { balance: 50, stake: 1_000 - 100, locked: 0 },
      // Half of J's slash; its false proof of B costs 100.
      v2: { balance: 50, stake: 1_000 - 100, locked: 0 },
      // 100 for F, the 50 left for G.
      v3: { balance: 0, stake: 0, locked: 0 },
    }, JSON.stringify(reference.state.accounts));
    assert.deepEqual(reference.log.refused, {
      "D t1 big": "equivocation",
      "I t2 small": "equivocation",
    });
    for (const [i, seed] of SEEDS.entries()) {
      const order = shuffled(world.evidence, prng(seed));
      const got = await settleTraining(world.slots, order, 201 + i);
      assert.deepEqual(got.log.neverReady, [], `seed ${seed}: all evidence reached the ledger`);
      assert.deepEqual(
        got.state,
        reference.state,
        `seed ${seed}: ${got.log.delivered.join(" → ")}\nrefused: ${
          JSON.stringify(got.log.refused)
        }`,
      );
    }
  });
});
