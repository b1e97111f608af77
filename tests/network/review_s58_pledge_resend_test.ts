/**
 * Review s58: a pledge a connection carried but the peer's ledger never recorded.
 *
 * A node sends a fraud proof (or a "proof withheld" claim) after its author's pledge, on the same
 * connection, unless that connection carried the pledge already (`PledgeSync.sendAhead`). A pledge
 * is a one-way notify: the memo says "sent", not "recorded". A peer whose validator was restarting
 * when the pledge came (its NetworkActor finds no validator and drops it; a crashed validator's
 * mailbox goes with it) never records it, and every later piece of evidence by that author on
 * that connection went without it: the peer held the proof for a pledge nothing else sends, and
 * paid the cheat that every other ledger slashed.
 *
 * The set-up: B — C, on the test's clock. The accuser A is connected to neither. A's pledge
 * reaches B while C's validator is down (a stand-in drops what it is handed, then the real one
 * starts again on the same ledger); A's fraud proof reaches B two minutes later, inside the
 * receipt's challenge window.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Actor } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled, ValidatorMessage } from "../../actors/validator_messages.ts";
import { CARRIED_PLEDGE_TTL_MS } from "../../network/pledge_sync.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "../actors/_validator_fixture.ts";
import {
  caughtCheat,
  joinLedgerNodes,
  ledgerNodeValidator,
  spawnNetworkNode,
  spawnPledgedNode,
  stakeIn,
} from "./_ledger_node.ts";

const STAKE = 1_000_000;

/** A validator down (restarting): what it is handed is lost; it notes each message's type. */
class Restarting implements Actor<ValidatorMessage> {
  constructor(readonly seen: string[]) {}

  receive(message: ValidatorMessage): unknown {
    this.seen.push(message.type);
    return undefined;
  }
}

Deno.test("review s58: a fraud proof passed on to a peer whose validator missed its accuser's pledge (restarting) goes after the pledge again: the cheat is slashed there too, not paid", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "s58-pledge-resend" });
  try {
    const [b, c, accuser, worker, requester] = Array.from({ length: 5 }, Identity.generate);
    const node = (name: string, identity: Identity) =>
      spawnPledgedNode(system, dir, name, identity, clock);
    const [nodeB, nodeC] = [await node("b", b), await node("c", c)];
    // A cheat (its tokens come from another model than the one it names), its receipt in both
    // ledgers, and the accuser's proof of it.
    const { id, fraudProof } = await caughtCheat(
      [nodeB, nodeC],
      { worker, requester, accuser, tag: "s58-pledge-resend" },
      [worker],
      STAKE,
    );
    await joinLedgerNodes(nodeB, nodeC);
    await eventually(async () => (await stakeIn(nodeC, b)) === 10_000, "C to record B's pledge");
    await eventually(async () => (await stakeIn(nodeB, c)) === 10_000, "B to record C's pledge");

    // C's validator goes down; A's pledge reaches B meanwhile, and B passes it on to C.
    assert.equal(await system.stop("c/validator"), true);
    const lost: string[] = [];
    await system.spawn<ValidatorMessage>({
      name: "c/validator",
      factory: () => new Restarting(lost),
    });
    const peer = "dd".repeat(32); // where A's evidence reaches B from
    assert.equal(
      await nodeB.validator.ask({
        type: "pledge",
        pledge: signStakePledge(accuser, 50_000, 1),
        origin: peer,
      }),
      true,
    );
    await eventually(() => Promise.resolve(lost.includes("pledge")), "the pledge to reach C");
    // C's validator starts again on its ledger, which never recorded A's pledge.
    assert.equal(await system.stop("c/validator"), true);
    await system.spawn<ValidatorMessage>({
      name: "c/validator",
      factory: () => ledgerNodeValidator(dir, "c", { identity: c, models: HONEST_MODELS, clock }),
    });
    const readsB = ledgerReads(() => nodeB.validator, clock);
    // Looked up by name: the validator that runs now is a new ref under the same name.
    const readsC = ledgerReads(() => system.lookup<ValidatorMessage>("c/validator")!, clock);
    assert.equal((await readsC.account(accuser.publicKey)).stake, 0, "C missed A's pledge");

    // Later, inside the receipt's window, A's proof reaches B, which confirms it and passes it on.
    clock.t += 2 * CARRIED_PLEDGE_TTL_MS;
    assert.ok(clock.t < START + DEFAULT_ECONOMICS.challengeWindowMs / 2);
    const handled = await nodeB.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: peer,
    });
    assert.equal(handled.queued, true);
    await handled.result;
    assert.equal((await readsB.record(id))?.status, "fraud");
    await eventually(
      async () => (await readsC.record(id))?.status === "fraud",
      "C to settle the proof",
    ).catch(() => {}); // held there for want of the pledge: the window closes below

    await readsC.closeWindow();
    assert.equal((await readsC.record(id))?.status, "fraud", "C paid the cheat B slashed");
    const account = await readsC.account(worker.publicKey);
    assert.equal(account.balance, 0, "the cheat was paid in C");
    assert.equal(account.stake, (await readsB.account(worker.publicKey)).stake);
    assert.ok(account.stake < STAKE, "the cheat was not slashed in C");
    assert.equal((await readsC.account(accuser.publicKey)).stake, 50_000, "A's pledge came again");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A ledger as far as a NetworkActor asks one: it notes the pledges and claims it is handed (in the
 * order handed) and answers the rest with nothing held.
 */
