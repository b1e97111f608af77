/**
 * A ValidatorActor asked by its own router to challenge a receipt (`ReceiptMessage.challenge`: a
 * failover taker's word blames the worker that relayed the prefix, review s81 vfotext F2)
 * challenges it whatever its coin, and answers the verdict the router acts on: `valid` for a
 * receipt over the ids' true text, `fraud` (`output_mismatch`) for one whose taker made the
 * prefix's text up and signed it. Who pays: the honest taker is credited once the window closes;
 * the liar is slashed and credited nothing. Without the flag, a coin that never draws leaves the
 * receipt unchallenged.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ReceiptHandled } from "../../actors/validator_messages.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { proveJob } from "../../proof/prover.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import {
  f,
  HONEST_MODELS,
  ledgerReads,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const WORKER_STAKE = 1_000_000;

/**
 * A validator whose coin never draws (p = 0) handed a receipt of an honest run whose first two
 * positions' text is `prefix` (undefined: the model's own), with `challenge` as given: its answer,
 * the challenge's verdict, and the worker's ledger once the window has closed.
 */
async function hand(nonce: string, challenge: boolean, prefix?: string) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "asked-challenge" });
  const worker = Identity.generate();
  const requester = Identity.generate();
  const job = textJob(requester, nonce);
  const ids = f.honest.tokenizer.encode(job.prompt);
  const chunks = [];
  for await (const chunk of f.honest.generate(ids, job.params)) chunks.push(chunk);
  // The ids and everything signed about them are the model's; only the text may be made up.
  const told = chunks.map((c, t) => prefix !== undefined && t < 2 ? { ...c, text: prefix[t] } : c);
  const proved = await proveJob(job, ReadableStream.from(told), worker);
  const id = receiptId(proved.receipt);
  try {
    const validator = await spawnValidator(system, {
      identity: Identity.generate(),
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
      source: { proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)) },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    const handled = await validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt: proved.receipt,
      job,
      assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester),
      origin: "ab".repeat(32),
      ...(challenge ? { challenge: true } : {}),
    });
    const result = await handled.result;
    const ledger = ledgerReads(() => validator, clock);
    await ledger.drained();
    await ledger.closeWindow();
    return {
      challenged: handled.challenged,
      verdict: result && `${result.verdict.outcome}/${result.verdict.reason ?? ""}`,
      record: await ledger.record(id),
      account: await ledger.account(worker.publicKey),
    };
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

// Failed before the fix: the flag was not read; the coin (p = 0) never drew either receipt.
Deno.test("a validator asked to challenge a disputed receipt does so whatever its coin: the ids' true text is valid and credited, made-up prefix text is output_mismatch fraud and slashed", async () => {
  const honest = await hand("asked-honest", true);
  assert.equal(honest.challenged, true, "the honest receipt was not challenged");
  assert.match(honest.verdict ?? "", /^valid\//);
  assert.equal(honest.record?.status, "final");
  assert.ok(honest.account.balance > 0, "the honest taker was not paid");
  assert.equal(honest.account.stake, WORKER_STAKE);

  const liar = await hand("asked-liar", true, "XY");
  assert.equal(liar.challenged, true, "the made-up receipt was not challenged");
  assert.equal(liar.verdict, "fraud/output_mismatch");
  assert.equal(liar.account.balance, 0, "the liar was paid");
  assert.ok(liar.account.stake < WORKER_STAKE, "the liar was not slashed");
});

Deno.test("a validator not asked to challenge leaves a receipt to its coin (p = 0: unchallenged, paid as signed)", async () => {
  const plain = await hand("not-asked", false, "XY");
  assert.equal(plain.challenged, false);
  assert.equal(plain.verdict, undefined);
  assert.ok(plain.account.balance > 0);
});
