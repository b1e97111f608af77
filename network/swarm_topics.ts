/**
 * The Hyperswarm topics a Veriflow node joins. Every node joins the network topic (it finds
 * some peers of every kind there); besides, a node announces itself on one topic per role it
 * runs and one per model CID it serves, and a node that forwards jobs without running a model
 * looks workers up on the inference role's topic — so in a network too large for everyone to
 * connect to everyone, the peers a node needs are one DHT lookup away.
 *
 * Topics are 32-byte SHA-256 digests of a versioned name, the same on every node. A separate
 * network (its own network topic, as tests use) has role and model topics of its own too, derived
 * from its network topic: its nodes never look up, or announce on, the default network's.
 *
 * @module
 */
import { sha256, toHex } from "../protocols/hash.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import type { PeerRole } from "../protocols/peer_hello.ts";

const encoder = new TextEncoder();

/** The topic every Veriflow node announces itself on and looks peers up under. */
export const NETWORK_TOPIC: Uint8Array = sha256(encoder.encode("veriflow/network/v1"));

/** What names a separate network's topics apart: nothing for the default network. */
function networkSuffix(network: Uint8Array): string {
  return bytesEqual(network, NETWORK_TOPIC) ? "" : `@${toHex(network)}`;
}

/** The topic of the nodes that run `role` (in the network whose topic is `network`). */
export function roleTopic(role: PeerRole, network: Uint8Array = NETWORK_TOPIC): Uint8Array {
  return sha256(encoder.encode(`veriflow/role/v1/${role}${networkSuffix(network)}`));
}

/** The topic of the workers that serve the model `cid` (in the network whose topic is `network`). */
export function modelTopic(cid: string, network: Uint8Array = NETWORK_TOPIC): Uint8Array {
  return sha256(encoder.encode(`veriflow/model/v1/${cid}${networkSuffix(network)}`));
}

/** A topic to join, and how: announce (server), look up (client), or both. */
export interface TopicJoin {
  /** Which topic. */
  topic: Uint8Array;
  /** What it is, for logs (`network`, `role:storage`, `model:bafk…`). */
  name: string;
  /** Announce this node on it. */
  server: boolean;
  /** Look peers up on it. */
  client: boolean;
}

/**
 * The topics of a node that runs `roles` and serves `models`. `forwardsJobs`: it takes
 * clients' jobs without a model of its own, so it looks up workers. `network`: the network's
 * topic (default {@link NETWORK_TOPIC}); the role and model topics are that network's.
 *
 * @example
 * ```ts
 * import { nodeTopics } from "./swarm_topics.ts";
 * const topics = nodeTopics(["storage", "validator"], [], true);
 * console.log(topics.map((t) => t.name)); // network, role:storage, role:validator, role:inference
 * ```
 */
export function nodeTopics(
  roles: readonly PeerRole[],
  models: readonly string[],
  forwardsJobs: boolean,
  network: Uint8Array = NETWORK_TOPIC,
): TopicJoin[] {
  const joins: TopicJoin[] = [
    { topic: network, name: "network", server: true, client: true },
  ];
  for (const role of roles) {
    joins.push({
      topic: roleTopic(role, network),
      name: `role:${role}`,
      server: true,
      client: false,
    });
  }
  for (const cid of models) {
    joins.push({
      topic: modelTopic(cid, network),
      name: `model:${cid}`,
      server: true,
      client: false,
    });
  }
  if (forwardsJobs && !roles.includes("inference")) {
    joins.push({
      topic: roleTopic("inference", network),
      name: "role:inference",
      server: false,
      client: true,
    });
  }
  return joins;
}
