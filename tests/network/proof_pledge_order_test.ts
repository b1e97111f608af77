/**
 * A fraud proof passed on goes after its accuser's stake pledge, on the same connection.
 *
 * A ledger checks a peer's fraud proof only from an accuser with stake there
 * (`unstaked_accuser`). A node that passes a proof on has its accuser's pledge (it checked the
 * proof against that stake), but its peer may not: the pledge was not among the few pushed on
 * connect, or its gossip was dropped by the pledge budget. Before, such a peer skipped the proof
 * for good, and paid the cheat that every other ledger slashed. (Since stop 40 an inference
 * ledger also holds such a proof, bounded, until the pledge comes,
 * `actors/_pledge_held_proofs.ts`; a training ledger does not, so sending the pledge first is
 * still what keeps it from paying the cheat.)
 */
import assert from "node:assert/strict";
import type { Actor, ActorContext } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled, ValidatorStats } from "../../actors/validator_messages.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { PLEDGES_PUSHED_ON_CONNECT, signStakePledge } from "../../protocols/stake_pledge.ts";
import type { TrainingValidatorMessage } from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { lossFraud } from "../training/_loss_fraud.ts";
import { TEST_ARCH } from "../training/_fixtures.ts";
import { f, HONEST_MODELS } from "../actors/_validator_fixture.ts";
import {
  caughtCheat,
  joinLedgerNodes,
  type LedgerNode,
  spawnLedgerNode,
  stakeIn,
} from "./_ledger_node.ts";

const WORKER_STAKE = 1_000_000;

Deno.test("a fraud proof passed on to a peer that lacks its accuser's pledge is preceded by the pledge: the peer slashes the cheat too", async () => {
  const system = new ActorSystem({ name: "proof-pledge-order-test" });
  const dir = await Deno.makeTempDir();
  const [b, c, worker, accuser, requester] = Array.from({ length: 5 }, Identity.generate);
  try {
    const node = (name: string, identity: Identity) =>
      spawnLedgerNode(system, dir, name, {
        identity,
        pledge: signStakePledge(identity, 10_000, 1),
        models: HONEST_MODELS,
      });
    const [nodeB, nodeC] = await Promise.all([node("b", b), node("c", c)]);
    const peer = "dd".repeat(32); // where the evidence reaches B from
    const pledge = (to: LedgerNode, key: Identity, amount: number) =>
      to.validator.ask({ type: "pledge", pledge: signStakePledge(key, amount, 1), origin: peer });

    // B holds the accuser's pledge, then more newer ones than it pushes on connect: the
    // accuser's (idle, the oldest) is not among those C gets when they join.
    assert.equal(await pledge(nodeB, accuser, 50_000), true);
    for (let i = 0; i <= PLEDGES_PUSHED_ON_CONNECT; i++) {
      assert.equal(await pledge(nodeB, Identity.generate(), 1_000), true);
    }
    for (const to of [nodeB, nodeC]) await pledge(to, worker, WORKER_STAKE);

    // A cheat (its tokens come from another model than the one it names), its receipt in both
    // ledgers, and the accuser's confirmed proof of it.
    const { id, fraudProof } = await caughtCheat(
      [nodeB, nodeC],
      { worker, requester, accuser, tag: "pledge-order" },
    );

    await joinLedgerNodes(nodeB, nodeC);
    await eventually(async () => (await stakeIn(nodeC, b)) === 10_000, "C to record B's pledge");
    assert.equal(await stakeIn(nodeC, accuser), 0, "C has not heard of the accuser");

    // The proof reaches B, which checks it, settles it and passes it on to C.
    const handled = await nodeB.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: peer,
    });
    assert.equal(handled.queued, true);
    await handled.result;
    const recordIn = (n: LedgerNode) =>
      n.validator.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id });
    assert.equal((await recordIn(nodeB))?.status, "fraud");

    // C took the proof one way or the other (checked, or skipped), then: the same outcome as B.
    await eventually(async () => {
      const stats = await nodeC.validator.ask<ValidatorStats>({ type: "stats" });
      return stats.fraudProofsChecked + stats.fraudProofsSkipped > 0;
    }, "C to take the proof");
    await eventually(async () => {
      const stats = await nodeC.validator.ask<ValidatorStats>({ type: "stats" });
      return stats.fraudProofsSkipped > 0 || (await recordIn(nodeC))?.status !== "pending";
    }, "C to settle it or skip it");
    assert.equal((await recordIn(nodeC))?.status, "fraud", "C slashes the cheat as B did");
    assert.equal(await stakeIn(nodeC, worker), await stakeIn(nodeB, worker));
    assert.ok(await stakeIn(nodeC, worker) < WORKER_STAKE);
    assert.equal(await stakeIn(nodeC, accuser), 50_000, "the accuser's pledge came with it");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Stands in for a node's TrainingValidator: at each peer's training fraud proof, reads what its
 * ledger holds of the accuser's stake, as the real intake does (`unstaked_accuser`).
 */
class StakeAtIntake implements Actor<TrainingValidatorMessage> {
  constructor(readonly ledger: string, readonly seen: number[]) {}

  async receive(message: TrainingValidatorMessage, ctx: ActorContext<TrainingValidatorMessage>) {
    if (message.type !== "fraud_proof") return undefined;
    const account = await ctx.system.lookup<{ type: "account"; key: Uint8Array }>(this.ledger)!
      .ask<Account>({ type: "account", key: message.body.proof.validator });
    this.seen.push(account.stake);
    return undefined;
  }
}

Deno.test("a training fraud proof passed on to a peer that lacks its accuser's pledge is preceded by the pledge: the peer's intake finds the stake", async () => {
  const system = new ActorSystem({ name: "training-proof-pledge-order-test" });
  const dir = await Deno.makeTempDir();
  const [b, c, accuser] = Array.from({ length: 3 }, Identity.generate);
  const seen: number[] = [];
  try {
    for (const name of ["b", "c"]) {
      await system.spawn<TrainingValidatorMessage>({
        name: `${name}/training`,
        factory: () => new StakeAtIntake(`${name}/validator`, seen),
      });
    }
    const node = (name: string, identity: Identity) =>
      spawnLedgerNode(system, dir, name, {
        identity,
        pledge: signStakePledge(identity, 10_000, 1),
        models: HONEST_MODELS,
        trainingValidator: `${name}/training`,
      });
    const [nodeB, nodeC] = await Promise.all([node("b", b), node("c", c)]);
    const pledge = (key: Identity, amount: number) =>
      nodeB.validator.ask({
        type: "pledge",
        pledge: signStakePledge(key, amount, 1),
        origin: "dd".repeat(32),
      });
    assert.equal(await pledge(accuser, 50_000), true);
    for (let i = 0; i <= PLEDGES_PUSHED_ON_CONNECT; i++) {
      assert.equal(await pledge(Identity.generate(), 1_000), true);
    }
    await joinLedgerNodes(nodeB, nodeC);
    const stakeInC = (key: Identity) => stakeIn(nodeC, key);
    await eventually(async () => (await stakeInC(b)) === 10_000, "C to record B's pledge");
    assert.equal(await stakeInC(accuser), 0, "C has not heard of the accuser");

    // B's training validator passes a checked proof on.
    const proof = lossFraud(f.honest.info.cid, accuser);
    await nodeB.network.tell({
      type: "publish_training",
      gossip: { kind: "fraud_proof", body: { proof, arch: TEST_ARCH } },
    });
    await eventually(() => seen.length > 0, "the proof to reach C's training intake");
    assert.deepEqual(seen, [50_000], "C's ledger held the accuser's stake when the proof came");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
