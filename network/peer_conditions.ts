/**
 * The node's configured peers (`--peer`, `network.peers`) as conditions of the node, for
 * `/healthz` (`server/health_routes.ts`), as the store's are (`actors/storage_conditions.ts`): a
 * configured peer whose dials are failing is the `degraded` condition `peer_unreachable`, naming
 * its address and the last error, until a dial connects. Review s74 F3: such a peer showed in one
 * log line, and `/healthz` said `ok`, though the operator listed it for replication and routing.
 * A peer never dialled yet is no condition (the node has just started); one whose connection
 * closed is one from its first failed redial. A NetworkActor that does not answer is a condition
 * too.
 *
 * @module
 */
import type { ActorRef } from "../actors/actor_ref.ts";
import { HEALTH_ASK_TIMEOUT_MS, unansweredCondition } from "../actors/_unanswered_condition.ts";
import { PendingAsks } from "../actors/pending_asks.ts";
import type { NetworkMessage, StaticPeerState } from "./network_actor.ts";

/** The stable code of a configured peer that cannot be reached. */
export const PEER_UNREACHABLE = "peer_unreachable";

/** A condition of the node's network (see `server/health_routes.ts`' `HealthCondition`). */
export interface PeerCondition {
  /** `network`. */
  component: "network";
  /** Always `degraded`: the node serves on, without that peer. */
  status: "degraded";
  /** `peer_unreachable`; the ask's error code when the NetworkActor did not answer. */
  code: string;
  /** The address, the last error, and how many dials failed. */
  message: string;
  /** Unix ms since the peer has been down. */
  since: number;
}

/**
 * The configured peers that cannot be reached: down with failed dials (one never dialled yet, or
 * whose connection just closed, is not yet). One rule for `/healthz` and the heartbeat line.
 */
export function unreachablePeers(peers: readonly StaticPeerState[]): StaticPeerState[] {
  return peers.filter((p) => !p.up && p.failures > 0);
}

/** `peer_unreachable`'s message for `peer` (down, with failed dials). */
export function describeUnreachable(peer: StaticPeerState): string {
  return `configured peer ${peer.address} cannot be reached: ${peer.lastError ?? "no answer"} ` +
    `(${peer.failures} dial(s) failed; redialled with backoff)`;
}

/**
 * Each configured peer whose dials are failing, as a condition: none while all connect, or the
 * node has no network (`network` undefined). `asks`, kept by the caller across checks, sends no
 * new ask while the last is unanswered (`actors/pending_asks.ts`).
 *
 * @example
 * ```ts ignore
 * const conditions = () => peerConditions(system.lookup<NetworkMessage>("node/network"));
 * ```
 */
export async function peerConditions(
  network: ActorRef<NetworkMessage> | undefined,
  now: () => number = Date.now,
  asks: PendingAsks = new PendingAsks(),
): Promise<PeerCondition[]> {
  if (network === undefined) return [];
  let peers: StaticPeerState[];
  try {
    peers = await asks.ask<NetworkMessage, StaticPeerState[]>(
      network,
      "static_peers",
      { type: "static_peers" },
      HEALTH_ASK_TIMEOUT_MS,
    );
  } catch (error) {
    return [unansweredCondition("network", "the network actor", error, now())];
  }
  return unreachablePeers(peers).map((p) => ({
    component: "network",
    status: "degraded",
    code: PEER_UNREACHABLE,
    message: describeUnreachable(p),
    since: p.since,
  }));
}
