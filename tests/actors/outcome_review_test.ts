/**
 * Outcomes across ledgers, not verdicts: a cheat caught by one validator must not keep its pay in
 * another honest node's ledger because the evidence stopped on the way. Three nodes in a line —
 * the finder V, a ledger A that lacks the receipt's model, a ledger B that holds it — with A's
 * NetworkActor stand-in handing to B what A passes on (receipts and fraud proofs), as B's
 * NetworkActor would. The receipt travels V's side → A → B; the fraud proof must too.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor } from "../../actors/actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type {
  FraudProofHandled,
  ReceiptHandled,
  ValidatorMessage,
} from "../../actors/validator_actor.ts";
import type { FraudCheckResult } from "../../proof/fraud_check.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { f, HONEST_MODELS, proveOn, spawnValidator, START, textJob } from "./_validator_fixture.ts";

const WORKER_STAKE = 1_000_000;
const ACCUSER_STAKE = 1_000;

type Flush = { type: "flush" };

/** A's network: what A passes on goes to B (answered before the next message is taken). */
class ToB implements Actor<NetworkMessage | Flush> {
  proofsPassed = 0;
  readonly checks: Promise<FraudCheckResult>[] = [];
  constructor(readonly b: () => ActorRef<ValidatorMessage>, readonly from: string) {}
  async receive(message: NetworkMessage | Flush): Promise<unknown> {
    if (message.type === "announce_receipt") {
      const { receipt, job, assignment } = message;
      return await this.b().ask({ type: "receipt", receipt, job, assignment, origin: this.from });
    }
    if (message.type === "publish_fraud_proof") {
      this.proofsPassed++;
      const handled = await this.b().ask<FraudProofHandled>({
        type: "fraud_proof",
        proof: message.proof,
        origin: this.from,
      });
      if (handled.result) this.checks.push(handled.result);
    }
    return true;
  }
}

async function setup() {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "outcome-review" });
  const a = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const finder = Identity.generate();
  const peer: { b?: ActorRef<ValidatorMessage> } = {};
  const toB = new ToB(() => peer.b!, toHex(a.publicKey));
  const netA = await system.spawn<NetworkMessage | Flush>({ name: "a/net", factory: () => toB });
  await system.spawn<NetworkMessage>({ name: "b/net", factory: () => ({ receive: () => true }) });
  const validator = (
    name: string,
    identity: Identity,
    network: string,
    models: typeof HONEST_MODELS,
  ) =>
    spawnValidator(system, {
      name,
      identity,
      ledgerDir: `${dir}/${name}`,
      clock,
      // Neither coin draws the receipt: only the finder's proof can convict the cheat here.
      challengeProbability: 0,
      network,
      models,
    });
  // A holds no model (it cannot check the proof); B holds the receipt's model.
  const va = await validator("a", a, "a/net", { get: () => Promise.resolve(undefined) });
  const b = peer.b = await validator("b", Identity.generate(), "b/net", HONEST_MODELS);
  for (const v of [va, b]) {
    await v.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    await v.ask({ type: "deposit", key: finder.publicKey, amount: ACCUSER_STAKE });
  }
  // The cheat runs another model under the honest model's CID.
  const job = textJob(requester, crypto.randomUUID(), { prompt: "The validator" });
  const proved = await proveOn(job, worker, f.otherSeed);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  /** The finder's fraud proof, signed at `issuedAt` (its validation is deterministic). */
  const accuse = async (issuedAt: number): Promise<FraudProof> => {
    const { fraudProof } = await validateReceipt(
      { job, receipt: proved.receipt, proof: proved.proof },
      f.honest,
      finder,
      { now: () => issuedAt },
    );
    assert.ok(fraudProof, "the finder catches the cheat");
    return fraudProof;
  };
  return {
    a: va,
    b,
    toB,
    worker,
    finder,
    job,
    receipt: proved.receipt,
    id: receiptId(proved.receipt),
    assignment,
    requesterHex: toHex(requester.publicKey),
    accuse,
    flush: () => netA.ask({ type: "flush" }),
    async closeWindow() {
      clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      for (const v of [va, b]) await v.ask({ type: "finalize" });
    },
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("a fraud proof a ledger cannot check still reaches the ledgers behind it: the cheat is slashed, not paid, wherever the proof can be checked", async () => {
  const t = await setup();
  try {
    // The requester announces the cheat's receipt to A, which records it (earning nothing
    // there: A cannot get the model) and passes it on to B, which credits it.
    const handled = await t.a.ask<ReceiptHandled>({
      type: "receipt",
      receipt: t.receipt,
      job: t.job,
      assignment: t.assignment,
      origin: t.requesterHex,
    });
    assert.equal(handled.recorded, true);
    await t.flush();
    const atB = await t.b.ask<ReceiptRecord>({ type: "receipt_status", receiptId: t.id });
    assert.ok(atB.credit > 0, "B credits the receipt");
    // The finder's proof reaches A: A cannot check it (no model), and must still pass it on.
    const proof = await t.accuse(START);
    const taken = await t.a.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof,
      origin: toHex(t.finder.publicKey),
    });
    const here = await taken.result!;
    assert.deepEqual([here.inconclusive, here.confirmed], [true, false]);
    await t.flush();
    assert.equal(t.toB.proofsPassed, 1, "A passes the proof it could not check on, once");
    const checks = await Promise.all(t.toB.checks);
    assert.deepEqual(checks.map((c) => c.confirmed), [true], "B checks it and confirms it");
    // The same accusation re-signed (a new timestamp, a new hash) is not passed on again: one
    // accusation per accuser and receipt, as a ledger settles one.
    const again = await t.a.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: await t.accuse(START + 1),
      origin: toHex(t.finder.publicKey),
    });
    assert.equal(again.skipped, "repeated_accusation");
    await t.flush();
    assert.equal(t.toB.proofsPassed, 1);
    await t.closeWindow();
    const locked = atB.locked;
    const inB = await t.b.ask<Account>({ type: "account", key: t.worker.publicKey });
    assert.deepEqual(inB, { balance: 0, stake: WORKER_STAKE - locked, locked: 0 }, "B slashes");
    const finderInB = await t.b.ask<Account>({ type: "account", key: t.finder.publicKey });
    assert.equal(finderInB.balance, locked * DEFAULT_ECONOMICS.validatorRewardShare);
    // A could not check it: no balance moves there, and the cheat earned nothing there either.
    const inA = await t.a.ask<Account>({ type: "account", key: t.worker.publicKey });
    assert.deepEqual(inA, { balance: 0, stake: WORKER_STAKE, locked: 0 });
  } finally {
    await t.close();
  }
});
