/**
 * The TrainingValidator's ways to the NetworkActor (`training_validator.ts`): its connection to
 * a trainer over `training/1` (`connectionTo`), a dial of a trainer by its key that waits for that
 * connection (`reach`: a takeover's, or a drawn trainer's after a round), and the gossip it
 * passes on (`publish`: to every peer but the one it came from).
 *
 * Holds one thing of its own, when a dial last brought a connection up (`reachedAt`): with the
 * NetworkActor's live peers, the evidence ({@link TrainingNetwork.works}) that this node's own
 * network works, without which a drawn trainer not reached is not held against it (review s81
 * vtrn2 F3). It reads the NetworkActor's registry name from the validator's options at each use. Owned by the validator, which hands `connectionTo` and `reach` to its
 * challenge run and claim takeovers. Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { sleep } from "../actors/_common.ts";
import type { Connection } from "../protocols/connection.ts";
import { TRAINING_PROTOCOL, type TrainingGossip } from "../protocols/training_messages.ts";
import type { TrainingValidatorMessage, TrainingValidatorOptions } from "./training_validator.ts";

/**
 * How often a dial of a trainer (`reach`: a takeover's, or a drawn trainer's after a round) looks
 * for the connection it brings up, ms: a Hyperswarm connection takes a DHT lookup and a handshake
 * (hundreds of ms), so a quarter second costs at most that much of the dial and few asks of the
 * NetworkActor.
 */
const REACH_POLL_MS = 250;

/** See the module doc. */
export class TrainingNetwork {
  /** The validator's options, read at each use (`network`). */
  readonly #options: Pick<TrainingValidatorOptions, "network">;
  /** When a dial (`reach`) last answered a connection (ms, the wall clock); none yet: -Infinity. */
  #reachedAt = -Infinity;

  /** @param options The validator's options. */
  constructor(options: Pick<TrainingValidatorOptions, "network">) {
    this.#options = options;
  }

  /** This node's connection to `trainer` over `training/1`, from the NetworkActor; none: undefined. */
  async connectionTo(
    ctx: ActorContext<TrainingValidatorMessage>,
    trainer: Uint8Array,
  ): Promise<Connection | undefined> {
    const name = this.#options.network;
    const network = name === undefined
      ? undefined
      : ctx.system.lookup<{ type: "connection_to"; key: Uint8Array; protocol: string }>(name);
    return await network?.ask<Connection | undefined>({
      type: "connection_to",
      key: trainer,
      protocol: TRAINING_PROTOCOL.name,
    }).catch(() => undefined);
  }

  /**
   * Have the NetworkActor dial `trainer` by its key (`reach`, on behalf of `holder`) and answer
   * the `training/1` connection once it is up; undefined when none came up within `forMs`, or
   * the node has no network or swarm. `dialled` is called once the NetworkActor took the dial
   * (answered true): a dial was made. An answer "full" (this node's bound on dials, `MAX_DIALS`,
   * taken by other dials) is asked again at each look until `forMs` ends: a slot frees as soon as
   * another dial's connection comes (before, the first "full" was final, and an honest trainer
   * drawn in a round of more than `MAX_DIALS` unconnected trainers was never dialled: review s81
   * vtrn2 F1). The dial is released however this ends.
   */
  async reach(
    ctx: ActorContext<TrainingValidatorMessage>,
    trainer: Uint8Array,
    forMs: number,
    holder: string,
    dialled?: () => void,
  ): Promise<Connection | undefined> {
    const name = this.#options.network;
    const network = name === undefined ? undefined : ctx.system.lookup<
      | { type: "reach"; key: Uint8Array; forMs: number; holder: string }
      | { type: "release_reach"; key: Uint8Array; holder: string }
    >(name);
    if (network === undefined) return undefined;
    const until = performance.now() + forMs;
    let asked = false;
    let taken = false;
    try {
      for (;;) {
        const connection = await this.connectionTo(ctx, trainer);
        if (connection !== undefined) {
          this.#reachedAt = Date.now();
          return connection;
        }
        const left = until - performance.now();
        if (left <= 0 || ctx.signal.aborted) return undefined;
        if (!taken) {
          const answer = await network.ask<boolean | "full">(
            { type: "reach", key: trainer, forMs: left, holder },
            { timeoutMs: Math.max(1, left), signal: ctx.signal },
          ).catch(() => undefined);
          asked = true;
          if (answer === true) {
            taken = true;
            dialled?.();
          } else if (answer !== "full") {
            // `false` (nothing to dial: no swarm, or a connection came up meanwhile): looked for
            // once more, then no dial is waited for.
            return await this.connectionTo(ctx, trainer);
          }
        }
        await sleep(Math.min(REACH_POLL_MS, left), ctx.signal);
      }
    } finally {
      if (asked) network.tell({ type: "release_reach", key: trainer, holder }).catch(() => {});
    }
  }

  /**
   * Whether this node's own network is known to work: a dial brought a connection up at or after
   * `since` (ms, the wall clock), or the NetworkActor holds a live peer connection now. False with
   * no network actor, or one that does not answer.
   */
  async works(ctx: ActorContext<TrainingValidatorMessage>, since: number): Promise<boolean> {
    if (this.#reachedAt >= since) return true;
    const name = this.#options.network;
    const network = name === undefined ? undefined : ctx.system.lookup<{ type: "peers" }>(name);
    const peers = await network?.ask<unknown>({ type: "peers" }).catch(() => undefined);
    return Array.isArray(peers) && peers.length > 0;
  }

  /** Pass `gossip` on to every peer but `origin`'s (to all when it is "local"). */
  publish(
    ctx: ActorContext<TrainingValidatorMessage>,
    gossip: TrainingGossip,
    origin: string,
  ): void {
    const name = this.#options.network;
    const ref = name === undefined
      ? undefined
      : ctx.system.lookup<{ type: "publish_training"; gossip: TrainingGossip; except?: string }>(
        name,
      );
    ref?.tell({ type: "publish_training", gossip, except: origin === "local" ? undefined : origin })
      .catch(() => {});
  }
}
