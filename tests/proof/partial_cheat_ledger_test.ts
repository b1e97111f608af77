/**
 * A worker that cheats on part of a job's positions, settled end to end: a ValidatorActor with
 * the calibrated profile challenges the receipt, the worker serves its signed proof data, and the
 * ledger settles when the window closes. Before review s74 the prefix test averaged such a cheat
 * away: the verdict was `valid` and the worker was paid for the whole job.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import type { FraudProofHandled } from "../../actors/validator_actor.ts";
import { receiptId, signReceipt, textOutputHash } from "../../protocols/receipt.ts";
import { commitmentRoot, packTokens, unpackTokens } from "../../proof/commitment.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { proveJob } from "../../proof/prover.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { cheaperCopy, loadCalibratedFixture, manualStream, type ModelVariant } from "./_models.ts";
import {
  announceAssigned,
  f,
  ledgerReads,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";

/** Long enough that the honest head dilutes every prefix (review s74 used 192). */
const TOKENS = 192;
const STAKE = 100_000;

const CASES: { name: string; variant: ModelVariant; cheapAt: (t: number) => boolean }[] = [
  {
    name: "0.02 % weight noise on the last quarter",
    variant: { noise: 0.0002 },
    cheapAt: (t) => t >= TOKENS * 3 / 4,
  },
  {
    name: "fp16 weights on every other position",
    variant: "fp16",
    cheapAt: (t) => t % 2 === 1,
  },
];