class RecordingLedger implements Actor<ValidatorMessage> {
  constructor(readonly handed: string[]) {}

  receive(message: ValidatorMessage): unknown {
    switch (message.type) {
      case "pledge":
        this.handed.push(`pledge ${toHex(message.pledge.key).slice(0, 8)}`);
        return true;
      case "verdict":
        this.handed.push(`claim ${toHex(message.verdict.validator).slice(0, 8)}`);
        return undefined;
      case "receipt":
        return { receiptId: "", recorded: true, challenged: false, draw: 1 };
      case "pledges":
      case "catch_up":
        return [];
      case "convicted":
        return false;
      default:
        return undefined;
    }
  }
}

Deno.test("review s58: a claimant's pledge goes ahead of its claims once per connection while the memo is fresh, and again ahead of a claim once it is older than CARRIED_PLEDGE_TTL_MS", async () => {
  const system = new ActorSystem({ name: "s58-pledge-memo" });
  const clock = { t: START };
  try {
    const [b, c, claimant, worker, requester] = Array.from({ length: 5 }, Identity.generate);
    const pledge = signStakePledge(claimant, 50_000, 1);
    const handedAtC: string[] = [];
    const node = (name: string, identity: Identity, handed: string[]) =>
      spawnNetworkNode(system, name, identity, () => new RecordingLedger(handed), () => clock.t);
    const nodeB = await node("b", b, []);
    const nodeC = await node("c", c, handedAtC);
    await joinLedgerNodes(nodeB, nodeC);
    const claim = async (n: number) => {
      const { receipt } = await proveOn(textJob(requester, `s58-memo-${n}`), worker);
      await nodeB.network.tell({
        type: "publish_accusation",
        accusation: {
          kind: "withheld",
          verdict: withheldVerdict(receiptId(receipt), worker.publicKey, clock.t, claimant),
        },
        pledge,
      });
    };
    const claims = () => handedAtC.filter((m) => m.startsWith("claim")).length;
    await claim(1);
    clock.t += CARRIED_PLEDGE_TTL_MS - 1;
    await claim(2);
    await eventually(() => Promise.resolve(claims() === 2), "C to be handed two claims");
    clock.t += 1;
    await claim(3);
    await eventually(() => Promise.resolve(claims() === 3), "C to be handed the third claim");
    const tag = toHex(claimant.publicKey).slice(0, 8);
    assert.deepEqual(handedAtC, [
      `pledge ${tag}`,
      `claim ${tag}`,
      `claim ${tag}`,
      `pledge ${tag}`,
      `claim ${tag}`,
    ]);
  } finally {
    await system.shutdown();
  }
});
