/**
 * A "proof withheld" claim (`invalid / proof_unavailable`) passed on goes after its author's stake
 * pledge, on the same connection, as a fraud proof goes after its accuser's
 * (`proof_pledge_order_test.ts`).
 *
 * A ledger takes a peer's claim over (asks the worker for its proof data itself) only from a
 * claimant with stake there. A node that passes a claim on has its author's pledge (it recorded
 * the claim against that stake), but its peer may not: the pledge was not among the few pushed on
 * connect, or its gossip was dropped by the pledge budget. Before, such a peer held the claim
 * (since review s56; refused before that) until pledge sync happened to bring the pledge, which
 * nothing asked for: the worker that withheld from that ledger too was paid there, and slashed by
 * the ledgers that had the claimant's stake.
 *
 * The set-up: B — C. The claimant A is connected to neither; its claim reaches B from elsewhere.
 * The worker served B its proof data (B's takeover clears it) and withholds from C. Every ledger
 * runs on the test's clock.
 */
import assert from "node:assert/strict";
import type { Actor, ActorContext } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type {
  ChallengeSource,
  ValidatorMessage,
  ValidatorStats,
} from "../../actors/validator_messages.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { PledgeBudget } from "../../network/pledge_budget.ts";
import { MAX_CARRIED_PLEDGES, type PledgePeer, PledgeSync } from "../../network/pledge_sync.ts";
import type { Connection } from "../../protocols/connection.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import {
  PLEDGES_PUSHED_ON_CONNECT,
  signStakePledge,
  type StakePledge,
} from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  type LedgerClock,
  ledgerReads,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "../actors/_validator_fixture.ts";
import { joinLedgerNodes, type LedgerNode, spawnLedgerNode } from "./_ledger_node.ts";

const WORKER_STAKE = 1_000_000;
const NODE_STAKE = 10_000;
const CLAIMANT_STAKE = 50_000;

/**
 * Stands between C's NetworkActor and its validator: notes the key of every pledge a peer hands
 * it, then forwards each message (in order: one at a time) and its answer.
 */
class PledgeTap implements Actor<ValidatorMessage> {
  constructor(readonly validator: string, readonly pledgers: string[]) {}

  receive(message: ValidatorMessage, ctx: ActorContext<ValidatorMessage>): Promise<unknown> {
    if (message.type === "pledge") this.pledgers.push(toHex(message.pledge.key));
    return ctx.system.lookup<ValidatorMessage>(this.validator)!.ask(message, {
      timeoutMs: 60_000,
    });
  }
}

/** Node `name`: its validator (taking over with `source`), a {@link PledgeTap} and its network. */
async function spawnTapped(
  system: ActorSystem,
  dir: string,
  name: string,
  identity: Identity,
  clock: LedgerClock,
  source: ChallengeSource,
  pledgers: string[],
): Promise<LedgerNode> {
  const validator = await system.spawn<ValidatorMessage>({
    name: `${name}/validator`,
    factory: () =>
      new ValidatorActor({
        identity,
        ledgerDir: `${dir}/${name}`,
        models: HONEST_MODELS,
        challengeProbability: 0,
        finalizeIntervalMs: 0,
        network: `${name}/network`,
        ledger: { now: () => clock.t },
        source,
      }),
  });
  await system.spawn<ValidatorMessage>({
    name: `${name}/tap`,
    factory: () => new PledgeTap(`${name}/validator`, pledgers),
  });
  const network = await system.spawn<NetworkMessage>({
    name: `${name}/network`,
    factory: () =>
      new NetworkActor({
        identity,
        pledge: signStakePledge(identity, NODE_STAKE, 1),
        now: () => clock.t,
        services: { validator: `${name}/tap` },
      }),
  });
  return { validator, network };
}

/** A worker's proved job, its receipt id, and the requester's assignment of it. */
async function work(worker: Identity, requester: Identity, nonce: string) {
  const job = textJob(requester, nonce);
  const proved = await proveOn(job, worker);
  const id = receiptId(proved.receipt);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  return { job, id, proved, assignment };
}

/**
 * B and C joined, as the module doc sets them up, with `claims` receipts of the worker in both.
 * `pushed`: B holds few pledges, so the claimant's is among those C is pushed on connect.
 */
