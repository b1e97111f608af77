/**
 * The claims of docs/PROOF.md, "What is detected, and what is not" and "Threat model", held against
 * a real cheating worker and the real validator's ledger. Each cheat the doc says is detected is
 * proved by a worker, announced to a ValidatorActor with its job and the requester's assignment,
 * challenged (coin 1), and must end `fraud` in that ledger: not paid, the locked slash taken, the
 * validator rewarded. Honest variants the doc says are never flagged (top logprobs asked, stop
 * strings, a `maxTokens` cut) must be paid.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId, signReceipt, textOutputHash } from "../../protocols/receipt.ts";
import { type ProvedJob, proveJob } from "../../proof/prover.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { commitmentRoot, packTokens, unpackTokens } from "../../proof/commitment.ts";
import type { ProofData } from "../../proof/commitment.ts";
import { validateReceipt } from "../../proof/validation.ts";
import {
  HONEST_MODELS,
  ledgerReads,
  spawnValidator,
  textJob,
} from "../actors/_validator_fixture.ts";
import { loadCalibratedFixture, loadFixture, manualStream } from "./_models.ts";
import type { ReceiptHandled } from "../../actors/validator_actor.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { isSteering, SteeringRecord } from "../../proof/steering.ts";
import { proveSteering, steeringJob, steeringModel, WIDE_SAMPLING } from "./_steering_fixtures.ts";

const f = await loadFixture();
const WORKER_STAKE = 10_000;
const VALIDATOR_STAKE = 1_000;
const START = 1_000_000;

/** The credit and the slash of one receipt of `tokens` tokens under the default economics. */
function priceOf(tokens: number) {
  const credit = tokens * DEFAULT_ECONOMICS.defaultTokenPrice;
  return { credit, slash: credit * DEFAULT_ECONOMICS.slashMultiplier };
}

/** Re-commit `proof` and re-sign the receipt over it (and over `output` when given). */
function resign(run: ProvedJob, proof: ProofData, worker: Identity, output?: string): ProvedJob {
  const { sig: _s, worker: _w, ...unsigned } = run.receipt;
  const receipt = signReceipt({
    ...unsigned,
    ...(output === undefined ? {} : { outputHash: textOutputHash(output) }),
    commitment: { ...run.receipt.commitment, root: commitmentRoot(proof) },
  }, worker);
  return { receipt, proof, output: output ?? run.output };
}

/** The text the built-in byte tokenizer renders for `tokens` (EOS and specials as generate does). */
function textOf(tokens: number[]): string {
  const decoder = f.honest.tokenizer.streamDecoder();
  let out = "";
  for (const t of tokens) if (t !== f.honest.info.eosTokenId) out += decoder.push(t);
  return out + decoder.flush();
}

/**
 * A validator with coin 1 and the worker staked; `settle(job, run)` announces a receipt, waits for
 * its challenge and closes the window, then returns the verdict, the receipt's status and how the
 * worker's and the validator's accounts moved.
 */
