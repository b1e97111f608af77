/**
 * A network actor with the node's `/metrics` collectors over it, and peers connected to it over
 * memory: the setup the peer-version metric tests share (`peer_version_cap_test.ts`,
 * `peer_version_metrics_test.ts`). Only the network is real; the prover and validator are absent,
 * so the page shows what the peers' hellos put there.
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { PEER_PROTOCOL } from "../../protocols/peer_hello.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";

/** The actor system (the test shuts it down), its network actor and the `/metrics` registry. */
export interface NetworkMetrics {
  system: ActorSystem;
  net: ActorRef<NetworkMessage>;
  metrics: MetricsRegistry;
}

/** A network actor in a new system named `name`, with the node's collectors registered. */
export async function networkWithMetrics(name: string): Promise<NetworkMetrics> {
  const system = new ActorSystem({ name });
  const net = await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  return { system, net, metrics: metricsOver(net) };
}

/** A `/metrics` registry with the node's collectors over `net` alone (no prover, no validator). */
export function metricsOver(net: ActorRef<NetworkMessage>): MetricsRegistry {
  const metrics = new MetricsRegistry();
  const collectors = nodeCollectors({
    publicKey: new Uint8Array(32),
    prover: () => undefined,
    validator: () => undefined,
    network: () => net,
  });
  for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);
  return metrics;
}

/** A peer of its own identity, attached to `net` as an inbound connection from `address`. */
export async function connectPeer(
  net: ActorRef<NetworkMessage>,
  address: string,
): Promise<{ identity: Identity; peer: Connection }> {
  const identity = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const [, peer] = await Promise.all([
    net.ask({ type: "attach", duplex: a, address, outbound: false }),
    Connection.open(b, { identity, protocols: [PEER_PROTOCOL] }),
  ]);
  return { identity, peer };
}
