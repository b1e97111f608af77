/**
 * The budget of fraud-proof checks not backed by their accuser's stake on its own
 * (`actors/_unbacked_checks.ts`): a few per receipt ever, whatever the number of keys, a cap in
 * flight, and one per accuser and receipt at a time. (What a validator does with it:
 * `tests/actors/ledger_order_pledge_test.ts`, `tests/actors/validator_fraud_proof_intake_test.ts`.)
 */
import assert from "node:assert/strict";
import {
  MAX_UNBACKED_CHECKS_IN_FLIGHT,
  MAX_UNBACKED_CHECKS_PER_RECEIPT,
  UnbackedChecks,
} from "../../actors/_unbacked_checks.ts";

/** The receipts' window end (ledger clock, ms): these tests never pass it. */
const UNTIL = 1_000;

Deno.test("a receipt takes a few unbacked checks ever, however many keys accuse it and whether or not they ended", () => {
  const checks = new UnbackedChecks();
  for (let i = 0; i < MAX_UNBACKED_CHECKS_PER_RECEIPT; i++) {
    assert.equal(checks.available("r", `k${i}`), true);
    checks.take("r", `k${i}`, `h${i}`, UNTIL);
    checks.done(`h${i}`);
  }
  assert.equal(checks.available("r", "fresh-key"), false);
  assert.equal(checks.available("other", "fresh-key"), true);
  assert.equal(checks.inFlight, 0);
});

Deno.test("unbacked checks in flight are capped over every receipt, and one accuser's copy of an accusation waits for the first", () => {
  const checks = new UnbackedChecks();
  checks.take("r0", "k", "h0", UNTIL);
  assert.equal(checks.available("r0", "k"), false, "the same accuser and receipt, in flight");
  assert.equal(checks.available("r0", "j"), true);
  for (let i = 1; i < MAX_UNBACKED_CHECKS_IN_FLIGHT; i++) checks.take(`r${i}`, "k", `h${i}`, UNTIL);
  assert.equal(checks.inFlight, MAX_UNBACKED_CHECKS_IN_FLIGHT);
  assert.equal(checks.available("new", "j"), false);
  checks.done("h3");
  assert.equal(checks.available("new", "j"), true);
});
