/**
 * One accuser's refuted fraud proof does not block its later proofs of the same receipt
 * (`actors/_fraud_proofs.ts`, `proof/_ledger_accusations.ts`). Review s76 (F2): a ledger that
 * heard the accuser's false proof first refused its confirmed one (`repeated_accusation`) and paid
 * the cheat, which kept its whole stake, while a ledger that heard them the other way round
 * slashed it. Now both settle, in either order, the same way; and re-signed refuted proofs stay
 * bounded by their price: the accuser's free stake, then the unbacked checks' budget per receipt
 * (`actors/_unbacked_checks.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type {
  FraudProofHandled,
  ValidatorMessage,
  ValidatorStats,
} from "../../actors/validator_actor.ts";
import { MAX_UNBACKED_CHECKS_PER_RECEIPT } from "../../actors/_unbacked_checks.ts";
import { Identity } from "../../protocols/identity.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { receiptId } from "../../protocols/receipt.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  f,
  falseProof,
  HONEST_MODELS,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const PEER = "ee".repeat(32);
const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
const WORKER_STAKE = 1_000_000;
const ACCUSER_STAKE = 100 * PENALTY;
const requester = Identity.generate();
const worker = Identity.generate();
const accuser = Identity.generate();

/** A worker's proved job: a cheat's (run on another model) or honest work. */
async function provedJob(name: string, cheat: boolean) {
  const job = textJob(requester, name, { prompt: "The validator" });
  const proved = await proveOn(job, worker, cheat ? f.otherSeed : f.honest);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  return {
    job,
    receipt: proved.receipt,
    proof: proved.proof,
    assignment,
    id: receiptId(proved.receipt),
  };
}

const cheat = await provedJob("refuted-then-confirmed", true);
const { fraudProof: confirmed } = await validateReceipt(
  { job: cheat.job, receipt: cheat.receipt, proof: cheat.proof },
  f.honest,
  accuser,
  { now: () => START },
);
assert.ok(confirmed, "the cheat is caught");
const refuted = falseProof(cheat.receipt, accuser, 1);

/** A validator holding the worker's and accuser's pledges and `r`, recorded pending. */
async function ledger(
  system: ActorSystem,
  name: string,
  dir: string,
  clock: { t: number },
  r: Awaited<ReturnType<typeof provedJob>>,
  accuserStake = ACCUSER_STAKE,
) {
  const ref: ActorRef<ValidatorMessage> = await spawnValidator(system, {
    name,
    identity: Identity.generate(),
    ledgerDir: dir,
    clock,
    challengeProbability: 0,
    models: HONEST_MODELS,
  });
  const pledge = (who: Identity, amount: number) =>
    ref.ask({ type: "pledge", pledge: signStakePledge(who, amount, 1), origin: PEER });
  await pledge(worker, WORKER_STAKE);
  await pledge(accuser, accuserStake);
  const { receipt, job, assignment } = r;
  await ref.ask({ type: "receipt", receipt, job, assignment, origin: PEER });
  return ref;
}

/** Each proof in turn, its check settled before the next: how each was handled. */
async function feed(ref: ActorRef<ValidatorMessage>, proofs: FraudProof[]): Promise<string[]> {
  const answers: string[] = [];
  for (const proof of proofs) {
    const handled = await ref.ask<FraudProofHandled>({ type: "fraud_proof", proof, origin: PEER });
    if (handled.result) {
      const check = await handled.result;
      answers.push(`checked:${check.confirmed}`);
    } else answers.push(`skipped:${handled.skipped}`);
    await eventually(async () =>
      (await ref.ask<ValidatorStats>({ type: "stats" })).fraudProofsChecking === 0
    );
  }
  return answers;
}

/** After the window: the receipt's status, the worker's and the accuser's accounts. */
async function ending(ref: ActorRef<ValidatorMessage>, id: string) {
  await ref.ask({ type: "finalize" });
  return {
    status: (await ref.ask<ReceiptRecord>({ type: "receipt_status", receiptId: id })).status,
    worker: await ref.ask<Account>({ type: "account", key: worker.publicKey }),
    accuser: await ref.ask<Account>({ type: "account", key: accuser.publicKey }),
  };
}

Deno.test("one accuser's refuted then confirmed proof, and confirmed then refuted, in two ledgers: the cheat slashed in both, the accuser charged and rewarded alike", async () => {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "refuted-then-confirmed" });
  const clock = { t: START };
  try {
    const a = await ledger(system, "a/validator", `${root}/a`, clock, cheat);
    const b = await ledger(system, "b/validator", `${root}/b`, clock, cheat);
    assert.deepEqual(await feed(a, [refuted, confirmed]), ["checked:false", "checked:true"]);
    assert.deepEqual(await feed(b, [confirmed, refuted]), ["checked:true", "checked:false"]);
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    const [inA, inB] = [await ending(a, cheat.id), await ending(b, cheat.id)];
    assert.equal(inA.status, "fraud", "slashed where the false proof came first");
    assert.equal(inA.worker.balance, 0);
    assert.ok(inA.worker.stake < WORKER_STAKE);
    assert.deepEqual(inA, inB, "both ledgers end the same");
    assert.equal(inA.accuser.stake, ACCUSER_STAKE - PENALTY, "charged once for its false proof");
    assert.ok(inA.accuser.balance > 0, "rewarded for its confirmed proof");
  } finally {
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("re-signed refuted proofs of one receipt stay bounded: each backed one costs the penalty, then only the unbacked budget per receipt is checked", async () => {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "refuted-flood" });
  const clock = { t: START };
  try {
    const honest = await provedJob("refuted-flood", false);
    const backedChecks = 2;
    const v = await ledger(
      system,
      "v/validator",
      `${root}/v`,
      clock,
      honest,
      backedChecks * PENALTY,
    );
    const flood = Array.from(
      { length: 10 },
      (_, i) => falseProof(honest.receipt, accuser, i + 1),
    );
    const answers = await feed(v, flood);
    const checks = backedChecks + MAX_UNBACKED_CHECKS_PER_RECEIPT;
    assert.deepEqual(answers, [
      ...Array(checks).fill("checked:false"),
      ...Array(flood.length - checks).fill("skipped:unstaked_accuser"),
    ]);
    assert.equal((await v.ask<ValidatorStats>({ type: "stats" })).fraudProofsChecked, checks);
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    const end = await ending(v, honest.id);
    assert.equal(end.status, "final", "the honest work is paid");
    assert.equal(end.worker.stake, WORKER_STAKE);
    assert.deepEqual(end.accuser, { balance: 0, stake: 0, locked: 0 }, "its stake went, no lower");
  } finally {
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});
