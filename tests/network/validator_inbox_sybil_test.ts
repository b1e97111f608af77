/**
 * While a node's validator restarts, its inbox (`network/_validator_inbox.ts`) holds the peers'
 * evidence, in bounded shares. Those shares were per peer key (an eighth each), so eight
 * throwaway keys, one connection each, filled all of it, and an honest peer's evidence that came
 * next was dropped: the honest worker whose pledge it carried had no stake in this ledger after
 * the restart (review s71, finding 3). Keys with no standing in the ledger now share a part of
 * the hold, and a key with standing (stake or credit recorded before) still finds room.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { MAX_HELD_NEWCOMERS, MAX_HELD_PER_PEER } from "../../network/_validator_inbox.ts";
import { peerOriginsOf } from "../../network/_peer_origins.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  StakeAnnouncementMessage,
  VALIDATION_PROTOCOL,
} from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { HONEST_MODELS } from "../actors/_validator_fixture.ts";
import { eventually } from "../_helpers/wait.ts";
import { type LedgerNode, ledgerNodeValidator, spawnLedgerNode, STAKE } from "./_ledger_node.ts";
import { stoppedValidator } from "./_validator_down.ts";

/** Throwaway keys, one connection each: eight filled the hold when shares were per key. */
const ATTACKERS = 8;

/** A peer with `identity` (default a fresh key) connected to `node` over an in-memory link. */
async function connect(node: LedgerNode, identity = Identity.generate()): Promise<Connection> {
  const [near, far] = memoryDuplexPair();
  const [, ours] = await Promise.all([
    node.network.ask({ type: "attach", duplex: near, address: "mem", outbound: false }),
    Connection.open(far, { identity, protocols: [VALIDATION_PROTOCOL] }),
  ]);
  return ours;
}

Deno.test("throwaway keys flooding the evidence hold while the validator restarts do not crowd out a staked peer's evidence: the honest worker it vouched for is staked in this ledger after the restart", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "s71-inbox-sybil" });
  const connections: Connection[] = [];
  try {
    const vId = Identity.generate();
    const options = {
      identity: vId,
      pledge: signStakePledge(vId, STAKE, 1),
      models: HONEST_MODELS,
    };
    const v = await spawnLedgerNode(system, dir, "v", options);
    // The honest peer: staked in V's ledger before (its own pledge, brought on its connection).
    const honestId = Identity.generate();
    const honest = await connect(v, honestId);
    connections.push(honest);
    await honest.notify(StakeAnnouncementMessage, { pledge: signStakePledge(honestId, STAKE, 1) });
    await eventually(
      async () =>
        (await v.validator.ask<{ stake: number }>({ type: "account", key: honestId.publicKey }))
          .stake === STAKE,
      "the honest peer's stake in V",
    );
    // What V's inbox knows of it (asked of the ledger once V took its pledge).
    await eventually(
      () => peerOriginsOf(system).of(toHex(honestId.publicKey)).standing,
      "the honest peer's standing known to V's inbox",
    );

    const { back } = await stoppedValidator<ValidatorMessage>(
      system,
      "v/validator",
      () => ledgerNodeValidator(dir, "v", options),
    );
    for (let a = 0; a < ATTACKERS; a++) {
      const attacker = await connect(v);
      connections.push(attacker);
      await Promise.all(
        Array.from({ length: MAX_HELD_PER_PEER }, () =>
          attacker.notify(StakeAnnouncementMessage, {
            pledge: signStakePledge(Identity.generate(), 1, 1),
          })),
      );
      // Handled in order on its connection: the answer to a ping behind them says they were.
      await attacker.ping();
    }
    const worker = Identity.generate();
    await honest.notify(StakeAnnouncementMessage, { pledge: signStakePledge(worker, STAKE, 1) });
    await honest.ping();
    await back();

    const validator = system.lookup<ValidatorMessage>("v/validator")!;
    const stake = await eventually(
      async () => {
        const { stake } = await validator.ask<{ stake: number }>({
          type: "account",
          key: worker.publicKey,
        });
        return stake === STAKE ? stake : undefined;
      },
      "the honest worker's stake in V after the restart",
    );
    assert.equal(stake, STAKE);
    // The throwaway keys' junk got at most the newcomers' part of the hold (V's, the honest
    // peer's and the worker's own pledges besides).
    const pledges = await validator.ask<unknown[]>({ type: "pledges" });
    assert.ok(pledges.length <= MAX_HELD_NEWCOMERS + 3, `${pledges.length} pledges recorded`);
  } finally {
    await Promise.all(connections.map((c) => c.close()));
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
