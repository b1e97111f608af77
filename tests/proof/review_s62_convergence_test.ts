/**
 * Review s62 (ledger): "every honest node's ledger settles the same evidence the same way". A
 * property test: one world of signed evidence (`review_s62_convergence_world.ts`: pledges,
 * receipts with and without their assignments, `valid` verdicts, confirmed and refuted fraud
 * proofs, a "proof withheld" claim, equivocation, a double assignment, a copier, a proof about a
 * variant, an accuser short of stake, finalize ticks) is fed to fresh ledgers, each owned by
 * another key, in 20 seeded orders, and each ends, once every window has closed, with the same
 * balances, stakes, locks, convictions, receipt statuses and verdicts as the canonical order.
 *
 * Orders assumed (what the node in front of a ledger guarantees, nothing more): a receipt is
 * handed to the ledger only once its worker's pledge is recorded, and a fraud proof only once its
 * receipt (or a variant its worker signed) and its accuser's pledge are (the ValidatorActor holds
 * them until then: `actors/_held_evidence.ts`, `actors/_pledge_held_proofs.ts`); everything
 * arrives inside the windows of the receipts it is about. Any other order is allowed: pledges
 * after receipts and proofs, the assigned copy before or after the bare announcement, verdicts
 * before their receipt, proofs before the contradicting receipt, finalize ticks anywhere.
 *
 * What may differ, by design, and is left out of the comparison: which of a job's several signed
 * claims a ledger records (the first to come: two variants of one worker, two workers a requester
 * assigned, a copier's and the worker's) and what it locked while open — who ended paid or
 * slashed is compared, and a record that ended earning nothing (`final`, credit 0) is not listed;
 * and a `fraud` record's `credit` (unpaid whatever it was). A proof that arrives after its
 * receipt's window is the one order a ledger is meant to settle differently: the second test pins
 * that. Two orders that still end otherwise are left out of the world (docs/PROOF.md, "Same
 * evidence, any order, same ledger"): a confirmed proof against one of a worker's two
 * contradicting receipts, and a proof about a receipt another worker's holds the job against.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Ledger } from "../../proof/ledger.ts";
import { prng } from "../_prng.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { assigned, receipt, withLedgerDir, withoutFsync } from "./_ledger_fixtures.ts";
import {
  buildWorld,
  type EndState,
  endState,
  type Evidence,
  feed,
  type FeedLog,
  parties,
  seeded,
  shuffled,
  signedProof,
  WINDOW,
  type World,
} from "./review_s62_convergence_world.ts";

/** The seeds of the orders tried: fixed, so every run tries the same 20. */
const SEEDS = Array.from({ length: 20 }, (_, i) => 6200 + i);

/** A fresh ledger owned by `owner`, fed `order`; its end state, live and replayed from disk. */
async function settle(
  world: World,
  order: readonly Evidence[],
  owner: number,
): Promise<{ state: EndState; log: FeedLog }> {
  let out: { state: EndState; log: FeedLog } | undefined;
  await withLedgerDir(async (dir, clock) => {
    const options = {
      now: () => clock.t,
      economics: { challengeWindowMs: WINDOW },
      checkpointEvery: 0,
    };
    const identity = seeded(owner);
    let ledger = await Ledger.open(dir, identity, options);
    const log = await feed(ledger, clock, order);
    const state = endState(ledger, world);
    await ledger.close();
    ledger = await Ledger.open(dir, identity, options);
    assert.deepEqual(endState(ledger, world), state, "replayed from genesis alike");
    await ledger.close();
    out = { state, log };
  });
  return out!;
}

