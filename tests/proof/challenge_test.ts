import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { sha256Hex } from "../../protocols/hash.ts";
import { challengeTicket, shouldChallenge, verifyChallengeTicket } from "../../proof/challenge.ts";

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
