/**
 * One accuser's refuted and confirmed fraud proofs of one cheat receipt settle the same in either
 * order: each of its proofs settles, so the refuted one costs the penalty and the confirmed one
 * slashes the cheat, whichever a ledger hears first (review s76, F2: the refuted one, first, used
 * up its accuser's one accusation of the receipt, its confirmed proof was refused
 * `repeated_accusation`, and the cheat was paid and kept its stake in that ledger).
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger } from "../../proof/ledger.ts";
import { receipt } from "./_ledger_fixtures.ts";
import {
  announce,
  type Evidence,
  feed,
  parties,
  pledge,
  proof,
  signedProof,
  WINDOW,
} from "./_convergence_world.ts";

const { w1, v1 } = parties;
const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
const WORKER_STAKE = 100_000;
const ACCUSER_STAKE = 10_000;
const cheat = receipt(7201, 50, w1);
const base = [
  pledge("pledge w1", w1, WORKER_STAKE),
  pledge("pledge v1", v1, ACCUSER_STAKE),
  announce("cheat", cheat, true),
];
/** v1's refuted proof (another proof hash: `issuedAt` 7202) and its confirmed one. */
const refuted = proof("v1 refuted", signedProof(cheat, 7202, v1), cheat, v1, false);
const confirmed = proof("v1 confirmed", signedProof(cheat, 7201, v1), cheat, v1, true);

/** What a fresh ledger ends with after `order`, every window closed. */
async function endOf(order: Evidence[]) {
  const dir = await Deno.makeTempDir();
  const clock = { t: 1_000 };
  const ledger = await Ledger.open(dir, Identity.generate(), {
    now: () => clock.t,
    economics: { challengeWindowMs: WINDOW },
  });
  try {
    const log = await feed(ledger, clock, order);
    return {
      refused: log.refused,
      w1: ledger.account(w1.publicKey),
      v1: ledger.account(v1.publicKey),
    };
  } finally {
    await ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("one accuser's refuted then confirmed proof of a cheat receipt: the cheat is slashed and the accuser charged and rewarded as in the other order", async () => {
  const falseFirst = await endOf([...base, refuted, confirmed]);
  const confirmedFirst = await endOf([...base, confirmed, refuted]);
  assert.deepEqual(falseFirst.refused, {}, "no proof refused, false first");
  assert.deepEqual(confirmedFirst.refused, {}, "no proof refused, confirmed first");
  // Slashed, unpaid, in both orders.
  assert.equal(falseFirst.w1.balance, 0);
  assert.ok(falseFirst.w1.stake < WORKER_STAKE, "the cheat is slashed with the false proof first");
  assert.deepEqual(falseFirst.w1, confirmedFirst.w1, "the cheat ends the same");
  // The accuser pays for its false proof and earns its share of the slash, in both orders.
  assert.equal(falseFirst.v1.stake, ACCUSER_STAKE - PENALTY);
  assert.ok(falseFirst.v1.balance > 0, "rewarded for the confirmed proof");
  assert.deepEqual(falseFirst.v1, confirmedFirst.v1, "the accuser ends the same");
});
