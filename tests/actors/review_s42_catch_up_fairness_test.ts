/**
 * Review s42: the catch-up's convictions (`actors/_catch_up.ts`) are bounded (64 proofs, 8 MiB),
 * the oldest dropped first. A conviction is cheap to make on purpose: a staked key's receipt that
 * contradicts its own job is challenged on arrival by every validator and convicted without a
 * model, for a slash of 20 × its reward (a one-token receipt: 20 credits). One worker key's run of
 * such convictions — 64 small ones, or 8 of about a frame each — pushed every other conviction
 * out, and a ledger that connected afterwards paid the cheat the rest of the network slashed.
 * Past a bound, the proof dropped is one of the worker holding the most (the longest kept of its
 * own), as the held proofs do per accuser (`_validator_memory.ts`).
 */
import assert from "node:assert/strict";
import {
  CatchUp,
  MAX_CATCH_UP_FRAUD_PROOF_BYTES,
  MAX_CATCH_UP_FRAUD_PROOFS,
} from "../../actors/_catch_up.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { falseProof, proveOn, START, textJob } from "./_validator_fixture.ts";

const [honestCheat, flooder, accuser, requester] = Array.from({ length: 4 }, Identity.generate);
const until = START + 1_000;

/** A conviction of `worker`'s receipt `i` (only the receipt's id, worker and size matter). */
const baseOf = async (worker: Identity) =>
  falseProof((await proveOn(textJob(requester, "s42"), worker)).receipt, accuser);
const flooderBase = await baseOf(flooder);
const cheatBase = await baseOf(honestCheat);
const about = (base: FraudProof, i: number, padding = 0): FraudProof => ({
  ...base,
  receipt: { ...base.receipt, jobId: `job-${i}` },
  chunks: padding === 0 ? [] : [{ index: 0, tokens: new Uint8Array(padding), path: [] }],
});
const keptIds = (kept: CatchUp) =>
  kept.current(START).flatMap((item) =>
    item.kind === "fraud_proof" ? [receiptId(item.proof.receipt)] : []
  );

Deno.test("review s42: one worker's many convictions do not push another worker's conviction out of the catch-up", () => {
  const kept = new CatchUp();
  const cheat = about(cheatBase, 1);
  kept.add({ kind: "fraud_proof", proof: cheat }, until);
  for (let i = 0; i < 2 * MAX_CATCH_UP_FRAUD_PROOFS; i++) {
    kept.add({ kind: "fraud_proof", proof: about(flooderBase, 1_000 + i) }, until);
  }
  const ids = keptIds(kept);
  assert.ok(ids.length <= MAX_CATCH_UP_FRAUD_PROOFS);
  assert.ok(
    ids.includes(receiptId(cheat.receipt)),
    "one worker's convictions pushed another worker's conviction out of the catch-up",
  );
});

Deno.test("review s42: one worker's frame-sized convictions do not push another worker's conviction out by bytes", () => {
  const kept = new CatchUp();
  const cheat = about(cheatBase, 2);
  kept.add({ kind: "fraud_proof", proof: cheat }, until);
  const big = MAX_CATCH_UP_FRAUD_PROOF_BYTES / 8; // about a frame each: eight fill the bound
  for (let i = 0; i < 9; i++) {
    kept.add({ kind: "fraud_proof", proof: about(flooderBase, 2_000 + i, big) }, until);
  }
  assert.ok(
    keptIds(kept).includes(receiptId(cheat.receipt)),
    "nine frame-sized convictions of one worker pushed another worker's conviction out",
  );
});
