/**
 * Review s63 (ledger, training): the orders of training evidence that still end otherwise, each
 * tried in every order of its few pieces (`permutations`) and held to one outcome. The world of
 * `review_s63_training_convergence_test.ts` leaves them out.
 *
 * All four are about a trainer's two contradicting receipts for one round (4 steps, lock 80, and
 * 7 steps, lock 140; slashed 140 in every order, as it is), where the ledger records the first
 * that comes and answers the other `equivocation`:
 *
 * 1. (Fixed: index format 6.) A confirmed proof about the recorded receipt, coming after the
 *    contradicting one, was refused `not_pending` (the equivocation closed it as `fraud`): its
 *    accuser unpaid, where before the contradicting receipt it earned half the proved claim's
 *    lock. A `training_equivocation` entry now keeps its slash unrewarded for such a proof, as an
 *    `equivocation` does (`LedgerIndex.unrewardedSlash`); the test runs.
 * 2. and 3. (Fixed.) A proof about the receipt that was not recorded (the other came first) was
 *    held by the TrainingValidator for a receipt that never comes
 *    (`_receipt_held_training_proofs.ts`): a confirmed one paid its accuser nothing, a refuted one
 *    cost it nothing, where the same proof settles if its receipt came first. The settlement now
 *    carries the signed receipt (`FraudSettlement.trainingReceipt`) and settles against the
 *    receipt recorded in the trainer's slot (`Ledger.trainingFraudSubject`), as the inference
 *    side settles a proof about a variant (`fraudSubjectOf`); the node takes such a proof once
 *    that subject is known (`proofCarrying` below, as the intake asks). The tests run.
 * 4. (Fixed: stop 64.) The larger receipt refused for want of free stake (`insufficient_stake`)
 *    before the smaller came was forgotten: the smaller was recorded and paid, the cheat keeping
 *    its stake, where the other order slashes it all (a refusal wrote nothing to the log, on the
 *    inference side too: `review_s64_stake_refused_claim_test.ts`). A staked trainer's receipt
 *    refused for want of stake is kept as its claim for the round (`unrecorded_claim`,
 *    `proof/_ledger_stake_refused.ts`); the test runs.
 *
 * Each names the first order that ends otherwise when it fails.
 *
 * @module
 */
