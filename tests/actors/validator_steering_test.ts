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
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import {
  proveSteering,
  STEERED,
  steeringJob,
  steeringModel,
  WIDE_SAMPLING,
} from "../proof/_steering_fixtures.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import {
  announceAssigned,
  ledgerReads,
  spawnValidator,
  START,
  withheldVerdict,
} from "./_validator_fixture.ts";

const NETWORK = "test/network";
const STAKE = 1_000_000;

const me = Identity.generate();
const steerer = Identity.generate();
const honest = Identity.generate();
const requester = Identity.generate();

/**
 * A validator that challenges every receipt (or none, `p: 0`), on the ledger in `dir`; the
 * worker serves its proof data once `served` resolves (default at once).
 */
async function start(
  dir: string,
  clock: { t: number },
  options: { p?: number; served?: Promise<void> } = {},
) {
  const system = new ActorSystem({ name: "steering" });
  const told: NetworkMessage[] = [];
  const served = new Map<string, ReturnType<typeof signServedProof>>();
  await system.spawn<NetworkMessage>({ name: NETWORK, factory: () => new RecordingNetwork(told) });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: options.p ?? 1,
    network: NETWORK,
    validation: { sampling: WIDE_SAMPLING },
    models: { get: () => Promise.resolve(steeringModel) },
    source: {
      proof: async (r) => {
        await options.served;
        return served.get(receiptId(r));
      },
    },
  });
  const ledger = ledgerReads(() => validator, clock);
  return {
    told,
    stats: ledger.stats,
    deposit: (key: Uint8Array) => validator.ask({ type: "deposit", key, amount: STAKE }),
    /** One receipt of `worker`'s, announced here; whether this validator challenged it. */
    async announce(worker: Identity, steer: boolean, nonce: string) {
      const job = steeringJob(nonce, toHex(requester.publicKey));
      const proved = await proveSteering(job, worker, steer);
      const id = receiptId(proved.receipt);
      served.set(id, signServedProof(id, proved.proof, worker));
      const handled = await announceAssigned(validator, proved.receipt, job, requester, {
        origin: "ee".repeat(32),
      });
      return { id, challenged: handled.challenged };
    },
    /** Challenges still open here run off the mailbox: wait for them. */
    drained: ledger.drained,
    /** One receipt of `worker`'s, challenged here to its end; its record before settling. */
    async job(worker: Identity, steer: boolean, nonce: string) {
      const { id, challenged } = await this.announce(worker, steer, nonce);
      assert.equal(challenged, true);
      await this.drained();
      return { id, record: await this.record(id) };
    },
    /** A staked peer's signed "proof withheld" claim about `id`: this validator takes it over. */
    async accuse(id: string, worker: Identity, by: Identity) {
      const verdict = withheldVerdict(id, worker.publicKey, clock.t, by, {});
      await validator.ask({ type: "verdict", verdict, origin: toHex(by.publicKey) });
    },
    record: async (id: string): Promise<ReceiptRecord> => (await ledger.record(id))!,
    account: ledger.account,
    closeWindow: ledger.closeWindow,
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
    // Steering until convicted cost more than it earned: the receipts in the evidence, still
    // in their window at the conviction, are not paid, and each is slashed m times its credit.
    const m = DEFAULT_ECONOMICS.slashMultiplier;
    assert.deepEqual(await v.account(steerer.publicKey), {
      balance: 0,
      stake: STAKE - m * earned(paid) - convicting.record.locked - again.record.locked,
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

Deno.test("overlapping challenges of one steerer are judged in order: the receipt that completes the evidence is steering and the claw-back runs, however many were open at once", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const late = Promise.withResolvers<void>();
  // The steerer serves its proof data late, so all its challenges are open together.
  const v = await start(dir, clock, { served: late.promise });
  try {
    await v.deposit(steerer.publicKey);
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const { id, challenged } = await v.announce(steerer, true, `o${i}`);
      assert.equal(challenged, true);
      ids.push(id);
    }
    late.resolve();
    await v.drained();
    const statuses = [];
    for (const id of ids) statuses.push((await v.record(id)).status);
    // 26 passed-over ends convict; each receipt passes over 5: the sixth completes it.
    const convicting = Math.ceil(26 / STEERED.passed) - 1;
    assert.deepEqual(statuses, ids.map((_, i) => i < convicting ? "pending" : "fraud"));
    const account = await v.account(steerer.publicKey);
    assert.ok(account.stake < STAKE - 3 * STEERED.tokens, "the claw-back cut the stake");
  } finally {
    await v.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("receipts a peer picks (its false withheld claims, taken over here) never feed the steering record: an honest worker is not convicted by them", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  // This validator's own coin never fires: only the peer's claims make it check.
  const v = await start(dir, clock, { p: 0 });
  // One peer per claim: a peer's false claims stop being taken over here after two
  // (`actors/_takeover_budget.ts`).
  const accusers = Array.from({ length: 8 }, () => Identity.generate());
  try {
    await v.deposit(steerer.publicKey);
    for (const accuser of accusers) await v.deposit(accuser.publicKey);
    // Receipts that pass over ends (as an honest worker's rare noise would, picked out by the
    // peers): far more than would convict if they counted.
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const { id, challenged } = await v.announce(steerer, true, `t${i}`);
      assert.equal(challenged, false);
      await v.accuse(id, steerer, accusers[i]);
      ids.push(id);
    }
    await v.drained();
    assert.equal((await v.stats()).challenged, ids.length, "each claim taken over");
    for (const id of ids) assert.equal((await v.record(id)).status, "pending", "cleared");
    assert.equal(v.told.filter((m) => m.type === "peer_convicted").length, 0);
    assert.equal((await v.account(steerer.publicKey)).stake, STAKE);
  } finally {
    await v.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
