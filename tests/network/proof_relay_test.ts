/**
 * A validator that is not connected to the worker gets the proof data through the job's
 * requester, which is: V — R — W (V and W never meet). Before the relay, V's challenge ran into
 * its deadline and slashed an honest worker for "withholding" (found by the 1,000-node
 * simulation). A requester that does not hold the receipt relays nothing.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor } from "../../actors/actor.ts";
import {
  type ReceiptHandled,
  ValidatorActor,
  type ValidatorMessage,
} from "../../actors/validator_actor.ts";
import type { ProverMessage } from "../../actors/prover_actor.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { receiptId } from "../../protocols/receipt.ts";
import type { TextJob } from "../../protocols/job.ts";
import { proveJob } from "../../proof/prover.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { loadFixture, manualStream } from "../proof/_models.ts";
import { eventually } from "../_helpers/wait.ts";

/** The worker's prover, reduced to the one question a challenge asks. */
class ServesProofs implements Actor<ProverMessage> {
  constructor(readonly proofs: Map<string, ServedProof>) {}
  receive(message: ProverMessage): ServedProof | undefined {
    return message.type === "get_proof" ? this.proofs.get(message.receiptId) : undefined;
  }
}

async function line(relayHoldsReceipt: boolean) {
  const f = await loadFixture();
  const system = new ActorSystem({ name: "relay-test" });
  const dir = await Deno.makeTempDir();
  const [v, r, w] = [Identity.generate(), Identity.generate(), Identity.generate()];
  const proofs = new Map<string, ServedProof>();
  const models = {
    get: (cid: string) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
  };
  const validatorOf = (name: string, identity: Identity, challenge: boolean) =>
    system.spawn<ValidatorMessage>({
      name: `${name}/validator`,
      factory: () =>
        new ValidatorActor({
          identity,
          ledgerDir: `${dir}/${name}`,
          models,
          challengeProbability: challenge ? 1 : 0,
          finalizeIntervalMs: 0,
          proofDeadlineMs: 1_500,
          network: `${name}/network`,
        }),
    });
  const vValidator = await validatorOf("v", v, true);
  const rValidator = await validatorOf("r", r, false);
  await system.spawn<ProverMessage>({ name: "w/prover", factory: () => new ServesProofs(proofs) });
  const net = (name: string, identity: Identity, services: Record<string, string>) =>
    system.spawn<NetworkMessage>({
      name: `${name}/network`,
      factory: () => new NetworkActor({ identity, services }),
    });
  const [vNet, rNet, wNet] = await Promise.all([
    net("v", v, { validator: "v/validator" }),
    net("r", r, { validator: "r/validator" }),
    net("w", w, { prover: "w/prover" }),
  ]);
  const join = async (a: typeof vNet, b: typeof vNet) => {
    const [da, db] = memoryDuplexPair();
    await Promise.all([
      a.ask({ type: "attach", duplex: da, address: "mem", outbound: true }),
      b.ask({ type: "attach", duplex: db, address: "mem", outbound: false }),
    ]);
  };
  await join(vNet, rNet);
  await join(rNet, wNet);
  await eventually(async () => {
    const peers = await vNet.ask<PeerInfo[]>({ type: "peers" });
    return peers.length === 1 ? true : undefined;
  }, "V to see only R");
  // The worker's job, as R requested it.
  const job: TextJob = {
    kind: "text",
    model: f.honest.info.cid,
    prompt: "Through the requester",
    params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 5, stop: [] },
    nonce: "relay",
    requester: toHex(r.publicKey),
  };
  const ids = f.honest.tokenizer.encode(job.prompt);
  const proved = await proveJob(job, manualStream(() => f.honest, ids, job.params), w);
  const id = receiptId(proved.receipt);
  proofs.set(id, signServedProof(id, proved.proof, w));
  const assignment = signAssignment({ job, worker: w.publicKey, issuedAt: 1 }, r);
  // Without the worker's stake R's ledger refuses the receipt (even the copy V passes on). V's
  // stake for it is then a deposit: V would send R a pledge R turned out to need, not a deposit.
  if (relayHoldsReceipt) {
    for (const validator of [vValidator, rValidator]) {
      await validator.ask({ type: "pledge", pledge: signStakePledge(w, 10_000, 1) });
    }
  } else {
    await vValidator.ask({ type: "deposit", key: w.publicKey, amount: 10_000 });
  }
  if (relayHoldsReceipt) {
    await rValidator.ask({
      type: "receipt",
      receipt: proved.receipt,
      job,
      assignment,
      origin: "local",
    });
  }
  const handled = await vValidator.ask<ReceiptHandled>({
    type: "receipt",
    receipt: proved.receipt,
    job,
    assignment,
    origin: "ab".repeat(32),
  });
  assert.equal(handled.challenged, true);
  const result = await handled.result!;
  const record = await vValidator.ask<ReceiptRecord>({ type: "receipt_status", receiptId: id });
  const convicted = await vValidator.ask<boolean>({ type: "convicted", key: w.publicKey });
  await system.shutdown();
  await Deno.remove(dir, { recursive: true });
  return { outcome: result.verdict.outcome, reason: result.verdict.reason, record, convicted };
}

Deno.test("a validator not connected to the worker fetches its proof through the job's requester: valid, nobody slashed", async () => {
  const { outcome, record, convicted } = await line(true);
  assert.equal(outcome, "valid");
  assert.equal(record.status, "pending", "cleared: paid when its window closes");
  assert.equal(convicted, false);
});

Deno.test("a requester that does not hold the receipt relays nothing: the proof counts as withheld", async () => {
  const { outcome, reason, convicted } = await line(false);
  assert.equal(outcome, "invalid");
  assert.equal(reason, "proof_unavailable");
  assert.equal(convicted, true);
});