for (const { name, variant, cheapAt } of CASES) {
  Deno.test(`ledger: ${name} of an fp32 job is slashed and unpaid, the validator rewarded`, async () => {
    const cal = await loadCalibratedFixture();
    const cheap = await cheaperCopy(variant);
    const me = Identity.generate(), worker = Identity.generate(), requester = Identity.generate();
    const clock = { t: 1_000_000 };
    const dir = await Deno.makeTempDir();
    const system = new ActorSystem({ name: "partial-cheat" });
    const proofs = new Map<string, ServedProof>();
    try {
      const validator = await spawnValidator(system, {
        clock,
        identity: me,
        ledgerDir: `${dir}/ledger`,
        challengeProbability: 1,
        models: {
          get: (cid) => Promise.resolve(cid === f.honest.info.cid ? cal.validator : undefined),
        },
        validation: { calibration: cal.calibration },
        source: { proof: (r) => Promise.resolve(proofs.get(receiptId(r))) },
      });
      const reads = ledgerReads(() => validator, clock);
      await validator.ask({ type: "pledge", pledge: signStakePledge(worker, STAKE, 1) });
      const job: TextJob = textJob(requester, "partial-cheat", {
        prompt: "Once upon a time, in a land far away, there lived",
        params: { maxTokens: TOKENS, temperature: 0.7, topK: 0, topP: 1, seed: 7, stop: [] },
      });
      const proved = await proveJob(
        job,
        manualStream(
          (t) => cheapAt(t) ? cheap : f.honest,
          f.honest.tokenizer.encode(job.prompt),
          job.params,
        ),
        worker,
      );
      const id = receiptId(proved.receipt);
      proofs.set(id, signServedProof(id, proved.proof, worker));
      const handled = await announceAssigned(validator, proved.receipt, job, requester);
      assert.equal(handled.challenged, true);
      const verdict = (await handled.result!).verdict;
      await reads.drained();
      await reads.closeWindow();

      assert.equal(verdict.outcome, "fraud", `verdict ${verdict.reason}`);
      assert.equal((await reads.record(id))?.status, "fraud");
      const slash = proved.receipt.tokenCount * DEFAULT_ECONOMICS.slashMultiplier;
      const paid = await reads.account(worker.publicKey);
      assert.equal(paid.balance, 0, "the cheat is not paid");
      assert.equal(paid.stake, STAKE - slash, "slashed m × the job's reward");
      const rewarded = await reads.account(me.publicKey);
      assert.equal(rewarded.balance, slash * DEFAULT_ECONOMICS.validatorRewardShare);
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

// Review verify5: the validator scored only the positions before an out-of-vocabulary last token
// and cited a suffix of that shorter window, which a checker judges against the receipt's token
// count and refutes: at a third party the cheat was paid and the honest validator fined.
Deno.test("ledger: a tail cheat that ends in an out-of-vocabulary token is slashed at a third party, its finder not fined", async () => {
  const cal = await loadCalibratedFixture();
  const cheap = await cheaperCopy({ noise: 0.0002 });
  const me = Identity.generate(), worker = Identity.generate(), requester = Identity.generate();
  const finder = Identity.generate();
  const FINDER_STAKE = 1_000;
  const job: TextJob = textJob(requester, "oov-tail", {
    prompt: "Once upon a time, in a land far away, there lived",
    // Seed 8: before the fix its suffix citation (183..190) was refuted (review verify5).
    params: { maxTokens: TOKENS, temperature: 0.7, topK: 0, topP: 1, seed: 8, stop: [] },
  });
  const honest = await proveJob(
    job,
    manualStream(
      (t) => t >= TOKENS * 3 / 4 ? cheap : f.honest,
      f.honest.tokenizer.encode(job.prompt),
      job.params,
    ),
    worker,
  );
  const tokens = unpackTokens(honest.proof.tokens, honest.proof.tokenBytes);
  tokens[tokens.length - 1] = f.honest.info.vocabSize + 5;
  const proof = { ...honest.proof, tokens: packTokens(tokens, honest.proof.tokenBytes) };
  const decoder = f.honest.tokenizer.streamDecoder();
  let output = "";
  for (const t of tokens) if (t !== f.honest.info.eosTokenId) output += decoder.push(t);
  output += decoder.flush();
  const { sig: _s, worker: _w, ...unsigned } = honest.receipt;
  const receipt = signReceipt({
    ...unsigned,
    outputHash: textOutputHash(output),
    commitment: { ...honest.receipt.commitment, root: commitmentRoot(proof) },
  }, worker);
  const found = await validateReceipt({ job, receipt, proof, output }, cal.validator, finder, {
    calibration: cal.calibration,
  });
  assert.equal(found.verdict.outcome, "fraud", `verdict ${found.verdict.reason}`);
  assert.ok(found.fraudProof);
  assert.equal(found.fraudProof.kind, "sampling", "the bad token is cited, not a fingerprint set");

  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "oov-tail" });
  try {
    // Coin 0: this peer judges only the proof it is sent.
    const validator = await spawnValidator(system, {
      clock,
      identity: me,
      ledgerDir: `${dir}/ledger`,
      challengeProbability: 0,
      models: {
        get: (cid) => Promise.resolve(cid === f.honest.info.cid ? cal.validator : undefined),
      },
      validation: { calibration: cal.calibration },
      source: { proof: () => Promise.resolve(undefined) },
    });
    for (const [key, amount] of [[worker, STAKE], [finder, FINDER_STAKE]] as const) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount });
    }
    const reads = ledgerReads(() => validator, clock);
    await announceAssigned(validator, receipt, job, requester, { issuedAt: START });
    const handled = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: found.fraudProof,
      origin: "cd".repeat(32),
    });
    assert.equal((await handled.result)?.confirmed, true, "the proof is confirmed");
    await reads.drained();
    await reads.closeWindow();

    const id = receiptId(receipt);
    assert.equal((await reads.record(id))?.status, "fraud");
    const slash = receipt.tokenCount * DEFAULT_ECONOMICS.slashMultiplier;
    const paid = await reads.account(worker.publicKey);
    assert.equal(paid.balance, 0, "the cheat is not paid");
    assert.equal(paid.stake, STAKE - slash, "slashed m × the job's reward");
    assert.equal((await reads.account(finder.publicKey)).stake, FINDER_STAKE, "finder not fined");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
