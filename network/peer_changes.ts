/**
 * Peer changes: what the NetworkActor tells of its peer table as it changes, for whoever waits
 * on a peer (`VeriflowNode.waitForPeer`, `node/wait_for_peer.ts`) instead of asking for the table
 * again and again.
 *
 * A {@link PeerChanges} feed is made by the node and handed to its NetworkActor
 * (`NetworkActorOptions.peerChanges`): it outlives the actor's restarts, so a subscriber hears the
 * peers a restarted actor connects again. The actor emits, in its `receive`, in the order things
 * happen:
 *
 * - `up`: a connection's handshake is done and it is in the table (`peers()` lists it from now);
 * - `updated`: what the table shows of it changed: its models were listed, its signed hello
 *   arrived (roles, version, load, storage), or it was convicted in this node's ledger;
 * - `down`: the connection left the table (closed, the peer said goodbye, or the actor stopped).
 *
 * Each change carries a copy of the peer's {@link PeerInfo} as the table shows it then. Changes
 * are delivered synchronously, so a listener must be quick and must not wait on the actor; one
 * that throws is reported on the console and the others still hear the change: a listener
 * cannot crash the actor that emits.
 *
 * @example
 * ```ts
 * import { PeerChanges } from "./peer_changes.ts";
 *
 * const changes = new PeerChanges();
 * const unsubscribe = changes.subscribe((change) => console.log(change.type, change.peer.key));
 * changes.emit({
 *   type: "up",
 *   peer: { key: "ab", address: "mem", outbound: true, protocols: [], models: [], convicted: false, roles: [] },
 * }); // up ab
 * unsubscribe();
 * ```
 *
 * @module
 */
import { EventFeed } from "../actors/events.ts";
import type { PeerInfo } from "./network_actor.ts";

/** One change of the NetworkActor's peer table; see the module doc. */
export interface PeerChange {
  /** `up`: in the table; `updated`: what it shows changed; `down`: out of the table. */
  type: "up" | "updated" | "down";
  /** The peer as the table shows it now (a copy; for `down`, as it showed it last). */
  peer: PeerInfo;
}

/** A subscriber of {@link PeerChanges}. */
export type PeerChangeListener = (change: PeerChange) => void;

/** Where peer changes can be heard: what a waiter needs of {@link PeerChanges}. */
export interface PeerChangeSource {
  /**
   * Hear every change from now on.
   * @param listener Called synchronously with each change.
   * @returns The function that stops it (idempotent).
   */
  subscribe(listener: PeerChangeListener): () => void;
}

/** Fan-out of {@link PeerChange}s to subscribers (an {@link EventFeed}); see the module doc. */
export class PeerChanges extends EventFeed<PeerChange> implements PeerChangeSource {
  /** A feed with no subscribers yet. */
  constructor() {
    super("peer change");
  }
}
