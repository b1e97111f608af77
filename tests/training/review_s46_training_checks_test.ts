/**
 * Review s46, the checks of proof of training against a cheating trainer or coordinator. Each
 * test failed on the code before its fix.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Account } from "../../proof/ledger.ts";
import { gptModelId, seededGptWeights } from "../../training/gpt_weights.ts";
import {
  decodeFittingDelta,
  decodeInt8Delta,
  deltaHash,
  dequantizeDelta,
  encodeInt8Delta,
} from "../../training/int8_delta.ts";
import { signTrainingReceipt, type TrainingReceipt } from "../../training/training_receipt.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { challengeRun } from "./_challenge_run.ts";
import { honestStates, type LazyOptions, signStates } from "./_pot_lazy_trainers.ts";

const split = await testSplit();
const shard = split.shards[0];
const start = seededGptWeights(TEST_ARCH, 0);
const startModel = gptModelId(TEST_ARCH, start);

/**
 * A trainer that runs every step honestly and commits to its honest states, then sends its
 * pseudo-gradient quantised with each row's scale `factor` × the one the format defines
 * (`max|row| / 127`): every value is still within half its (coarser) scale of the honest one,
 * which is all the delta check asked, so with a factor of 300 every value rounds to 0 — an empty
 * delta, paid as H steps, that pulls the round's average back toward its start model. (A factor
 * near 2 doubles or zeroes each element at the trainer's choice: a steer.)
 */
async function coarseDeltaRun(steps: number, factor: number, identity: Identity) {
  const o: LazyOptions = {
    arch: TEST_ARCH,
    startModel,
    start,
    shard,
    steps,
    dataSeed: 5,
    hyper: TEST_HYPER,
    identity,
  };
  const honest = await honestStates(o, steps);
  const run = signStates(o, honest.states, honest.losses);
  const end = honest.states[steps].weights;
  const tensors = decodeInt8Delta(run.report.delta);
  for (const t of tensors) {
    const s = start.get(t.name)!.data;
    const e = end.get(t.name)!.data;
    const width = t.values.length / t.scales.length;
    for (let r = 0; r < t.scales.length; r++) {
      if (t.scales[r] === 0) continue;
      t.scales[r] = Math.fround(t.scales[r] * factor);
      for (let i = r * width; i < (r + 1) * width; i++) {
        t.values[i] = Math.round((s[i] - e[i]) / t.scales[r]);
      }
    }
  }
  const delta = encodeInt8Delta(tensors);
  const { sig: _sig, trainer: _trainer, ...unsigned } = run.report.receipt;
  const receipt: TrainingReceipt = signTrainingReceipt(
    { ...unsigned, deltaHash: deltaHash(delta), deltaBytes: delta.length },
    identity,
  );
  return { report: { receipt, delta }, trace: { ...run.trace, receipt } };
}

Deno.test("a trainer whose delta is quantised with a scale other than max|row| / 127 (an empty delta for honest work) is convicted (delta_mismatch), any node confirms it, and its ledger slashes it unpaid", async () => {
  const H = 2;
  const trainer = Identity.generate();
  const run = await coarseDeltaRun(H, 300, trainer);
  const dequantized = dequantizeDelta(decodeInt8Delta(run.report.delta));
  assert.ok(
    [...dequantized.values()].every((t) => t.data.every((x) => x === 0)),
    "the delta sent carries nothing",
  );
  // It fits the round (the coordinator takes it in): its challenge is what must catch it.
  decodeFittingDelta(run.report.delta, start);
  const validator = Identity.generate();
  const { challenge, check: r, independent } = await challengeRun(run, start, {
    steps: H,
    validator,
  });
  assert.ok(challenge.steps.includes(H - 1), "the last step is opened");
  assert.equal(r.ok ? "ok" : r.reason, "delta_mismatch", "the empty delta passed its challenge");
  if (r.ok || !r.proof || !independent) throw new Error("no proof");
  assert.equal(independent.reason, "confirmed");

  // The ledger: the receipt is credited (its round's outcome named it), the proof settles it.
  const dir = await Deno.makeTempDir({ prefix: "review-s46-" });
  const system = new ActorSystem({ name: "review-s46" });
  const clock = { t: 1_000_000 };
  try {
    const ledger = await system.spawn<ValidatorMessage>({
      name: "node/validator",
      factory: () =>
        new ValidatorActor({
          identity: validator,
          ledgerDir: `${dir}/ledger`,
          ledger: { now: () => clock.t },
          finalizeIntervalMs: 0,
          models: { get: () => Promise.resolve(undefined) },
        }),
    });
    const stake = 10_000_000;
    await ledger.ask({ type: "deposit", key: trainer.publicKey, amount: stake });
    const receipt = run.report.receipt;
    const terms = { round: receipt.round, startModel, steps: H };
    await ledger.ask({ type: "training_receipt", receipt, terms, credited: true });
    await ledger.ask({
      type: "training_fraud",
      receipt,
      fraudProofHash: independent.proofHash,
      validator: validator.publicKey,
      confirmed: independent.confirmed,
      reason: independent.reason,
    });
    clock.t += 60 * 60 * 1000; // past the challenge window
    await ledger.ask({ type: "finalize" });
    const account = await ledger.ask<Account>({ type: "account", key: trainer.publicKey });
    assert.equal(account.balance, 0, "the empty delta is not paid");
    assert.ok(account.stake < stake, "the trainer is slashed");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