async function setting(
  system: ActorSystem,
  dir: string,
  clock: LedgerClock,
  claims: number,
  pushed = false,
) {
  const [b, c, claimant, worker, requester, other] = Array.from({ length: 6 }, Identity.generate);
  const jobs = await Promise.all(
    Array.from({ length: claims }, (_, i) => work(worker, requester, `claimed-${i}`)),
  );
  // Another worker's receipt, which B announces to mark where its gossip to C is.
  const marker = await work(other, requester, "marker");
  // The worker serves B (its takeover clears the work) and withholds from C.
  const serves: ChallengeSource = {
    proof: (receipt) => {
      const id = receiptId(receipt);
      const found = jobs.find((j) => j.id === id);
      return Promise.resolve(found && signServedProof(id, found.proved.proof, worker));
    },
  };
  const withholds: ChallengeSource = { proof: () => Promise.resolve(undefined) };
  const nodeB = await spawnLedgerNode(system, dir, "b", {
    identity: b,
    pledge: signStakePledge(b, NODE_STAKE, 1),
    models: HONEST_MODELS,
    now: () => clock.t,
    clock,
    validator: { challengeProbability: 0, source: serves },
  });
  const pledgersAtC: string[] = [];
  const nodeC = await spawnTapped(system, dir, "c", c, clock, withholds, pledgersAtC);

  // B holds the claimant's pledge, then more newer ones than it pushes on connect: the
  // claimant's (idle, the oldest) is not among those C gets when they join.
  const peer = "dd".repeat(32);
  const pledge = (key: Identity, amount: number) =>
    nodeB.validator.ask({ type: "pledge", pledge: signStakePledge(key, amount, 1), origin: peer });
  assert.equal(await pledge(claimant, CLAIMANT_STAKE), true);
  for (let i = 0; i <= (pushed ? -1 : PLEDGES_PUSHED_ON_CONNECT); i++) {
    assert.equal(await pledge(Identity.generate(), 1_000), true);
  }
  await nodeC.validator.ask({ type: "deposit", key: other.publicKey, amount: WORKER_STAKE });
  for (const node of [nodeB, nodeC]) {
    await node.validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    for (const { proved, job } of jobs) {
      const handled = await announceAssigned(node.validator, proved.receipt, job, requester);
      assert.equal(handled.recorded, true);
    }
  }

  await joinLedgerNodes(nodeB, nodeC);
  const readsB = ledgerReads(() => nodeB.validator, clock);
  const readsC = ledgerReads(() => nodeC.validator, clock);
  await eventually(
    async () => (await readsC.account(b.publicKey)).stake === NODE_STAKE,
    "C to record B's pledge",
  );
  if (pushed) {
    await eventually(
      async () => (await readsC.account(claimant.publicKey)).stake === CLAIMANT_STAKE,
      "C to record A's pledge pushed on connect",
    );
  } else {
    assert.equal((await readsC.account(claimant.publicKey)).stake, 0, "C has not heard of A");
  }

  return {
    nodeB,
    nodeC,
    readsB,
    readsC,
    claimant,
    worker,
    jobs,
    pledgersAtC,
    /** The claimant's "proof withheld" claim about job `i` reaches B (from A's connection). */
    async claim(i: number): Promise<void> {
      const verdict = withheldVerdict(jobs[i].id, worker.publicKey, clock.t, claimant);
      const recorded = await nodeB.validator.ask<string | undefined>({
        type: "verdict",
        verdict,
        origin: toHex(claimant.publicKey),
      });
      assert.ok(recorded, "B records the claim: A has stake there");
    },
    /**
     * Everything B sent C before now has reached C's validator: a receipt B announces now goes
     * after it on the same connection, and C hands what it is sent to its validator in order.
     */
    async synced(): Promise<void> {
      await nodeB.network.tell({
        type: "announce_receipt",
        receipt: marker.proved.receipt,
        job: marker.job,
        assignment: marker.assignment,
      });
      await eventually(async () => (await readsC.record(marker.id)) !== undefined, "the marker");
    },
  };
}

async function inSetting(
  name: string,
  test: (dir: string, clock: LedgerClock, system: ActorSystem) => Promise<void>,
) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name });
  try {
    await test(dir, clock, system);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a 'proof withheld' claim passed on to a ledger that lacks its author's pledge goes after the pledge: the worker that withholds from that ledger too is slashed there, not paid", () =>
  inSetting("verdict-pledge-order", async (dir, clock, system) => {
    const s = await setting(system, dir, clock, 1);
    const { id, proved } = s.jobs[0];

    await s.claim(0);
    await s.readsB.drained(); // B took the claim over: served, cleared
    await s.synced();
    await s.readsC.drained();

    // The window closes (one clock for both ledgers).
    await s.readsC.closeWindow();
    await s.nodeB.validator.ask({ type: "finalize" });
    assert.equal((await s.readsB.record(id))?.status, "final", "the worker served B: paid there");
    const atC = await s.readsC.record(id);
    assert.equal(atC?.status, "fraud", "C settled the worker that withheld from it too as paid");
    const account = await s.readsC.account(s.worker.publicKey);
    const slash = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.equal(account.balance, 0, "the withholder was paid in C");
    assert.equal(account.stake, WORKER_STAKE - slash, "the withholder was not slashed in C");
    assert.equal(
      (await s.readsC.account(s.claimant.publicKey)).stake,
      CLAIMANT_STAKE,
      "the claimant's pledge came with its claim",
    );
    const stats = await s.readsC.stats() as ValidatorStats;
    assert.equal(stats.peerVerdicts >= 1, true, "C recorded the claim");
  }));

