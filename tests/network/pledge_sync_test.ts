/**
 * Anti-entropy of stake (`network/pledge_sync.ts`): pledges pushed on connect, a key's two pledges
 * convicting it across ledgers, a pledge a connection carried but the peer never recorded, and a
 * validator down at the connect.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor, type ValidatorMessage } from "../../actors/validator_actor.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import type { NetworkMessage, PeerInfo } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge, type StakePledge } from "../../protocols/stake_pledge.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  caughtCheat,
  inLedgerSetting,
  joinLedgerNodes,
  joinWhileValidatorDown,
  type LedgerNode,
  ledgerNodeValidator,
  spawnLedgerNode,
  spawnNetworkNode,
  spawnPledgedNode,
  spawnSettingNode,
  STAKE,
  stakeIn,
} from "./_ledger_node.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { toHex } from "../../protocols/hash.ts";
import type { FraudProofHandled } from "../../actors/validator_messages.ts";
import {
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "../actors/_validator_fixture.ts";
import type { Actor } from "../../actors/actor.ts";
import { CARRIED_PLEDGE_TTL_MS } from "../../network/pledge_sync.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";

// ---- pledge sync ----------------------------------------------------------------------------------
// Anti-entropy of stake: a node that connects after a pledge was gossiped still learns it, because
// every connection to a ledger-keeping peer starts with every pledge the other side's ledger holds.
// Before, gossip reached only the peers connected at the time, so a late joiner never had the stake
// of keys pledged before it came (and could settle none of their receipts or fraud).

const NO_MODELS = { get: () => Promise.resolve(undefined) };

Deno.test("a node that connects after a pledge was gossiped learns it from the peer it joins: its ledger holds the pledger's stake", async () => {
  const system = new ActorSystem({ name: "pledge-sync-test" });
  const dir = await Deno.makeTempDir();
  const [a, b, c] = [Identity.generate(), Identity.generate(), Identity.generate()];
  const pledgeOf = new Map<Identity, StakePledge>(
    [a, b, c].map((id, i) => [id, signStakePledge(id, 5_000 + i, 1)]),
  );
  try {
    /** A node: a network actor with its pledge, and a validator keeping its ledger. */
    const node = (name: string, identity: Identity) =>
      spawnLedgerNode(system, dir, name, {
        identity,
        pledge: pledgeOf.get(identity),
        models: NO_MODELS,
      });
    const [nodeA, nodeB, nodeC] = await Promise.all([node("a", a), node("b", b), node("c", c)]);
    const join = joinLedgerNodes;
    const stakeIn = (v: typeof nodeB, key: Identity) =>
      v.validator.ask<Account>({ type: "account", key: key.publicKey });

    const ab = await join(nodeA, nodeB);
    await eventually(
      async () => (await stakeIn(nodeB, a)).stake === 5_000,
      "B to record A's pledge",
    );
    // A leaves before C arrives: only B's ledger can tell C about A's stake.
    await ab.close();
    await eventually(
      async () => (await nodeB.network.ask<PeerInfo[]>({ type: "peers" })).length === 0,
      "A to be gone from B's table",
    );
    assert.equal((await stakeIn(nodeC, a)).stake, 0, "C has never heard of A");

    await join(nodeB, nodeC);
    await eventually(
      async () => (await stakeIn(nodeC, a)).stake === 5_000,
      "C to record A's pledge, from B's ledger",
    );
    // What C holds is A's own signed pledge, which C can pass on in turn; and B's own stake.
    const heldByC = await nodeC.validator.ask<StakePledge[]>({ type: "pledges" });
    assert.deepEqual(
      heldByC.find((p) => p.key.every((x, i) => x === a.publicKey[i])),
      pledgeOf.get(a),
    );
    assert.equal((await stakeIn(nodeC, b)).stake, 5_001);
    // And the other way: B learns C's stake; each key's stake is recorded once in each ledger.
    await eventually(async () => (await stakeIn(nodeB, c)).stake === 5_002, "B to record C's");
    for (const v of [nodeB, nodeC]) {
      const held = await v.validator.ask<StakePledge[]>({ type: "pledges" });
      const keys = held.map((p) => p.key.join());
      assert.equal(new Set(keys).size, keys.length);
    }
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Records what the validator tells the network. */
Deno.test("a pledge that comes again, from any peer, is not recorded or passed on again: anti-entropy does not echo", async () => {
  const system = new ActorSystem({ name: "pledge-echo-test" });
  const dir = await Deno.makeTempDir();
  const told: NetworkMessage[] = [];
  try {
    await system.spawn<NetworkMessage>({ name: "net", factory: () => new RecordingNetwork(told) });
    const validator = await system.spawn<ValidatorMessage>({
      name: "validator",
      factory: () =>
        new ValidatorActor({
          identity: Identity.generate(),
          ledgerDir: dir,
          models: NO_MODELS,
          finalizeIntervalMs: 0,
          network: "net",
        }),
    });
    const worker = Identity.generate();
    const pledge = signStakePledge(worker, 700, 1);
    const [first, second] = ["aa".repeat(32), "bb".repeat(32)];
    assert.equal(await validator.ask({ type: "pledge", pledge, origin: first }), true);
    assert.equal(await validator.ask({ type: "pledge", pledge, origin: second }), false);
    // A forged copy of a known key's pledge changes nothing either (and costs no signature check).
    const forged = { ...pledge, amount: 70_000 };
    assert.equal(await validator.ask({ type: "pledge", pledge: forged, origin: second }), false);
    const passedOn = told.filter((m) => m.type === "publish_pledge");
    assert.equal(passedOn.length, 1, "passed on once, when it was new");
    assert.deepEqual(await validator.ask({ type: "pledges" }), [pledge]);
    assert.equal(
      (await validator.ask<Account>({ type: "account", key: worker.publicKey })).stake,
      700,
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- pledge equivocation gossip -------------------------------------------------------------------
// A key's two pledges reach a ledger that holds neither and never meets the ledger that held the
// other: the conviction travels by gossip. B holds the key's small pledge, C its large one, D gets
// C's on connect; B and C then meet and each convicts the key, and C passes on the second pledge it
// learned (B's) with its first, so D convicts the key too though it never connects to B. The gossip
// is the pledge gossip, out of each peer's pledge budget (`network/pledge_sync.ts`).

Deno.test("a key's two pledges: a ledger that got only one of them on connect convicts the key too, once a peer that came to hold both passes the other on", () =>
  inLedgerSetting("pledge-equivocation-gossip", async (setting) => {
    const { system } = setting;
    const [b, c, d, hostile] = [1, 2, 3, 4].map(() => Identity.generate());
    const nodeB = await spawnSettingNode(setting, system, "b", b);
    const nodeC = await spawnSettingNode(setting, system, "c", c);
    const nodeD = await spawnSettingNode(setting, system, "d", d);
    const origin = toHex(hostile.publicKey);
    await nodeB.validator.ask({
      type: "pledge",
      pledge: signStakePledge(hostile, 1_000, 1),
      origin,
    });
    await nodeC.validator.ask({
      type: "pledge",
      pledge: signStakePledge(hostile, 1_000_000, 2),
      origin,
    });
    const accountIn = (node: typeof nodeB) =>
      node.validator.ask<Account>({ type: "account", key: hostile.publicKey });

    await joinLedgerNodes(nodeC, nodeD);
    await eventually(
      async () => (await accountIn(nodeD)).stake === 1_000_000,
      "D to record C's pledge of the key",
      { timeoutMs: 10_000 },
    );
    await joinLedgerNodes(nodeB, nodeC);
    await eventually(
      async () => (await accountIn(nodeD)).stake === 0,
      "D to convict the key of pledge equivocation",
      { timeoutMs: 10_000 },
    );
    for (const node of [nodeB, nodeC, nodeD]) {
      assert.deepEqual(await accountIn(node), { balance: 0, stake: 0, locked: 0 });
      assert.equal(await node.validator.ask({ type: "convicted", key: hostile.publicKey }), true);
    }
  }));

// ---- pledge equivocation --------------------------------------------------------------------------
// A key that signs two pledges of different amounts and hands one to each of two honest ledgers.
// Each ledger records a key's pledge once, the first it sees (`protocols/stake_pledge.ts`,
// `proof/_ledger_pledges.ts`), and refuses every later one of that key; the pledge push on connect
// (`PledgeSync.sendPledges`) then carries each ledger's pledge to the other, which refuses it as a
// second pledge of a staked key. The two ledgers hold different stakes for that key for good: a
// receipt of it that locks more than the smaller stake is recorded in one and refused
// (`insufficient_stake`) in the other, and a conviction slashes each its own amount — the honest
// ledgers end with different balances.
//
// Fixed (stop 66): two valid pledges of one key that differ are a proof of its equivocation. A
// ledger that holds both records the second (`pledge_equivocation`) and convicts the key: its
// stake and balance are forfeited (`proof/ledger_state.ts`), whichever pledge it heard first; and
// it passes the second on, with the first, to its peers, so each honest ledger that holds either
// comes to hold both. Here each ledger's connect push carries its pledge to the other, and both
// end with the key's stake at nothing (`tests/proof/ledger_pledges_test.ts` pins the
// ledger rule with receipts recorded in between).

Deno.test({
  name:
    "a key's two pledges of different amounts, one handed to each of two honest ledgers, convict it in both once they meet: its stake is forfeited alike",
  fn: () =>
    inLedgerSetting("s65-pledge-equivocation", async (setting) => {
      const { system } = setting;
      const [b, c, hostile] = [1, 2, 3].map(() => Identity.generate());
      const nodeB = await spawnSettingNode(setting, system, "b", b);
      const nodeC = await spawnSettingNode(setting, system, "c", c);
      const low = signStakePledge(hostile, 1_000, 1);
      const high = signStakePledge(hostile, 1_000_000, 2);
      const origin = toHex(hostile.publicKey);
      await nodeB.validator.ask({ type: "pledge", pledge: low, origin });
      await nodeC.validator.ask({ type: "pledge", pledge: high, origin });
      const stakeIn = async (node: typeof nodeB) =>
        (await node.validator.ask<Account>({ type: "account", key: hostile.publicKey })).stake;
      assert.equal(await stakeIn(nodeB), 1_000);

      // The honest ledgers meet: each pushes the pledge it holds to the other.
      await joinLedgerNodes(nodeB, nodeC);
      await eventually(
        async () => (await stakeIn(nodeB)) === 0 && (await stakeIn(nodeC)) === 0,
        "B and C to convict the key of pledge equivocation",
        { timeoutMs: 10_000 },
      );
      for (const node of [nodeB, nodeC]) {
        assert.deepEqual(
          await node.validator.ask<Account>({ type: "account", key: hostile.publicKey }),
          { balance: 0, stake: 0, locked: 0 },
        );
        assert.equal(
          await node.validator.ask({ type: "convicted", key: hostile.publicKey }),
          true,
        );
      }
    }),
});

// ---- pledge validator back ------------------------------------------------------------------------
// The pledges a node pushes to a ledger-keeping peer on connect (`PledgeSync.sendPledges`) were
// asked of its validator once: a validator down at that moment (stopped, restarting after a crash,
// too busy) sent that peer none of them for as long as the connection lasted. The catch-up on the
// same connection waits for the validator since 437a412 (`network/_validator_ask.ts`), so the peer
// was then sent this node's convictions — each a fraud proof that counts in a ledger only from an
// accuser with stake there — but never the accusers' pledges, which only that push carries
// (`network/catch_up.ts`). The peer held the proof for a pledge nothing sent, and paid the cheat
// this node slashed.
//
// A holds the accuser's pledge (C does not), and has settled the accuser's fraud proof of the
// cheat's receipt, which both ledgers recorded; A's validator stops; C connects to A; A's
// validator comes back. Asserted on both ledgers: C records the accuser's pledge, and the
// conviction settles in C as in A (the receipt fraud, the cheat's stake the same in both).

const ACCUSER_STAKE = 50_000;

Deno.test("a ledger that connects while A's validator is down is sent A's pledges once the validator is back: the accuser's stake is recorded in C, and A's conviction settles in C as in A", () =>
  inLedgerSetting("s65-pledge-validator-back", async (setting) => {
    const { dir, clock, system } = setting;
    const [a, c, worker, accuser, requester] = [1, 2, 3, 4, 5].map(() => Identity.generate());
    const nodeA = await spawnSettingNode(setting, system, "a", a);
    const nodeC = await spawnSettingNode(setting, system, "c", c);
    const peer = "dd".repeat(32); // where the accuser's pledge and proof reach A from
    const pledge = signStakePledge(accuser, ACCUSER_STAKE, 1);
    assert.equal(await nodeA.validator.ask({ type: "pledge", pledge, origin: peer }), true);
    const { id, fraudProof } = await caughtCheat(
      [nodeA, nodeC],
      { worker, requester, accuser, tag: "s65-pledge-validator-back" },
      [worker],
      STAKE,
    );
    const handled = await nodeA.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: peer,
    });
    await handled.result;
    const recordIn = (node: LedgerNode) =>
      node.validator.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id });
    assert.equal((await recordIn(nodeA))?.status, "fraud");
    assert.equal(await stakeIn(nodeC, accuser), 0, "C has not heard of the accuser");

    const aAgain = await joinWhileValidatorDown(system, dir, nodeC, nodeA, {
      identity: a,
      models: HONEST_MODELS,
      clock,
    });

    await eventually(
      async () => (await stakeIn(nodeC, accuser)) === ACCUSER_STAKE,
      "C to record the accuser's pledge from A's push, once A's validator is back",
    );
    await eventually(
      async () => (await recordIn(nodeC))?.status === "fraud",
      "C to settle the conviction it held for the accuser's pledge",
    );
    assert.equal((await recordIn(aAgain))?.status, "fraud");
    assert.equal(await stakeIn(nodeC, worker), await stakeIn(aAgain, worker), "slashed alike");
    assert.ok(await stakeIn(nodeC, worker) < STAKE, "the cheat is slashed in C");
  }));

