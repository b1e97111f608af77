/**
 * A connecting peer's catch-up (`actors/_catch_up.ts`) is bounded, and convictions are kept apart
 * from verdicts: however many verdicts a start applies, they never push a conviction out, and
 * convictions are sent first. (That a peer connecting later is sent them, and takes each once:
 * `tests/network/catch_up_test.ts`; for training convictions, `tests/training/training_catch_up_test.ts`.)
 */
import assert from "node:assert/strict";
import {
  CatchUp,
  MAX_CATCH_UP_FRAUD_PROOF_BYTES,
  MAX_CATCH_UP_FRAUD_PROOFS,
  MAX_CATCH_UP_VERDICTS,
} from "../../actors/_catch_up.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signVerdict, type Verdict } from "../../protocols/verdict.ts";
import { falseProof, proveOn, START, textJob } from "./_validator_fixture.ts";
import { TEST_ARCH } from "../training/_fixtures.ts";
import { lossFraud } from "../training/_loss_fraud.ts";

const [worker, accuser, requester] = Array.from({ length: 3 }, Identity.generate);
const { receipt } = await proveOn(textJob(requester, "catch-up"), worker);
const base = falseProof(receipt, accuser);
/** Only the receipt's id and the proof's size matter to the catch-up: one receipt per `i`. */
const proofAbout = (i: number, padding = 0): FraudProof => ({
  ...base,
  receipt: { ...base.receipt, jobId: `job-${i}` },
  chunks: padding === 0 ? [] : [{ index: 0, tokens: new Uint8Array(padding), path: [] }],
});
const verdict = (i: number): Verdict =>
  signVerdict({
    v: 1,
    subject: "inference",
    subjectId: `receipt-${i}`,
    target: worker.publicKey,
    outcome: "invalid",
    reason: "proof_unavailable",
    issuedAt: START,
  }, accuser);
const until = START + 1_000;

Deno.test("verdicts never push a conviction out of the catch-up, and convictions are sent first", () => {
  const kept = new CatchUp();
  for (let i = 0; i < MAX_CATCH_UP_FRAUD_PROOFS; i++) {
    kept.add({ kind: "fraud_proof", proof: proofAbout(i) }, until);
  }
  for (let i = 0; i < 3 * MAX_CATCH_UP_VERDICTS; i++) {
    kept.add({ kind: "verdict", verdict: verdict(i) }, until);
  }
  const items = kept.current(START);
  const proofs = items.filter((item) => item.kind === "fraud_proof");
  assert.equal(proofs.length, MAX_CATCH_UP_FRAUD_PROOFS);
  assert.equal(items.length, MAX_CATCH_UP_FRAUD_PROOFS + MAX_CATCH_UP_VERDICTS);
  assert.ok(items.slice(0, proofs.length).every((item) => item.kind === "fraud_proof"));
  // The oldest verdicts went first.
  const first = items[proofs.length];
  assert.equal(
    first.kind === "verdict" && first.verdict.subjectId,
    `receipt-${2 * MAX_CATCH_UP_VERDICTS}`,
  );
});

Deno.test("past its bounds the catch-up drops its oldest convictions: by count, and by bytes", () => {
  const kept = new CatchUp();
  for (let i = 0; i <= MAX_CATCH_UP_FRAUD_PROOFS; i++) {
    kept.add({ kind: "fraud_proof", proof: proofAbout(i) }, until);
  }
  const ids = (items: ReturnType<CatchUp["current"]>) =>
    items.map((item) => item.kind === "fraud_proof" ? receiptId(item.proof.receipt) : "");
  let items = kept.current(START);
  assert.equal(items.length, MAX_CATCH_UP_FRAUD_PROOFS);
  assert.ok(!ids(items).includes(receiptId(proofAbout(0).receipt)), "the oldest stayed");

  const big = new CatchUp();
  const share = 1 << 20; // a frame's worth each
  const fit = Math.floor(MAX_CATCH_UP_FRAUD_PROOF_BYTES / share);
  for (let i = 0; i <= fit; i++) {
    big.add({ kind: "fraud_proof", proof: proofAbout(i, share) }, until);
  }
  items = big.current(START);
  assert.ok(items.length < fit, `${items.length} proofs of 1 MiB kept`);
  assert.ok(ids(items).includes(receiptId(proofAbout(fit).receipt)), "the newest was dropped");
});

Deno.test("the catch-up keeps one conviction per receipt, and only until its window closes", () => {
  const kept = new CatchUp();
  kept.add({ kind: "fraud_proof", proof: proofAbout(1) }, until);
  kept.add({ kind: "fraud_proof", proof: { ...proofAbout(1), issuedAt: 2 } }, until);
  assert.equal(kept.current(START).length, 1);
  assert.deepEqual(kept.current(until + 1), []);
  assert.deepEqual(kept.current(START), [], "forgotten once past its window");
});

Deno.test("training convictions are kept with inference ones under the same bounds, before the verdicts, their accusers' pledges first", () => {
  const trainingAccuser = Identity.generate();
  const training = lossFraud("bafy-start", trainingAccuser);
  const kept = new CatchUp();
  kept.add({ kind: "verdict", verdict: verdict(0) }, until);
  kept.add({ kind: "fraud_proof", proof: proofAbout(0) }, until);
  kept.add({ kind: "training_fraud_proof", body: { proof: training, arch: TEST_ARCH } }, until);
  // One per receipt, as for inference: another accuser's proof of the same receipt is not kept.
  const other = lossFraud("bafy-start", Identity.generate());
  kept.add({
    kind: "training_fraud_proof",
    body: { proof: { ...other, receipt: training.receipt }, arch: TEST_ARCH },
  }, until);
  assert.deepEqual(kept.current(START).map((item) => item.kind), [
    "fraud_proof",
    "training_fraud_proof",
    "verdict",
  ]);
  assert.deepEqual(kept.accusers(START), [accuser.publicKey, trainingAccuser.publicKey]);
  // The count bound is shared: a flood of inference convictions of one worker pushes out its
  // own, not the trainer's.
  for (let i = 1; i <= MAX_CATCH_UP_FRAUD_PROOFS; i++) {
    kept.add({ kind: "fraud_proof", proof: proofAbout(i) }, until);
  }
  const items = kept.current(START);
  assert.equal(items.filter((item) => item.kind !== "verdict").length, MAX_CATCH_UP_FRAUD_PROOFS);
  assert.ok(items.some((item) => item.kind === "training_fraud_proof"), "the trainer's went");
});