Deno.test("review s62: honest ledgers that get the same evidence in 20 different orders end with the same balances, stakes, slashes and receipt statuses", async () => {
  const world = buildWorld();
  await withoutFsync(async () => {
    const reference = await settle(world, world.evidence, 100);
    // The canonical order's outcome, spelled out: the property is not "all equally wrong".
    assert.deepEqual(reference.state.accounts, {
      // A 10 + D 5 + K 4 paid; G (double assignment) and I (convicted) not.
      // Stake: I's lock (20 × 6 = 120) slashed.
      w1: { balance: 19, stake: 100_000 - 120, locked: 0 },
      // B's lock (240) and E's larger claim (20 × 30 = 600) slashed.
      w2: { balance: 0, stake: 100_000 - 240 - 600, locked: 0 },
      // C 8 + F 20 + H 9 + J 3 + M 9; L's lock (20 × 11 = 220) slashed.
      w3: { balance: 49, stake: 100_000 - 220, locked: 0 },
      // M's larger claim's lock (20 × 30 = 600) slashed, once, for its equivocation.
      copier: { balance: 0, stake: 10_000 - 600, locked: 0 },
      // Half of B's and L's slashes; its false proof of F costs 100.
      v1: { balance: 120 + 110, stake: 1_000 - 100, locked: 0 },
      // Half of I's slash; its false proof of B costs 100.
      v2: { balance: 60, stake: 1_000 - 100, locked: 0 },
      v3: { balance: 0, stake: 0, locked: 0 },
      requester: { balance: 0, stake: 0, locked: 0 },
    }, JSON.stringify(reference.state.accounts));
    for (const [i, seed] of SEEDS.entries()) {
      const order = shuffled(world.evidence, prng(seed));
      const got = await settle(world, order, 101 + i);
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

Deno.test("review s62: a proof that reaches a ledger after its receipt's window is the one order meant to end otherwise (the cheat paid there), while one taken inside the window and checked after it ends as inside", async () => {
  const { w2, v1 } = parties;
  const cheat = receipt(6221, 12, w2);
  const id = receiptId(cheat);
  const hash = signedProof(cheat, 6221, v1);
  /** A fresh ledger with both pledges and the cheat's receipt, `run` on it: both accounts. */
  const outcome = async (run: (ledger: Ledger, clock: { t: number }) => Promise<void>) => {
    let out: unknown;
    await withLedgerDir(async (dir, clock) => {
      const ledger = await Ledger.open(dir, seeded(120), {
        now: () => clock.t,
        economics: { challengeWindowMs: WINDOW },
      });
      await ledger.recordPledge(signStakePledge(w2, 10_000, 0));
      await ledger.recordPledge(signStakePledge(v1, 1_000, 0));
      await ledger.recordReceipt(cheat, assigned(cheat));
      await run(ledger, clock);
      out = {
        worker: ledger.account(w2.publicKey),
        accuser: ledger.account(v1.publicKey),
        status: ledger.receipt(id)?.status,
      };
      await ledger.close();
    });
    return out;
  };
  const settlement = {
    receiptId: id,
    receipt: cheat,
    fraudProofHash: hash,
    validator: v1.publicKey,
  };
  const convicted = {
    worker: { balance: 0, stake: 10_000 - 240, locked: 0 },
    accuser: { balance: 120, stake: 1_000, locked: 0 },
    status: "fraud",
  };

  const inside = await outcome(async (ledger, clock) => {
    clock.t += WINDOW / 2;
    await ledger.settleFraud({ ...settlement, confirmed: true, reason: "fingerprint_mismatch" });
    clock.t += WINDOW;
    await ledger.finalizeDue();
  });
  assert.deepEqual(inside, convicted);

  // Expected to differ: the window closed before the proof came, so the receipt was paid and
  // the proof is refused (`not_pending`; as on every ledger it reaches that late: a payment is
  // not reopened, and the node does not check a proof about a closed receipt past its window).
  const late = await outcome(async (ledger, clock) => {
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    await assert.rejects(
      ledger.settleFraud({ ...settlement, confirmed: true, reason: "fingerprint_mismatch" }),
      (e: Error & { code?: string }) => e.code === "not_pending",
    );
  });
  assert.deepEqual(late, {
    worker: { balance: 12, stake: 10_000, locked: 0 },
    accuser: { balance: 0, stake: 1_000, locked: 0 },
    status: "final",
  });

  // Taken inside the window, its check ending after it: the receipt is held back from payment
  // (the validator's `finalizeDue(held)`) and the proof settles as it did inside.
  const checkedLate = await outcome(async (ledger, clock) => {
    clock.t += WINDOW / 2;
    const takenAt = clock.t;
    clock.t += WINDOW;
    assert.deepEqual(await ledger.finalizeDue((r) => r === id), []);
    await ledger.settleFraud({
      ...settlement,
      confirmed: true,
      reason: "fingerprint_mismatch",
      takenAt,
    });
    await ledger.finalizeDue();
  });
  assert.deepEqual(checkedLate, convicted);
});
