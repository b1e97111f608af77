/**
 * Review s62: the two orders the convergence property test (`review_s62_convergence_test.ts`)
 * found still ending otherwise, both settled now (docs/PROOF.md, "Same evidence, any order, same
 * ledger"): the accuser's share against one of a worker's two contradicting receipts is the
 * proved claim's in every order (`review_s62_equivocation_reward_test.ts`), and a proof about a
 * receipt another worker's holds the job from settles against that receipt itself
 * (`review_s62_unrecorded_proof_test.ts`). Each feeds the same signed evidence to fresh ledgers
 * in the smallest orders that showed it and asserts they end alike; both failed before.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Ledger } from "../../proof/ledger.ts";
import { receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";
import {
  announce,
  type Evidence,
  feed,
  parties,
  pledge,
  proof,
  seeded,
  signedProof,
  WINDOW,
} from "./review_s62_convergence_world.ts";

async function accounts(order: Evidence[], names: (keyof typeof parties)[]) {
  let out: Record<string, unknown> = {};
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(90), {
      now: () => clock.t,
      economics: { challengeWindowMs: WINDOW },
    });
    const log = await feed(ledger, clock, order);
    out = Object.fromEntries(names.map((n) => [n, ledger.account(parties[n].publicKey)]));
    out.refused = log.refused;
    out.neverReady = log.neverReady;
    await ledger.close();
  });
  return out;
}

Deno.test({
  name:
    "divergence 1: a confirmed proof against one of a worker's two contradicting receipts rewards its accuser 0, 100 or 300 depending on the order",
  fn: async () => {
    const { w2, v1 } = parties;
    const small = receipt(6205, 10, w2);
    const big = resigned(small, { tokenCount: 30, outputHash: "77".repeat(32) }, w2);
    const hash = signedProof(small, 6205, v1);
    const p = [pledge("pledge w2", w2, 100_000), pledge("pledge v1", v1, 1_000)];
    const s = announce("small", small, true);
    const b = announce("big", big, true);
    const pr = proof("proof on small", hash, small, v1, true);
    const a = await accounts([...p, s, b, pr], ["w2", "v1"]);
    const c = await accounts([...p, s, pr, b], ["w2", "v1"]);
    const d = await accounts([...p, b, pr], ["w2", "v1"]);
    console.log({ "small → big → proof": a, "small → proof → big": c, "big → proof": d });
    assert.deepEqual(c.v1, a.v1, "small → proof → big vs small → big → proof");
    assert.deepEqual(d.v1, a.v1, "big → proof vs small → big → proof");
  },
});

Deno.test({
  name:
    "divergence 2: a proof about a receipt a ledger never recorded (another worker's holds the job) settles only where it came first",
  fn: async () => {
    const { w1, w2, w3, copier, v2 } = parties;
    // A job its requester assigned to w1 and w2; w1 cheated and v2 proves it.
    const g1 = receipt(6207, 7, w1);
    const g2 = receipt(6207, 7, w2);
    const hash = signedProof(g1, 6207, v2);
    const p = [pledge("pledge w1", w1, 100_000), pledge("pledge w2", w2, 100_000)];
    const pv = pledge("pledge v2", v2, 1_000);
    const pr = proof("proof on w1", hash, g1, v2, true);
    const first = await accounts(
      [...p, pv, announce("w1", g1, true), announce("w2", g2, true), pr],
      [
        "w1",
        "v2",
      ],
    );
    const second = await accounts(
      [...p, pv, announce("w2", g2, true), announce("w1", g1, true), pr],
      [
        "w1",
        "v2",
      ],
    );
    console.log({ "w1 → w2 → proof": first, "w2 → w1 → proof": second });
    // The same for a false accusation of a copier's receipt: it costs the accuser only where the
    // copier's receipt came first (and was recorded).
    const h = receipt(6208, 9, w3);
    const hCopy = receipt(6208, 9, copier);
    const falseProof = proof(
      "false proof on copier",
      signedProof(hCopy, 6208, v2),
      hCopy,
      v2,
      false,
    );
    const pc = [pledge("pledge w3", w3, 100_000), pledge("pledge copier", copier, 10_000), pv];
    const copierFirst = await accounts(
      [...pc, announce("copier", hCopy, false), announce("w3", h, true), falseProof],
      ["v2"],
    );
    const workerFirst = await accounts(
      [...pc, announce("w3", h, true), announce("copier", hCopy, false), falseProof],
      ["v2"],
    );
    console.log({
      "copier → w3 → false proof": copierFirst,
      "w3 → copier → false proof": workerFirst,
    });
    assert.deepEqual(second.w1, first.w1, "the cheat's stake");
    assert.deepEqual(second.v2, first.v2, "the accuser's reward");
    assert.deepEqual(workerFirst.v2, copierFirst.v2, "the false accuser's penalty");
  },
});
