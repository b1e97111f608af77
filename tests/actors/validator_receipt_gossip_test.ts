/**
 * A receipt's assignment reaching a validator second still sends the receipt on. A validator
 * passes a peer's assigned receipt on to its other peers once, when it is new here; a receipt
 * recorded first without its assignment — a relay that stripped it, or a fraud proof about it
 * that outran the worker's announcement — used to have the requester's assigned copy attached
 * (credit booked here) but never passed on, so validators reached only through this one never
 * recorded the job and never paid its worker. Two validators: A's NetworkActor stand-in hands
 * what A announces to B, as B's NetworkActor would; the ledgers' balances after the window say
 * who was paid.
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
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { signFraudProof } from "../../protocols/fraud_proof.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { HONEST_MODELS, proveOn, spawnValidator, START, textJob } from "./_validator_fixture.ts";

const WORKER_STAKE = 1_000_000;

type Flush = { type: "flush" };

/** A's network: what A announces goes to B (answered before the next message is taken). */
class ToB implements Actor<NetworkMessage | Flush> {
  announced = 0;
  constructor(readonly b: () => ActorRef<ValidatorMessage>, readonly from: string) {}
  async receive(message: NetworkMessage | Flush): Promise<unknown> {
    if (message.type !== "announce_receipt") return true;
    this.announced++;
    const { receipt, job, assignment } = message;
    return await this.b().ask({ type: "receipt", receipt, job, assignment, origin: this.from });
  }
}

async function setup() {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "receipt-gossip" });
  const a = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const peer: { b?: ActorRef<ValidatorMessage> } = {};
  const toB = new ToB(() => peer.b!, toHex(a.publicKey));
  const netA = await system.spawn<NetworkMessage | Flush>({ name: "a/net", factory: () => toB });
  await system.spawn<NetworkMessage>({ name: "b/net", factory: () => ({ receive: () => true }) });
  const validator = (name: string, identity: Identity, network: string) =>
    spawnValidator(system, {
      name,
      identity,
      ledgerDir: `${dir}/${name}`,
      clock,
      challengeProbability: 0,
      network,
      // Both hold the model: a ledger credits only what it can check.
      models: HONEST_MODELS,
    });
  const va = await validator("a", a, "a/net");
  const b = peer.b = await validator("b", Identity.generate(), "b/net");
  for (const v of [va, b]) {
    await v.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  }
  const job = textJob(requester, crypto.randomUUID(), { prompt: "The validator" });
  const proved = await proveOn(job, worker);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  return {
    a: va,
    b,
    toB,
    worker,
    job,
    receipt: proved.receipt,
    proof: proved.proof,
    id: receiptId(proved.receipt),
    assignment,
    requesterHex: toHex(requester.publicKey),
    /** Everything A told its network has reached B. */
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

for (const first of ["a relay's copy without the assignment", "a refuted fraud proof"] as const) {
  Deno.test(`the assigned receipt still spreads when ${first} came first: the worker is paid at the next validator too`, async () => {
    const t = await setup();
    try {
      let accusation: { key: Uint8Array; result: Promise<unknown> } | undefined;
      if (first === "a relay's copy without the assignment") {
        const stripped = await t.a.ask<ReceiptHandled>({
          type: "receipt",
          receipt: t.receipt,
          job: t.job,
          origin: "ab".repeat(32),
        });
        assert.equal(stripped.recorded, true);
        const unassigned = await t.a.ask<ReceiptRecord>({
          type: "receipt_status",
          receiptId: t.id,
        });
        assert.deepEqual([unassigned.status, unassigned.credit], ["pending", 0]);
      } else {
        // A staked accuser's false claim: the worker's own signed data, which opens its root.
        const accuser = Identity.generate();
        await t.a.ask({ type: "deposit", key: accuser.publicKey, amount: 1_000 });
        const proof = signFraudProof({
          v: 1,
          job: t.job,
          receipt: t.receipt,
          kind: "commitment",
          chunks: [],
          cited: [],
          served: signServedProof(t.id, t.proof, t.worker),
          issuedAt: START,
        }, accuser);
        const taken = await t.a.ask<FraudProofHandled>({
          type: "fraud_proof",
          proof,
          origin: toHex(accuser.publicKey),
        });
        // Held, never recording the receipt: it is checked once the receipt comes in.
        assert.equal(taken.awaitingReceipt, true);
        assert.equal(await t.a.ask({ type: "receipt_status", receiptId: t.id }), undefined);
        accusation = { key: accuser.publicKey, result: taken.result! };
      }
      // The requester's own announcement, with its signed assignment.
      await t.a.ask<ReceiptHandled>({
        type: "receipt",
        receipt: t.receipt,
        job: t.job,
        assignment: t.assignment,
        origin: t.requesterHex,
      });
      await t.flush();
      if (accusation !== undefined) {
        assert.equal(((await accusation.result) as { confirmed: boolean }).confirmed, false);
        const accused = await t.a.ask<Account>({ type: "account", key: accusation.key });
        assert.equal(accused.stake, 1_000 - DEFAULT_ECONOMICS.falseAccusationPenalty);
      }
      const credited = await t.a.ask<ReceiptRecord>({ type: "receipt_status", receiptId: t.id });
      assert.ok(credited.credit > 0);
      await t.closeWindow();
      for (const [name, v] of [["A", t.a], ["B", t.b]] as const) {
        const account = await v.ask<Account>({ type: "account", key: t.worker.publicKey });
        assert.deepEqual(account, {
          balance: credited.credit,
          stake: WORKER_STAKE,
          locked: 0,
        }, `${name} pays the worker`);
      }
      // Once: the same copies again send nothing more.
      for (const assignment of [undefined, t.assignment]) {
        await t.a.ask({
          type: "receipt",
          receipt: t.receipt,
          job: t.job,
          assignment,
          origin: "cd".repeat(32),
        });
      }
      await t.flush();
      assert.equal(t.toB.announced, 1);
    } finally {
      await t.close();
    }
  });
}