Deno.test("a claimant's pledge goes to a peer once per connection, not ahead of each of its claims", () =>
  inSetting("verdict-pledge-once", async (dir, clock, system) => {
    const s = await setting(system, dir, clock, 3);
    for (let i = 0; i < s.jobs.length; i++) await s.claim(i);
    await s.readsB.drained();
    await s.synced();
    // B's catch-up (review s62: the receipts it recorded from a peer and passed on) may still be
    // answered ahead of the claims' evidence: the marker no longer comes after every claim.
    const takenOver = async () => {
      for (const { id } of s.jobs) {
        if ((await s.readsC.record(id))?.status === "pending") return false;
      }
      return true;
    };
    await eventually(takenOver, "C to take every claim over");
    await s.readsC.drained();
    const claimant = toHex(s.claimant.publicKey);
    assert.deepEqual(
      s.pledgersAtC.filter((key) => key === claimant),
      [claimant],
      "C was sent the claimant's pledge once, ahead of its first claim",
    );
    // C took every claim over (the worker withholds from it): each receipt a fault there.
    for (const { id } of s.jobs) assert.equal((await s.readsC.record(id))?.status, "fraud");
  }));

Deno.test("a claimant's pledge a peer was pushed on connect is not sent it again ahead of the claim", () =>
  inSetting("verdict-pledge-pushed", async (dir, clock, system) => {
    const s = await setting(system, dir, clock, 1, true);
    await s.claim(0);
    await s.readsB.drained();
    await s.synced();
    await s.readsC.drained();
    const claimant = toHex(s.claimant.publicKey);
    assert.deepEqual(s.pledgersAtC.filter((key) => key === claimant), [claimant]);
    assert.equal((await s.readsC.record(s.jobs[0].id))?.status, "fraud");
  }));

Deno.test("PledgeSync.sendAhead: once per connection, not on a connection that brought the pledge, again past MAX_CARRIED_PLEDGES", () => {
  const peer = Identity.generate();
  const sent: [number, string][] = [];
  /** A connection to `peer` that notes each pledge sent on it (with its number). */
  const connection = (n: number) =>
    ({
      isClosed: false,
      peerKey: peer.publicKey,
      supports: () => true,
      notify: (_: unknown, body: { pledge: StakePledge }) => {
        sent.push([n, toHex(body.pledge.key)]);
        return Promise.resolve();
      },
    }) as unknown as Connection;
  const [first, second] = [connection(1), connection(2)];
  // Room for all of it: the budget is not what is tested here.
  const pledges = new PledgeBudget({ burst: 10_000, refillMs: 1, now: () => 0 });
  const entries: PledgePeer[] = [{ connection: first, pledges }, { connection: second, pledges }];
  const sync = new PledgeSync({
    peers: new Map([[toHex(peer.publicKey), entries]]),
    entryOf: (c) => entries.find((e) => e.connection === c),
    validator: () => undefined,
    tell: () => {},
    log: () => {},
  });
  const pledgeOf = () => signStakePledge(Identity.generate(), 1_000, 1);
  const sentOf = (p: StakePledge) => sent.filter(([, key]) => key === toHex(p.key));

  const claimant = pledgeOf();
  sync.sendAhead(first, claimant);
  sync.sendAhead(first, claimant);
  assert.deepEqual(sentOf(claimant), [[1, toHex(claimant.key)]], "once on a connection");
  sync.sendAhead(second, claimant);
  assert.equal(sentOf(claimant).length, 2, "once on each connection");

  // A pledge the peer passed on to us (new to our ledger): it has it.
  const heard = pledgeOf();
  assert.equal(sync.relayPledge(heard, toHex(peer.publicKey)), 0);
  sync.sendAhead(first, heard);
  assert.deepEqual(sentOf(heard), [], "not sent back where it came from");

  // Past the bound, the oldest is forgotten: sent once more.
  for (let i = 0; i < MAX_CARRIED_PLEDGES; i++) sync.sendAhead(first, pledgeOf());
  sync.sendAhead(first, claimant);
  assert.equal(sentOf(claimant).length, 3);
});
