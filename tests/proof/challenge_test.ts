/**
 * Why a worker does not cheat: the challenge coin each validator draws per receipt
 * (`proof/challenge.ts`) and the economics that make cheating lose in expectation
 * (`proof/economics.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { sha256Hex } from "../../protocols/hash.ts";
import { challengeTicket, shouldChallenge, verifyChallengeTicket } from "../../proof/challenge.ts";
import {
  cheatingAdvantage,
  cheatingNeverPays,
  DEFAULT_ECONOMICS,
  minimumSlashMultiplier,
} from "../../proof/economics.ts";

Deno.test("challenge: the coin is deterministic per (validator, receipt), verifiable, and ~p often heads", () => {
  const v = Identity.generate();
  const id = sha256Hex(new Uint8Array([1]));
  assert.equal(challengeTicket(v, id).draw, challengeTicket(v, id).draw);
  let heads = 0;
  const n = 2000;
  for (let i = 0; i < n; i++) {
    if (shouldChallenge(v, sha256Hex(new Uint8Array([i, i >> 8])), 0.1)) heads++;
  }
  assert.ok(heads > n * 0.07 && heads < n * 0.13, `heads ${heads}`);
  const t = challengeTicket(v, id);
  assert.equal(verifyChallengeTicket(v.publicKey, t, 1), true);
  assert.equal(verifyChallengeTicket(v.publicKey, t, t.draw), false);
  assert.equal(verifyChallengeTicket(Identity.generate().publicKey, t, 1), false);
});

Deno.test("challenge: another validator's coin for the same receipt is independent", () => {
  const id = "ab".repeat(32);
  const draws = new Set(
    Array.from({ length: 5 }, () => challengeTicket(Identity.generate(), id).draw),
  );
  assert.equal(draws.size, 5);
});

Deno.test("economics: with the node's defaults cheating loses in expectation for any saving ≤ reward", () => {
  assert.ok(cheatingNeverPays(DEFAULT_ECONOMICS));
  for (const reward of [1, 64, 10_000]) {
    for (const frac of [0, 0.1, 0.5, 0.9, 1]) {
      const adv = cheatingAdvantage(DEFAULT_ECONOMICS, { reward, costSaved: frac * reward });
      assert.ok(adv < 0, `reward ${reward} saving ${frac}: ${adv}`);
    }
  }
});

Deno.test("economics: the formula matches a direct expectation and flips sign below the minimum slash", () => {
  const p = 0.1, m = 20, R = 50, C = 40;
  const direct = (1 - p) * R - p * m * R - (R - C);
  assert.ok(
    Math.abs(cheatingAdvantage({ ...DEFAULT_ECONOMICS }, { reward: R, costSaved: C }) - direct) <
      1e-9,
  );
  const mMin = minimumSlashMultiplier(p);
  assert.ok(Math.abs(mMin - 9) < 1e-9);
  assert.ok(!cheatingNeverPays({ ...DEFAULT_ECONOMICS, slashMultiplier: mMin - 0.5 }));
  assert.ok(cheatingNeverPays({ ...DEFAULT_ECONOMICS, slashMultiplier: mMin + 0.5 }));
  assert.ok(!cheatingNeverPays({ ...DEFAULT_ECONOMICS, detectionRate: 0.4 }));
});
