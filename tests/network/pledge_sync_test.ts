/**
 * Anti-entropy of stake: a node that connects after a pledge was gossiped still learns it,
 * because every connection to a ledger-keeping peer starts with every pledge the other side's
 * ledger holds. Before, gossip reached only the peers connected at the time, so a late joiner
 * never had the stake of keys pledged before it came (and could settle none of their receipts
 * or fraud).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor, type ValidatorMessage } from "../../actors/validator_actor.ts";
import type { Account } from "../../proof/ledger.ts";
import type { NetworkMessage, PeerInfo } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge, type StakePledge } from "../../protocols/stake_pledge.ts";
import { eventually } from "../_helpers/wait.ts";
import { joinLedgerNodes, spawnLedgerNode } from "./_ledger_node.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";

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