import assert from "node:assert/strict";
import { trainingReceipt } from "./_training_receipt.ts";
import { withoutFsync } from "./_ledger_fixtures.ts";
import type { Identity } from "../../protocols/identity.ts";
import { LedgerError } from "../../proof/ledger_errors.ts";
import { type TrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";
import { type Evidence, pledge } from "./review_s62_convergence_world.ts";
import {
  permutations,
  proofHash,
  settleTraining,
  trainingAnnounce,
  trainingParties,
  trainingProof,
} from "./review_s63_training_convergence_world.ts";

const { t1, v1 } = trainingParties;
/** t1's two contradicting receipts for round 9: 4 steps (lock 80) and 7 steps (lock 140). */
const small = trainingReceipt(t1, 9, 4, "d1");
const big = trainingReceipt(t1, 9, 7, "d2");
const slot = { about: "round 9", receipts: [small, big], firstComesFirst: true };

/**
 * Feed every order of `evidence` for which `keep` holds (names in order) to a fresh ledger and
 * assert t1's and v1's accounts end as `expected` in each; returns how many orders were tried.
 */
async function everyOrder(
  evidence: readonly Evidence[],
  keep: (names: string[]) => boolean,
  expected: Record<"t1" | "v1", { balance: number; stake: number; locked: number }>,
): Promise<number> {
  let tried = 0;
  await withoutFsync(async () => {
    for (const order of permutations(evidence)) {
      if (!keep(order.map((e) => e.name))) continue;
      const got = await settleTraining([slot], order, 300 + tried++ % 50);
      assert.deepEqual(
        { t1: got.state.accounts.t1, v1: got.state.accounts.v1 },
        expected,
        `${got.log.delivered.join(" → ")}\nrefused: ${JSON.stringify(got.log.refused)}${
          got.log.neverReady.length > 0 ? `\nnever ready: ${got.log.neverReady}` : ""
        }`,
      );
    }
  });
  return tried;
}

/** Whether `first` comes before `second` in `names`. */
const before = (names: string[], first: string, second: string) =>
  names.indexOf(first) < names.indexOf(second);

/**
 * A checked training fraud proof about `r` by `by` carrying `r` (`trainingReceipt`), settled as
 * the node takes it: once the ledger knows the record it settles (`trainingFraudSubject`: `r`'s,
 * or the one its trainer had recorded for the round) and `by` has pledged.
 */
function proofCarrying(
  name: string,
  hash: string,
  r: TrainingReceipt,
  by: Identity,
  confirmed: boolean,
): Evidence {
  return {
    name,
    ready: (ledger) =>
      ledger.trainingFraudSubject(r) !== undefined && ledger.hasStaked(by.publicKey),
    deliver: async (ledger) => {
      try {
        await ledger.settleTrainingFraud({
          receiptId: trainingReceiptId(r),
          trainingReceipt: r,
          fraudProofHash: hash,
          validator: by.publicKey,
          confirmed,
          reason: confirmed ? "opening_mismatch" : "ok",
        });
        return undefined;
      } catch (error) {
        if (error instanceof LedgerError) return error.code;
        throw error;
      }
    },
  };
}

const pledges = () => [pledge("pledge t1", t1, 10_000), pledge("pledge v1", v1, 1_000)];

Deno.test({
  name:
    "review s63: a confirmed proof about a trainer's recorded receipt pays its accuser whether the contradicting receipt came before it or after (60 orders)",
  fn: async () => {
    const evidence = [
      ...pledges(),
      trainingAnnounce("small", small, true),
      trainingAnnounce("big", big, true),
      trainingProof("proof small", proofHash(9), small, v1, true),
    ];
    const tried = await everyOrder(evidence, (n) => before(n, "small", "big"), {
      // The larger claim's lock, once; half the proved (smaller) claim's lock to the accuser.
      t1: { balance: 0, stake: 10_000 - 140, locked: 0 },
      v1: { balance: 40, stake: 1_000, locked: 0 },
    });
    assert.equal(tried, 60);
  },
});

Deno.test({
  name:
    "review s63: a confirmed proof about the contradicting receipt a ledger did not record pays its accuser there too (60 orders)",
  // Was held for its receipt forever in all 60 orders, the accuser unpaid.
  fn: async () => {
    const evidence = [
      ...pledges(),
      trainingAnnounce("small", small, true),
      trainingAnnounce("big", big, true),
      proofCarrying("proof small", proofHash(9), small, v1, true),
    ];
    const tried = await everyOrder(evidence, (n) => before(n, "big", "small"), {
      t1: { balance: 0, stake: 10_000 - 140, locked: 0 },
      v1: { balance: 40, stake: 1_000, locked: 0 },
    });
    assert.equal(tried, 60);
  },
});

Deno.test({
  name:
    "review s63: a refuted proof about either of a trainer's contradicting receipts costs its accuser the penalty in every order (120 orders)",
  // Was held forever, free, in the 60 orders where the other receipt came first.
  fn: async () => {
    const evidence = [
      ...pledges(),
      trainingAnnounce("small", small, true),
      trainingAnnounce("big", big, true),
      proofCarrying("proof small", proofHash(9), small, v1, false),
    ];
    const tried = await everyOrder(evidence, () => true, {
      t1: { balance: 0, stake: 10_000 - 140, locked: 0 },
      v1: { balance: 0, stake: 1_000 - 100, locked: 0 },
    });
    assert.equal(tried, 120);
  },
});

Deno.test({
  name:
    "review s63: a trainer whose larger contradicting receipt its stake could not back is slashed whether that receipt came first or second (6 orders)",
  // Refused `insufficient_stake` first, the larger claim was forgotten and the smaller paid (3 of
  // 6 orders). It is kept as the trainer's claim for the round now (`unrecorded_claim`,
  // `proof/_ledger_stake_refused.ts`, stop 64).
  fn: async () => {
    // 100 backs the smaller lock (80), not the larger (140).
    const evidence = [
      pledge("pledge t1", t1, 100),
      trainingAnnounce("small", small, true),
      trainingAnnounce("big", big, true),
    ];
    const tried = await everyOrder(evidence, () => true, {
      // Slashed its whole stake (the larger claim's lock, what is left of it at most), unpaid.
      t1: { balance: 0, stake: 0, locked: 0 },
      v1: { balance: 0, stake: 0, locked: 0 },
    });
    assert.equal(tried, 6);
  },
});