async function withLedger(
  test: (t: {
    worker: Identity;
    requester: Identity;
    settle: (job: TextJob, run: ProvedJob) => Promise<{
      outcome: string;
      reason: string;
      status: string | undefined;
      worker: { balance: number; stake: number; locked: number };
      validator: { balance: number; stake: number; locked: number };
    }>;
  }) => Promise<void>,
  validation?: Parameters<typeof spawnValidator>[1]["validation"],
) {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const served = new Map<string, ReturnType<typeof signServedProof>>();
  const system = new ActorSystem({ name: "review-s47-claims" });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 1,
      validation,
      models: HONEST_MODELS,
      source: { proof: (r: Receipt) => Promise.resolve(served.get(receiptId(r))) },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    await validator.ask({ type: "deposit", key: me.publicKey, amount: VALIDATOR_STAKE });
    const { account, record, closeWindow, drained } = ledgerReads(() => validator, clock);
    await test({
      worker,
      requester,
      settle: async (job, run) => {
        const id = receiptId(run.receipt);
        const before = [await account(worker.publicKey), await account(me.publicKey)];
        served.set(id, signServedProof(id, run.proof, worker));
        const handled = await validator.ask<ReceiptHandled>({
          type: "receipt",
          receipt: run.receipt,
          job,
          assignment: signAssignment(
            { job, worker: run.receipt.worker, issuedAt: START },
            requester,
          ),
          origin: "ab".repeat(32),
        });
        assert.equal(handled.recorded, true, "the receipt is recorded");
        assert.equal(handled.challenged, true, "coin 1: challenged");
        const result = await handled.result!;
        await drained();
        await closeWindow();
        return {
          outcome: result.verdict.outcome,
          reason: result.verdict.reason,
          status: (await record(id))?.status,
          worker: delta(await account(worker.publicKey), before[0]),
          validator: delta(await account(me.publicKey), before[1]),
        };
      },
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

type Account = { balance: number; stake: number; locked: number };

/** How an account moved (each field's change). */
function delta(after: Account, before: Account): Account {
  return {
    balance: after.balance - before.balance,
    stake: after.stake - before.stake,
    locked: after.locked - before.locked,
  };
}

/** Assert the ledger convicted the cheat: fraud, unpaid, slashed, the finder rewarded. */
function assertSlashed(
  name: string,
  s: Awaited<ReturnType<Parameters<Parameters<typeof withLedger>[0]>[0]["settle"]>>,
  tokens: number,
  reasons: string[],
) {
  assert.equal(s.outcome, "fraud", `${name}: ${s.reason}`);
  assert.ok(reasons.includes(s.reason), `${name}: reason ${s.reason}`);
  assert.equal(s.status, "fraud", `${name}: the ledger's status`);
  const { slash } = priceOf(tokens);
  assert.deepEqual(
    s.worker,
    { balance: 0, stake: -slash, locked: 0 },
    `${name}: not paid, slashed`,
  );
  assert.deepEqual(s.validator, {
    balance: slash * DEFAULT_ECONOMICS.validatorRewardShare,
    stake: 0,
    locked: 0,
  }, `${name}: the finder rewarded`);
}

const JOB = {
  prompt: "Once upon a time, in a land far away, there lived",
  params: { maxTokens: 24, temperature: 0.9, topK: 0, topP: 1, seed: 11, stop: [] },
};

function honestRun(job: TextJob, worker: Identity, seed?: number): Promise<ProvedJob> {
  const ids = f.honest.tokenizer.encode(job.prompt);
  return proveJob(job, manualStream(() => f.honest, ids, job.params, { seed }), worker);
}

Deno.test("every computation cheat the threat model lists ends fraud in the ledger: not paid, slashed, finder rewarded", async () => {
  await withLedger(async (t) => {
    let n = 0;
    const job = (overrides: Partial<TextJob> = {}) =>
      textJob(t.requester, `cheat-${n++}`, { ...JOB, ...overrides });

    // Tampered tokens: one token swapped, output, commitment and receipt made consistent again.
    {
      const j = job();
      const run = await honestRun(j, t.worker);
      const tokens = unpackTokens(run.proof.tokens, run.proof.tokenBytes);
      tokens[5] = (tokens[5] + 7) % 256;
      const proof = { ...run.proof, tokens: packTokens(tokens, run.proof.tokenBytes) };
      const cheat = resign(run, proof, t.worker, textOf(tokens));
      assertSlashed("tampered tokens", await t.settle(j, cheat), cheat.receipt.tokenCount, [
        "sampling_rule",
        "fingerprint_mismatch",
      ]);
    }
    // Fabricated fingerprints under a consistent commitment (the model skipped).
    {
      const j = job();
      const run = await honestRun(j, t.worker);
      const fingerprints = run.proof.fingerprints.map((_, b) => (b * 37 + 11) & 0xff);
      const cheat = resign(run, { ...run.proof, fingerprints }, t.worker);
      assertSlashed("fabricated", await t.settle(j, cheat), cheat.receipt.tokenCount, [
        "fingerprint_mismatch",
      ]);
    }
    // Another seed than the job's.
    {
      const j = job();
      const cheat = await honestRun(j, t.worker, 999);
      assertSlashed("another seed", await t.settle(j, cheat), cheat.receipt.tokenCount, [
        "sampling_rule",
      ]);
    }
    // Truncated output (stops early, bills fewer tokens but skips computation).
    {
      const j = job();
      const ids = f.honest.tokenizer.encode(j.prompt);
      const cheat = await proveJob(
        j,
        manualStream(() => f.honest, ids, j.params, { stopAfter: 10 }),
        t.worker,
      );
      assertSlashed("truncated", await t.settle(j, cheat), cheat.receipt.tokenCount, [
        "truncated",
      ]);
    }
    // Running on past a stop string (bills more tokens).
    {
      let caught = 0;
      for (let i = 0; i < 6 && caught === 0; i++) {
        const j = job({ params: { ...JOB.params, maxTokens: 40, seed: 20 + i, stop: [" ", "e"] } });
        const cheat = await honestRun(j, t.worker); // manualStream ignores stop strings
        if (cheat.receipt.tokenCount === 40 && !/[ e]/.test(cheat.output.slice(0, -1))) continue;
        assertSlashed("overrun", await t.settle(j, cheat), cheat.receipt.tokenCount, ["overrun"]);
        caught++;
      }
      assert.equal(caught, 1, "a job reached a stop string");
    }
    // Another model.
    {
      const j = job();
      const ids = f.honest.tokenizer.encode(j.prompt);
      const cheat = await proveJob(j, manualStream(() => f.otherSeed, ids, j.params), t.worker);
      assertSlashed("another model", await t.settle(j, cheat), cheat.receipt.tokenCount, [
        "fingerprint_mismatch",
        "sampling_rule",
      ]);
    }
  });
});

Deno.test("a worker that emits an out-of-vocabulary token id (no computation behind it) is slashed", async () => {
  await withLedger(async (t) => {
    const j = textJob(t.requester, "oov", JOB);
    const run = await honestRun(j, t.worker);
    const tokens = unpackTokens(run.proof.tokens, run.proof.tokenBytes);
    tokens[3] = f.honest.info.vocabSize + 5;
    const proof = { ...run.proof, tokens: packTokens(tokens, run.proof.tokenBytes) };
    const cheat = resign(run, proof, t.worker, textOf(tokens));
    assertSlashed("out of vocabulary", await t.settle(j, cheat), cheat.receipt.tokenCount, [
      "sampling_rule",
      "fingerprint_mismatch",
      "output_mismatch",
    ]);
  });
});

Deno.test("honest receipts with top logprobs asked, stop strings and a maxTokens cut are valid (calibrated)", async () => {
  const c = await loadCalibratedFixture();
  const worker = Identity.generate();
  const validator = Identity.generate();
  let i = 0;
  for (const { name, model } of c.workers) {
    for (const topLogprobs of [0, 5]) {
      for (const stop of [[], [" ", "e"], ["the"]]) {
        const job: TextJob = {
          kind: "text",
          model: c.validator.info.cid,
          prompt: "Once upon a time, in a land far away, there lived",
          params: {
            maxTokens: 6 + (i % 5) * 7,
            temperature: i % 3 === 0 ? 0 : 0.8,
            topK: i % 4 === 1 ? 12 : 0,
            topP: i % 4 === 2 ? 0.9 : 1,
            seed: 300 + i,
            stop,
          },
          nonce: `fp-${i++}`,
        };
        const ids = model.tokenizer.encode(job.prompt);
        const run = await proveJob(job, model.generate(ids, job.params, { topLogprobs }), worker);
        const result = await validateReceipt(
          { job, receipt: run.receipt, proof: run.proof, output: run.output },
          c.validator,
          validator,
          { calibration: c.calibration },
        );
        assert.equal(
          result.verdict.outcome,
          "valid",
          `${name}, topLogprobs ${topLogprobs}, stop ${
            JSON.stringify(stop)
          }: ${result.verdict.reason}`,
        );
        assert.equal(jobId(job), run.receipt.jobId);
      }
    }
  }
});

// docs/PROOF.md, "Steering test": "The receipt whose end choices bring the worker's evidence to
// 10⁶, and from then on every receipt of that worker with an end passed over, is `invalid`". The
// record was a plain sum, so a convicted steerer that then took a few ends (cheap: on jobs near
// their end anyway) brought its evidence back under 10⁶, and its next steered receipts were paid.
// A sequential test's rejection stands once the evidence crossed the limit (Ville's bound is on
// ever crossing it), so the record keeps a conviction, and a convicted worker's receipt that
// passes over an end is steering whatever else it shows.
Deno.test("a convicted steerer cannot buy its conviction back by taking a few ends", async () => {
  const record = new SteeringRecord();
  const key = "steerer";
  record.add(key, { passed: 26, taken: 0 });
  assert.deepEqual(record.convicted(), [key], "convicted at its 26th passed end");
  // Receipts that take ends (and pass none): valid, but they must not clear the conviction.
  record.add(key, { passed: 0, taken: 6 });
  assert.deepEqual(record.convicted(), [key], "a conviction stands");
  const job = steeringJob("after-conviction");
  const steered = await proveSteering(job, Identity.generate(), true);
  const { verdict } = await validateReceipt(
    { job, receipt: steered.receipt, proof: steered.proof, output: steered.output },
    steeringModel,
    Identity.generate(),
    { sampling: WIDE_SAMPLING, steering: record.of(key) },
  );
  assert.equal(verdict.outcome, "invalid", "a convicted worker's steered receipt is not paid");
  assert.equal(verdict.reason, "steering");
  assert.equal(isSteering(record.of(key)), true);
});
