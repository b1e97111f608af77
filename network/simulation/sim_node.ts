/**
 * One simulated node: the real NetworkActor and ValidatorActor (with a ledger on disk), named
 * `n<i>/…` in one shared actor system, and an {@link ArrivalTap} between them. No model is
 * loaded anywhere; a worker node serves a `ScriptedInferencePort`. Two nodes are joined by
 * {@link connectNodes}: an in-memory byte pair handed to both NetworkActors (`attach`), so the
 * handshake, named protocols and every message after it are the ones real peers exchange.
 *
 * @module
 */
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor, type ValidatorMessage } from "../../actors/validator_actor.ts";
import type { Connection, ConnectionOptions } from "../../protocols/connection.ts";
import type { Identity } from "../../protocols/identity.ts";
import type { StakePledge } from "../../protocols/stake_pledge.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { NetworkActor, type NetworkMessage } from "../network_actor.ts";
import { type ArrivalLog, ArrivalTap } from "./arrival_log.ts";
import type { TrafficMeter } from "./traffic_meter.ts";

/**
 * Options of every simulated peer connection. No keepalive and no idle timeout: an in-memory
 * link never dies silently, and thousands of connections pinging every 1.5 s would be most of
 * the traffic measured (and of the CPU) while the simulation does anything slow.
 */
export const SIMULATED_CONNECTION: ConnectionOptions = Object.freeze({
  keepaliveMs: 0,
  idleTimeoutMs: 0,
});

/** Options of {@link spawnSimNode}. */
export interface SimNodeOptions {
  /** The shared actor system. */
  system: ActorSystem;
  /** The node's index (its actors are named `n<index>/…`). */
  index: number;
  /** Its key. */
  identity: Identity;
  /** Its ledger directory (created). */
  ledgerDir: string;
  /** Where its first sight of a receipt or verdict is noted. */
  arrivals: ArrivalLog;
  /**
   * Whether it challenges every receipt it records (probability 1) instead of none. Its
   * challenge waits for `modelGate` and then, holding no model, signs an `inconclusive` verdict.
   */
  challenger?: boolean;
  /** Resolves when a challenger may conclude (see {@link SimNodeOptions.challenger}). */
  modelGate?: Promise<void>;
  /** It serves jobs through this port (a worker). */
  inference?: InferencePort;
  /** Its stake pledge, sent to each peer that keeps a ledger on connect. */
  pledge?: StakePledge;
}

/** A running simulated node. */
export interface SimNode {
  /** Its index. */
  index: number;
  /** Its key. */
  identity: Identity;
  /** Its NetworkActor. */
  network: ActorRef<NetworkMessage>;
  /** Its ValidatorActor. */
  validator: ActorRef<ValidatorMessage>;
}

/** Spawn a node's actors (validator first: the network asks it about peers on connect). */
export async function spawnSimNode(options: SimNodeOptions): Promise<SimNode> {
  const { system, index, identity, arrivals } = options;
  const names = {
    network: `n${index}/network`,
    validator: `n${index}/validator`,
    tap: `n${index}/tap`,
  };
  const modelGate = options.modelGate ?? Promise.resolve();
  await system.spawn<NetworkMessage>({
    name: names.tap,
    factory: () => new ArrivalTap(names.network, index, arrivals),
  });
  const validator = await system.spawn<ValidatorMessage>({
    name: names.validator,
    factory: () =>
      new ValidatorActor({
        identity,
        ledgerDir: options.ledgerDir,
        // Every node says it holds the model (so receipts are recorded with credit and drawn),
        // but none ever loads: a challenge concludes `inconclusive` once the gate opens.
        models: { has: () => true, get: () => modelGate.then(() => undefined) },
        challengeProbability: options.challenger ? 1 : 0,
        finalizeIntervalMs: 0, // nothing reaches the end of its window in a simulation
        network: names.tap,
      }),
  });
  const network = await system.spawn<NetworkMessage>({
    name: names.network,
    factory: () =>
      new NetworkActor({
        identity,
        services: { validator: names.validator, inference: options.inference },
        pledge: options.pledge,
        connection: SIMULATED_CONNECTION,
      }),
  });
  return { index, identity, network, validator };
}

/**
 * Join `a` and `b` over an in-memory pair metered by `meter` (`a` dials). Resolves once both
 * handshakes are done and both NetworkActors have the peer in their tables.
 */
export async function connectNodes(a: SimNode, b: SimNode, meter: TrafficMeter): Promise<void> {
  const [toB, toA] = meter.duplexPair();
  const connections = await Promise.all([
    a.network.ask<Connection | undefined>({
      type: "attach",
      duplex: toB,
      address: `sim:${b.index}`,
      outbound: true,
    }),
    b.network.ask<Connection | undefined>({
      type: "attach",
      duplex: toA,
      address: `sim:${a.index}`,
      outbound: false,
    }),
  ]);
  for (const connection of connections) {
    if (connection === undefined) {
      throw new Error(`sim:${a.index} ↔ sim:${b.index}: handshake failed`);
    }
    meter.track(connection);
  }
}
