/**
 * Test fixture: a node as far as pledges and ledgers go — a ValidatorActor keeping its ledger
 * (challenging nothing unless told) and a NetworkActor with the node's pledge, spawned in a node's
 * start order (the validator first) — and a join of two such nodes over an in-memory pair.
 *
 * @module
 */
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ValidatorActor, type ValidatorActorOptions } from "../../actors/validator_actor.ts";
import type { ValidatorMessage, ValidatorModelSource } from "../../actors/validator_messages.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import type { Connection } from "../../protocols/connection.ts";
import type { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import type { StakePledge } from "../../protocols/stake_pledge.ts";

/** The node's actors. */
export interface LedgerNode {
  validator: ActorRef<ValidatorMessage>;
  network: ActorRef<NetworkMessage>;
}

/** Spawn node `name` in `system`, its ledger under `dir/name`. */
export async function spawnLedgerNode(
  system: ActorSystem,
  dir: string,
  name: string,
  options: {
    identity: Identity;
    pledge?: StakePledge;
    models: ValidatorModelSource;
    /** The NetworkActor's clock (default its own). */
    now?: () => number;
    /** Where peers' training gossip goes (an actor path; default: the node offers no training). */
    trainingValidator?: string;
    /** The ledger's clock, ms, which the test moves (default its own). */
    clock?: { t: number };
    /** The validator's challenges: how many (default none) and where proof data comes from. */
    validator?: Pick<ValidatorActorOptions, "challengeProbability" | "source">;
  },
): Promise<LedgerNode> {
  const { identity, pledge, models, now, trainingValidator, clock } = options;
  const validator = await system.spawn<ValidatorMessage>({
    name: `${name}/validator`,
    factory: () =>
      new ValidatorActor({
        identity,
        ledgerDir: `${dir}/${name}`,
        models,
        challengeProbability: 0,
        finalizeIntervalMs: 0,
        network: `${name}/network`,
        ledger: clock === undefined ? undefined : { now: () => clock.t },
        ...options.validator,
      }),
  });
  const network = await system.spawn<NetworkMessage>({
    name: `${name}/network`,
    factory: () =>
      new NetworkActor({
        identity,
        pledge,
        now,
        services: { validator: `${name}/validator`, trainingValidator },
      }),
  });
  return { validator, network };
}

/** Join two nodes in memory (`x` dials); resolves with x's side of the connection. */
export async function joinLedgerNodes(x: LedgerNode, y: LedgerNode): Promise<Connection> {
  const [dx, dy] = memoryDuplexPair();
  const [connection] = await Promise.all([
    x.network.ask<Connection>({ type: "attach", duplex: dx, address: "mem", outbound: true }),
    y.network.ask<Connection>({ type: "attach", duplex: dy, address: "mem", outbound: false }),
  ]);
  return connection;
}
