/**
 * What a node knows of each connected peer key beyond the key, for the bounds that must not be
 * per key (a key costs an attacker one key pair and one handshake): the address group its
 * connection came from (`connection_limits.ts`'s `addressGroup` of a TCP peer's remote address,
 * or of the address the swarm host gives a swarm peer, `SwarmPeer.remoteHost`; none for an
 * in-memory connection, a TCP dial, or a swarm peer that is relayed or whose address is not
 * known), and whether the key has standing in this node's ledger — stake or credit recorded
 * there — which a key made a moment ago has not. The validator's inbox (`_validator_inbox.ts`)
 * counts what it holds by these, so throwaway keys cannot crowd out known peers (review s71,
 * finding 3).
 *
 * Standing is asked of the ledger when a connection opens (`_peer_transports.ts`), and again
 * after the validator took evidence from a key that had none (its own pledge, brought on that
 * connection, gives it stake: the usual start of an honest node), one ask in flight per key. It
 * is read while the validator is down, so it is what was known before: a key that connects
 * during a restart is a newcomer until the validator is back.
 *
 * One per actor system (per node), shared by every connection ({@link peerOriginsOf}). An entry
 * lives while the key has a connection open, so there are at most as many as open connections.
 * Not part of the public API.
 *
 * @module
 */
import type { ActorSystem } from "../actors/actor_system.ts";

/** What is known of a peer key (see the module doc). */
export interface PeerOrigin {
  /**
   * The address group of its latest connection with an address (a TCP peer's, a swarm peer's;
   * undefined: none known).
   */
  readonly group?: string;
  /** Stake or credit recorded in this node's ledger, as last asked. */
  readonly standing: boolean;
}

/** A key never seen on a connection: no known group, no standing. */
const NEWCOMER: PeerOrigin = Object.freeze({ standing: false });

interface Entry {
  group?: string;
  standing: boolean;
  connections: number;
  /** Asks the ledger whether the key has standing (undefined: this node keeps no ledger). */
  ask?: () => Promise<boolean>;
  /** The ask in flight. */
  asking?: Promise<void>;
}

/** The origins of every connected peer key of one node; see the module doc. */
export class PeerOrigins {
  readonly #entries = new Map<string, Entry>();

  /**
   * A connection of `peer` opened: from `group` (undefined: no address known), with `standing` to
   * ask the ledger about it. Its standing is asked now.
   * @returns Call it when that connection closes.
   */
  connected(peer: string, group?: string, standing?: () => Promise<boolean>): () => void {
    let entry = this.#entries.get(peer);
    if (entry === undefined) {
      entry = { standing: false, connections: 0 };
      this.#entries.set(peer, entry);
    }
    entry.connections++;
    if (group !== undefined) entry.group = group;
    entry.ask ??= standing;
    void this.recheck(peer);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      if (--entry.connections === 0 && this.#entries.get(peer) === entry) {
        this.#entries.delete(peer);
      }
    };
  }

  /** What is known of `peer` now (a key with no connection open: a newcomer of no group). */
  of(peer: string): PeerOrigin {
    const entry = this.#entries.get(peer);
    return entry === undefined ? NEWCOMER : { group: entry.group, standing: entry.standing };
  }

  /**
   * Ask the ledger again whether `peer` has standing, unless it has, an ask is in flight, or it
   * has no connection open. Resolves once that ask (or the one in flight) is answered; a failed
   * ask (the validator down) leaves what was known.
   */
  recheck(peer: string): Promise<void> {
    const entry = this.#entries.get(peer);
    if (entry === undefined || entry.standing || entry.ask === undefined) {
      return Promise.resolve();
    }
    entry.asking ??= entry.ask().then(
      (standing) => {
        entry.standing = standing;
      },
      () => {},
    ).finally(() => entry.asking = undefined);
    return entry.asking;
  }
}

const perSystem = new WeakMap<ActorSystem, PeerOrigins>();

/** The {@link PeerOrigins} of the node running `system`, made on first use. */
export function peerOriginsOf(system: ActorSystem): PeerOrigins {
  let origins = perSystem.get(system);
  if (origins === undefined) perSystem.set(system, origins = new PeerOrigins());
  return origins;
}
