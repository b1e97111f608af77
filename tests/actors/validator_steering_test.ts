/**
 * Steering convicted, on the ledger: a worker that passes over ends its job's sampling rule
 * gives it (each receipt valid on its own) is convicted by the validator whose own challenges
 * add up to the evidence (`proof/steering.ts`). The receipt that convicts it is not paid and
 * its locked slash is burned; what the earlier receipts in the evidence earned is clawed back
 * and slashed, `(1 + m) ×` their credit from its stake, once; the network is told to route
 * around it; and the record survives a restart (rebuilt from the ledger's verdicts). An honest
 * worker checked as often is paid for every job.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor } from "../../actors/actor.ts";
import {
  type ReceiptHandled,
  ValidatorActor,
  type ValidatorMessage,
  type ValidatorStats,
} from "../../actors/validator_actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  proveSteering,
  STEERED,
  steeringJob,
  steeringModel,
  WIDE_SAMPLING,
} from "../proof/_steering_fixtures.ts";

const NETWORK = "test/network";
const START = 1_000_000;
const STAKE = 1_000_000;

class RecordingNetwork implements Actor<NetworkMessage> {
  constructor(readonly told: NetworkMessage[]) {}
  receive(message: NetworkMessage): undefined {
    this.told.push(message);
    return undefined;
  }
}

const me = Identity.generate();
const steerer = Identity.generate();
const honest = Identity.generate();
const requester = Identity.generate();

/** A validator that challenges every receipt, on the ledger in `dir`. */
async function start(dir: string, clock: { t: number }) {
  const system = new ActorSystem({ name: "steering" });
  const told: NetworkMessage[] = [];
  const served = new Map<string, ReturnType<typeof signServedProof>>();
  await system.spawn<NetworkMessage>({ name: NETWORK, factory: () => new RecordingNetwork(told) });
  const validator = await system.spawn<ValidatorMessage>({
    name: "node/validator",
    factory: () =>
      new ValidatorActor({
        identity: me,
        ledgerDir: `${dir}/ledger`,
        ledger: { now: () => clock.t },
        challengeProbability: 1,
        finalizeIntervalMs: 0,
        network: NETWORK,
        validation: { sampling: WIDE_SAMPLING },
        models: { get: () => Promise.resolve(steeringModel) },
        source: { proof: (r) => Promise.resolve(served.get(receiptId(r))) },
      }),
  });
  const stats = () => validator.ask<ValidatorStats>({ type: "stats" });
  return {
    told,
    stats,
    deposit: (key: Uint8Array) => validator.ask({ type: "deposit", key, amount: STAKE }),
    /** One receipt of `worker`'s, challenged here to its end; its record before settling. */
    async job(worker: Identity, steer: boolean, nonce: string) {
      const job = steeringJob(nonce, toHex(requester.publicKey));
      const proved = await proveSteering(job, worker, steer);
      const id = receiptId(proved.receipt);
      served.set(id, signServedProof(id, proved.proof, worker));
      const handled = await validator.ask<ReceiptHandled>({
        type: "receipt",
        receipt: proved.receipt,
        job,
        assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester),
        origin: "ee".repeat(32),
      });
      assert.equal(handled.challenged, true);
      await eventually(async () => (await stats()).openChallenges === 0, "the challenge to end");
      return { id, record: await this.record(id) };
    },
    record: (id: string) => validator.ask<ReceiptRecord>({ type: "receipt_status", receiptId: id }),
    account: (key: Uint8Array) => validator.ask<Account>({ type: "account", key }),
    async closeWindow() {
      clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      await validator.ask({ type: "finalize" });
    },
    stop: () => system.shutdown(),
  };
}

Deno.test("a steerer is convicted by the receipt that completes the evidence: unpaid, slashed, routed around; the record survives a restart; the honest worker is paid", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  let v = await start(dir, clock);
  try {
    await v.deposit(steerer.publicKey);
    await v.deposit(honest.publicKey);
    // 26 passed-over ends convict; each steered receipt passes over 5.
    const before = Math.ceil(26 / STEERED.passed) - 1;
    const paid: { id: string; record: ReceiptRecord }[] = [];
    const honestJobs: { id: string; record: ReceiptRecord }[] = [];
    for (let i = 0; i < before; i++) {
      paid.push(await v.job(steerer, true, `s${i}`));
      honestJobs.push(await v.job(honest, false, `h${i}`));
    }
    for (const { id } of paid) assert.equal((await v.record(id)).status, "pending", "cleared");
    assert.equal(v.told.filter((m) => m.type === "peer_convicted").length, 0);
    const convicting = await v.job(steerer, true, "convicts");
    assert.equal((await v.record(convicting.id)).status, "fraud");
    assert.deepEqual(
      v.told.filter((m) => m.type === "peer_convicted"),
      [{ type: "peer_convicted", key: toHex(steerer.publicKey) }],
    );
    assert.equal((await v.stats()).slashes, 1);

    // Restarted: the record comes back from the ledger's verdicts, so the next steered receipt
    // is convicted at once.
    await v.stop();
    v = await start(dir, clock);
    const again = await v.job(steerer, true, "after-restart");
    assert.equal((await v.record(again.id)).status, "fraud");
    for (let i = before; i < before + 2; i++) honestJobs.push(await v.job(honest, false, `h${i}`));

    await v.closeWindow();
    const earned = (jobs: { record: ReceiptRecord }[]) =>
      jobs.reduce((s, j) => s + j.record.credit, 0);
    for (const { id } of [...paid, ...honestJobs]) {
      assert.equal((await v.record(id)).status, "final");
    }
    // Steering until convicted cost more than it earned: the credit of every receipt in the
    // evidence is paid and then cut from the stake 1 + m times over.
    const m = DEFAULT_ECONOMICS.slashMultiplier;
    assert.deepEqual(await v.account(steerer.publicKey), {
      balance: earned(paid),
      stake: STAKE - (1 + m) * earned(paid) - convicting.record.locked - again.record.locked,
      locked: 0,
    });
    assert.ok(convicting.record.locked > 0);
    assert.deepEqual(await v.account(honest.publicKey), {
      balance: earned(honestJobs),
      stake: STAKE,
      locked: 0,
    });
  } finally {
    await v.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
