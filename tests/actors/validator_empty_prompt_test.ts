/**
 * A receipt for a job whose prompt is empty is one no honest worker signs (`generate` refuses
 * the job): drawn, it is termination fraud and the worker loses its locked slash. It used to end
 * `invalid` without a fraud proof, which the actor settles as unresolved (unpaid, the lock
 * released, nobody slashed): a worker that assigned itself such jobs through a second key and
 * made their output up was paid whenever the coin missed, and lost nothing when it hit.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ReceiptHandled } from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { proveJob } from "../../proof/prover.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { manualStream } from "../proof/_models.ts";
import {
  f,
  HONEST_MODELS,
  ledgerReads,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

Deno.test("a fabricated receipt for an empty-prompt job, drawn and caught, must cost the worker its locked slash", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate(); // a key the worker controls, or a colluding one
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "empty-prompt" });
  const answers = new Map<string, unknown>();
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 1,
      models: HONEST_MODELS,
      source: { proof: (r) => Promise.resolve(answers.get(receiptId(r)) as never) },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
    await validator.ask({ type: "deposit", key: me.publicKey, amount: 1_000 });
    // The job says prompt ""; the worker never ran it: it made tokens up (here, by running
    // another prompt), committed to them and signed.
    const job = textJob(requester, "empty-1", { prompt: "" });
    const made = f.honest.tokenizer.encode("anything at all");
    const proved = await proveJob(job, manualStream(() => f.honest, made, job.params), worker);
    const id = receiptId(proved.receipt);
    answers.set(id, signServedProof(id, proved.proof, worker));
    const handled = await validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt: proved.receipt,
      job,
      assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: START }, requester),
      origin: "ab".repeat(32),
    });
    assert.ok(handled.recorded && handled.challenged);
    const result = await handled.result!;
    const reads = ledgerReads(() => validator, clock);
    await reads.closeWindow();
    const rec = await reads.record(id);
    const acc = await reads.account(worker.publicKey);
    const slash = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.equal(`${result.verdict.outcome}/${result.verdict.reason}`, "fraud/empty_prompt");
    assert.equal(rec?.status, "fraud");
    assert.equal(acc.balance, 0, "not paid");
    assert.equal(acc.stake, 10_000 - slash, "a caught fabrication is slashed");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
