/**
 * Which storage peers the StorageActor reaches over connections its own network has since closed
 * ({@link NetworkRestarts}). The NetworkActor makes one connection per storage peer and tells the
 * actor the peers over them (`set_peers`); when it crashes, or is stopped to be restarted, its stop
 * closes every one of them, and a call under way to a holder fails as if the holder had hung up. So
 * would a call to a holder the actor still has from that network until the next one tells it its
 * own. An audit's answer lost so is this node's doing, not the holder's: the holder is "not
 * reached" (audited again next round), not `no_response` (`storage/audit.ts`, `closedHere`).
 *
 * The actor hears its network go down from its actor system's events: a `crashed` comes before the
 * crashed network's stop closes the connections; a `stopped` (halted to be restarted with its
 * siblings) only after, too late for the answer that close cut off (`docs/STORAGE.md`). Each peer is stamped with the network
 * generation it came from when the actor takes it. A peer the old network told it of just before
 * going down may still wait in the actor's mailbox when the event is heard, so the generation the
 * stamps take moves on only with a `network_down` message the actor tells itself, in mailbox order
 * behind that `set_peers`, and ahead of the next network's. Owned by the actor. Not part of the
 * public API.
 *
 * @module
 */
import type { ActorEvent, EventFeed } from "./events.ts";
import type { StorageMessage } from "./storage_actor_messages.ts";
import type { StoragePeer } from "../storage/storage_peer.ts";

/** The StorageActor's record of its network's restarts, and of which network each peer came from. */
export class NetworkRestarts {
  /** Times the network went down, counted when the event was heard. */
  #heard = 0;
  /** Times the network went down, counted in mailbox order (`network_down`): peers' stamps. */
  #taken = 0;
  /** The generation each peer was taken in (what `#taken` was then). */
  readonly #generations = new WeakMap<StoragePeer, number>();

  /**
   * Hear the network named `network` go down in `events` (its actor system's), and tell `self` so
   * (`network_down`), until `signal` aborts (the actor's incarnation ends).
   */
  listen(
    events: EventFeed<ActorEvent>,
    network: string,
    self: { tell(message: StorageMessage): Promise<void> },
    signal: AbortSignal | undefined,
  ): void {
    const unsubscribe = events.subscribe((event) => {
      if (event.name !== network || (event.type !== "crashed" && event.type !== "stopped")) return;
      const generation = ++this.#heard;
      // Not told (the mailbox closed or full): the stamps move on now rather than never, or every
      // holder would be excused from then on.
      self.tell({ type: "network_down", generation }).catch(() => this.tookDown(generation));
    });
    signal?.addEventListener("abort", unsubscribe, { once: true });
  }

  /** The `network_down` message: peers taken from now on came from the network after `generation`. */
  tookDown(generation: number): void {
    this.#taken = Math.max(this.#taken, generation);
  }

  /** Stamp `peers` (a `set_peers`, the network's answer) with the generation now, once each. */
  took(peers: readonly StoragePeer[]): void {
    for (const peer of peers) {
      if (!this.#generations.has(peer)) this.#generations.set(peer, this.#taken);
    }
  }

  /**
   * The generation of the network `peer` is reached over: its stamp, or the one now for a peer the
   * actor was not told of by its network (an `audit` message's holder).
   */
  generationOf(peer: StoragePeer): number {
    return this.#generations.get(peer) ?? this.#taken;
  }

  /** Whether the network of `generation` has gone down (and closed its connections) since. */
  downSince(generation: number): boolean {
    return this.#heard > generation;
  }
}
