/**
 * A receipt must sign the proof data's own shape. A worker that runs the wrong model and signs a
 * receipt whose commitment names another chunk size than the data it committed to (the root,
 * computed from the data, still opens) used to turn every fraud proof against it into a refuted
 * one: the validator's openings were cut with the data's chunk size, the checker's with the
 * receipt's. The cheater was paid with its stake intact and its accuser fined. Now the mismatch
 * is itself the fraud (`commitment`, the served data being signed by the worker), confirmed by
 * the independent checker, and the ledger slashes.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  type ReceiptHandled,
  ValidatorActor,
  type ValidatorMessage,
} from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId, signReceipt } from "../../protocols/receipt.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { proveJob } from "../../proof/prover.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { loadFixture, manualStream } from "./_models.ts";

const f = await loadFixture();
const START = 1_000_000;

for (const declared of [{ chunkSize: 16 }, { tokenBytes: 4 }]) {
  Deno.test(`a receipt declaring ${JSON.stringify(declared)} unlike its proof data is fraud: the worker is slashed, its accuser rewarded`, async () => {
    const me = Identity.generate();
    const worker = Identity.generate();
    const requester = Identity.generate();
    const clock = { t: START };
    const dir = await Deno.makeTempDir();
    const answers = new Map<string, ServedProof>();
    const system = new ActorSystem({ name: "chunksize" });
    const validator = await system.spawn<ValidatorMessage>({
      name: "node/validator",
      factory: () =>
        new ValidatorActor({
          identity: me,
          ledgerDir: `${dir}/ledger`,
          ledger: { now: () => clock.t },
          challengeProbability: 1,
          finalizeIntervalMs: 0,
          models: {
            get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
          },
          source: { proof: (r: Receipt) => Promise.resolve(answers.get(receiptId(r))) },
        }),
    });
    try {
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
      await validator.ask({ type: "deposit", key: me.publicKey, amount: 1_000 });
      const job: TextJob = {
        kind: "text",
        model: f.honest.info.cid,
        prompt: "Settle this",
        params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
        nonce: "job-cheat",
      };
      const ids = f.honest.tokenizer.encode(job.prompt);
      // The cheat: run another model (otherSeed) instead of the one paid for.
      const proved = await proveJob(job, manualStream(() => f.otherSeed, ids, job.params), worker);
      const { sig: _s, worker: _w, ...unsigned } = proved.receipt;
      // ...and sign a receipt whose commitment declares another chunk size (root unchanged).
      const receipt = signReceipt({
        ...unsigned,
        commitment: { ...unsigned.commitment, ...declared },
      }, worker);
      const id = receiptId(receipt);
      answers.set(id, signServedProof(id, proved.proof, worker)); // serves its real data, signed
      const handled = await validator.ask<ReceiptHandled>({
        type: "receipt",
        receipt,
        job,
        assignment: signAssignment({
          jobId: receipt.jobId,
          worker: worker.publicKey,
          issuedAt: START,
        }, requester),
        origin: "ab".repeat(32),
      });
      assert.equal(handled.challenged, true);
      const result = await handled.result!;
      assert.equal(result.verdict.outcome, "fraud");
      assert.equal(result.verdict.reason, "commitment_mismatch");
      assert.equal(result.fraudProof?.kind, "commitment");
      const check = await checkFraudProof(result.fraudProof!, f.honest);
      assert.equal(check.confirmed, true, check.reason);
      clock.t = START + DEFAULT_ECONOMICS.challengeWindowMs + 1;
      await validator.ask({ type: "finalize" });
      const rec = await validator.ask<ReceiptRecord>({ type: "receipt_status", receiptId: id });
      const w = await validator.ask<Account>({ type: "account", key: worker.publicKey });
      const v = await validator.ask<Account>({ type: "account", key: me.publicKey });
      assert.equal(rec.status, "fraud");
      // Slash = 20 × the job's reward (8 tokens): 160 off the worker's stake, unpaid; half of it
      // to the validator that proved it, whose own stake is untouched.
      assert.deepEqual(w, { balance: 0, stake: 10_000 - 160, locked: 0 });
      assert.deepEqual(v, { balance: 80, stake: 1_000, locked: 0 });
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
