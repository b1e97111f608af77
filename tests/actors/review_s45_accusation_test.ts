/**
 * Review s45: a signed accusation is the accuser's word, whatever it claims. A well-formed proof
 * whose claim does not fit its receipt (a `tensor` proof about a text receipt, a text proof about
 * a tensor job) was answered `malformed` by the checker — the reason the ValidatorActor reserves
 * for a proof it cannot attribute — so its accuser paid no penalty, the accusation was not
 * remembered, and the same claim re-signed with a new timestamp was checked again, each time for
 * free. Each test asserts the ledger after the window: the honest worker paid, the accuser
 * charged once.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled } from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { type FraudProof, signFraudProof } from "../../protocols/fraud_proof.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const WORKER_STAKE = 100_000;
const ACCUSER_STAKE = 1_000;
const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;

async function setup() {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const accuser = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "review-s45-accusation" });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: 0,
    models: HONEST_MODELS,
    source: { proof: () => Promise.resolve(undefined) },
  });
  for (const [key, amount] of [[worker, WORKER_STAKE], [accuser, ACCUSER_STAKE]] as const) {
    await validator.ask({ type: "deposit", key: key.publicKey, amount });
  }
  const job = textJob(requester, "s45-honest");
  const { receipt } = await proveOn(job, worker);
  const handled = await announceAssigned(validator, receipt, job, requester, { issuedAt: START });
  assert.equal(handled.recorded, true);
  return {
    worker,
    accuser,
    job,
    receipt,
    id: receiptId(receipt),
    ...ledgerReads(() => validator, clock),
    async accuse(proof: FraudProof): Promise<FraudProofHandled> {
      const h = await validator.ask<FraudProofHandled>({
        type: "fraud_proof",
        proof,
        origin: "cd".repeat(32),
      });
      if (h.queued) await h.result!.catch(() => {});
      return h;
    },
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("s45: a signed tensor-kind accusation of an honest text receipt costs its accuser the penalty, and its re-signed copy is refused", async () => {
  const t = await setup();
  try {
    const accusation = (issuedAt: number) =>
      signFraudProof({
        v: 1,
        kind: "tensor",
        job: t.job,
        receipt: t.receipt,
        chunks: [],
        cited: [],
        tensorOutputs: { y: { type: "float32", dims: [1], data: new Uint8Array(4) } },
        issuedAt,
      }, t.accuser);
    const first = await t.accuse(accusation(1));
    assert.equal(first.queued, true);
    const again = await t.accuse(accusation(2));
    assert.equal(again.queued, false, "the same claim re-signed is not checked again");
    assert.equal(again.skipped, "repeated_accusation");
    await t.closeWindow();
    assert.equal((await t.record(t.id))?.status, "final", "the honest work is paid");
    assert.equal(
      (await t.account(t.accuser.publicKey)).stake,
      ACCUSER_STAKE - PENALTY,
      "a false signed accusation costs its accuser the penalty",
    );
    assert.equal((await t.account(t.worker.publicKey)).stake, WORKER_STAKE);
  } finally {
    await t.close();
  }
});
