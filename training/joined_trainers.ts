/**
 * The trainers joined to a node's RoundCoordinator, by key, kept across the coordinator's
 * incarnations. A trainer joins once, when its connection to the coordinator's node opens
 * (`network/peer_services.ts`); a coordinator restarted by its supervisor finds those
 * connections still open and no reason for the trainers to join again, so it must find their
 * joins too — with a table of its own, every round after the restart would wait for trainers
 * that never come.
 *
 * The node creates it outside the coordinator's factory and hands it to each incarnation, as it
 * does the round models. Only the coordinator reads and writes it, in its `receive`: it is the
 * coordinator's state, kept where a restart does not drop it.
 *
 * @module
 */
import type { Connection } from "../protocols/connection.ts";

/** A joined trainer: its key, the connection it joined on, and the shard it joined with. */
export interface JoinedTrainer {
  /** Hex key (the connection's authenticated peer). */
  key: string;
  /** The connection it joined on: rounds are announced there. */
  connection: Connection;
  /** Samples in its shard. */
  shardSize: number;
  /** Merkle root of its shard (every receipt of it must carry the same). */
  shardRoot: string;
}

/** See the module doc. */
export class JoinedTrainers {
  readonly #byKey = new Map<string, JoinedTrainer>();

  /**
   * Record a join; a later join of the same key (a new connection) replaces the earlier one.
   * @example
   * ```ts ignore
   * const joined = new JoinedTrainers();
   * joined.join({ key, connection, shardSize: 100, shardRoot });
   * joined.open().length; // 1
   * ```
   */
  join(trainer: JoinedTrainer): void {
    this.#byKey.set(trainer.key, trainer);
  }

  /**
   * Forget the trainer that joined on `connection` (its key joined on another since: nothing).
   * @returns The trainer forgotten, if any.
   */
  leave(key: string, connection: Connection): JoinedTrainer | undefined {
    const trainer = this.#byKey.get(key);
    if (trainer?.connection !== connection) return undefined;
    this.#byKey.delete(key);
    return trainer;
  }

  /**
   * The joined trainers whose connection is still open (one that closed is left out even before
   * its `left` message is handled: a restart can come between the two).
   */
  open(): JoinedTrainer[] {
    return [...this.#byKey.values()].filter((t) => t.connection.isClosed !== true);
  }
}