// ---- pledge resend --------------------------------------------------------------------------------
// A pledge a connection carried but the peer's ledger never recorded.
//
// A node sends a fraud proof (or a "proof withheld" claim) after its author's pledge, on the same
// connection, unless that connection carried the pledge already (`PledgeSync.sendAhead`). A pledge
// is a one-way notify: the memo says "sent", not "recorded". A peer whose validator was restarting
// when the pledge came (its NetworkActor finds no validator and drops it; a crashed validator's
// mailbox goes with it) never records it, and every later piece of evidence by that author on
// that connection went without it: the peer held the proof for a pledge nothing else sends, and
// paid the cheat that every other ledger slashed.
//
// The set-up: B — C, on the test's clock. The accuser A is connected to neither. A's pledge
// reaches B while C's validator is down (a stand-in drops what it is handed, then the real one
// starts again on the same ledger); A's fraud proof reaches B two minutes later, inside the
// receipt's challenge window.

const STAKE_PLEDGE_RESEND = 1_000_000;

/** A validator down (restarting): what it is handed is lost; it notes each message's type. */
class Restarting implements Actor<ValidatorMessage> {
  constructor(readonly seen: string[]) {}

  receive(message: ValidatorMessage): unknown {
    this.seen.push(message.type);
    return undefined;
  }
}

Deno.test("a fraud proof passed on to a peer whose validator missed its accuser's pledge (restarting) goes after the pledge again: the cheat is slashed there too, not paid", async () => {
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
      STAKE_PLEDGE_RESEND,
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
    assert.ok(account.stake < STAKE_PLEDGE_RESEND, "the cheat was not slashed in C");
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

Deno.test("a claimant's pledge goes ahead of its claims once per connection while the memo is fresh, and again ahead of a claim once it is older than CARRIED_PLEDGE_TTL_MS", async () => {
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
