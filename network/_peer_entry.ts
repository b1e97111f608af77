/**
 * One connection in the NetworkActor's table (`network_actor.ts`, which keeps them by hex peer
 * key, the oldest first): what the actor, its hellos (`_peer_hellos.ts`) and its worker routing
 * (`_worker_routing.ts`) know of a peer. Only touched in the actor's `receive`. Not part of the
 * public API.
 *
 * @module
 */
import type { Connection } from "../protocols/connection.ts";
import type { PeerHello } from "../protocols/peer_hello.ts";
import type { WireModelInfo } from "../protocols/inference_messages.ts";
import type { ConnectionStoragePeer } from "../storage/connection_storage_peer.ts";
import type { PledgeBudget } from "./pledge_budget.ts";
import type { PeerInfo } from "./network_actor.ts";

/** One connection in the NetworkActor's table; see the module doc. */
export interface PeerEntry {
  connection: Connection;
  info: PeerInfo;
  /** Its storage role seen as a holder (when it offered the storage protocol). */
  storage?: ConnectionStoragePeer;
  /** What it answered to `inference.list_models` on connect (empty: it runs no model). */
  models: WireModelInfo[];
  /** Its latest signed hello. */
  hello?: PeerHello;
  /** An `inference.list_models` to it is in flight (or waits for its turn): never two. */
  listing?: boolean;
  /** A hello named other models while one was in flight: ask again when it answers. */
  listAgain?: boolean;
  /** When the last `inference.list_models` was sent to it (ms, Date.now). */
  listedAt?: number;
  /**
   * What may still be sent to its key of pledges, across its connections (`pledge_budget.ts`;
   * only in `receive`).
   */
  pledges: PledgeBudget;
  /**
   * Its key's conviction in this node's ledger is still being asked: no job for it until the
   * answer (a convicted worker that reconnected after a restart was routable until then).
   */
  checking?: boolean;
  /**
   * For a connection a peer opened, over TCP or the swarm, its remote address's `addressGroup`
   * (`connection_limits.ts`; a swarm peer's address as its host gave it, `SwarmPeer.remoteHost`);
   * undefined for one this node opened, or one with no address known (in-memory, a swarm peer
   * relayed or of unknown address).
   */
  host?: string;
  /**
   * For a TCP connection this node dialled, the `addressGroup` of the address it reached
   * (`peer_up`'s `dialled`): its group where it opened none (review s76 routegaps R3).
   */
  dialled?: string;
  /**
   * The group it is placed in by storage (`NetworkActor`'s `#placementGroup`: an `addressBlock`,
   * the unaddressed peers' shared group, or none), fixed when it connected: its storage holder's
   * `group`, and what the router ranks a job input's holders by (`_worker_routing.ts`).
   */
  placement?: string;
  /**
   * Hellos from it whose signature did not verify (`MAX_BAD_HELLOS` of them close it,
   * `_peer_hellos.ts`).
   */
  badHellos?: number;
  /**
   * Its pace of hellos checked (`_peer_hellos.ts`: `HELLO_BURST`, then `HELLO_PACE_HEADROOM` per
   * hello interval), made on its first hello.
   */
  helloPace?: PledgeBudget;
  /** The newest hello that came faster than that pace, checked once the pace allows it. */
  heldHello?: PeerHello;
  /** The timer armed for {@link heldHello} (undefined: none). */
  helloTimer?: unknown;
}
