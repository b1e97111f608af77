/**
 * The hold of fraud proofs waiting for their accuser's pledge on its own
 * (`actors/_pledge_held_proofs.ts`): one per accuser and receipt, bounded per accuser, per
 * receipt and in all, the longest held pushed out first, and taken whole when the pledge comes.
 * (What a validator does with it: `tests/actors/ledger_order_pledge_test.ts`.)
 */
import assert from "node:assert/strict";
import {
  MAX_PLEDGE_HELD_PER_ACCUSER,
  MAX_PLEDGE_HELD_PER_RECEIPT,
  MAX_PLEDGE_HELD_PROOFS,
  PledgeHeldProofs,
} from "../../actors/_pledge_held_proofs.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Receipt } from "../../protocols/receipt.ts";

/** An accuser's key (32 bytes, `n` in the first). */
const key = (n: number) => new Uint8Array(32).fill(0).map((_, i) => i === 0 ? n : i);
/** A receipt (only its fields matter here: the hold never verifies). */
const receipt = (n: number) => ({ jobId: `job-${n}`, worker: key(255) }) as unknown as Receipt;
/** `accuser`'s proof about receipt `r`, hashed `hash`. */
const held = (accuser: number, r: number, hash = `${accuser}/${r}`) => ({
  proof: { receipt: receipt(r), validator: key(accuser) } as unknown as FraudProof,
  hash,
});
const accusers = (h: PledgeHeldProofs) => h.all().map((p) => p.proof.validator[0]);

Deno.test("one proof per accuser and receipt: a copy, or the same accusation re-signed, is not held", () => {
  const hold = new PledgeHeldProofs();
  assert.equal(hold.hold(held(1, 1)), true);
  assert.equal(hold.hold(held(1, 1)), false, "the same hash");
  assert.equal(hold.hold(held(1, 1, "re-signed")), false, "another hash, the same accusation");
  assert.equal(hold.size, 1);
});

Deno.test("an accuser's ninth held proof pushes out its own longest held, not another accuser's", () => {
  const hold = new PledgeHeldProofs();
  hold.hold(held(9, 100));
  for (let r = 0; r <= MAX_PLEDGE_HELD_PER_ACCUSER; r++) assert.ok(hold.hold(held(1, r)));
  assert.equal(hold.size, MAX_PLEDGE_HELD_PER_ACCUSER + 1);
  assert.equal(hold.holds("1/0"), false, "its first went");
  assert.equal(hold.holds("9/100"), true);
});

Deno.test("a receipt's fifth held proof pushes out that receipt's longest held: a finder arriving after a flood about its receipt is held", () => {
  const hold = new PledgeHeldProofs();
  for (let a = 0; a < 10; a++) hold.hold(held(a, 7));
  assert.equal(hold.size, MAX_PLEDGE_HELD_PER_RECEIPT);
  assert.ok(hold.hold(held(200, 7)));
  assert.equal(hold.holds("200/7"), true);
  assert.deepEqual(accusers(hold), [7, 8, 9, 200]);
});

Deno.test("past the total, the longest held goes; taken by accuser, in arrival order, and forgotten", () => {
  const hold = new PledgeHeldProofs();
  for (let i = 0; i < MAX_PLEDGE_HELD_PROOFS + 10; i++) hold.hold(held(i % 250, 1000 + i));
  assert.equal(hold.size, MAX_PLEDGE_HELD_PROOFS);
  assert.equal(hold.holds("0/1000"), false);
  assert.equal(
    hold.holds(`${MAX_PLEDGE_HELD_PROOFS + 9}/${1000 + MAX_PLEDGE_HELD_PROOFS + 9}`),
    true,
  );
  hold.hold(held(50, 1, "late"));
  const taken = hold.take(toHex(key(50)));
  assert.deepEqual(taken.map((t) => t.hash), ["50/1050", "late"]);
  assert.equal(hold.take(toHex(key(50))).length, 0);
  assert.equal(hold.size, MAX_PLEDGE_HELD_PROOFS - 2, "the late one pushed out the next oldest");
});
