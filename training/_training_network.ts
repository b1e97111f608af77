/**
 * The TrainingValidator's ways to the NetworkActor (`training_validator.ts`): its connection to
 * a trainer over `training/1` (`connectionTo`), a dial of a trainer by its key that waits for that
 * connection (`reach`: a takeover's, or a drawn trainer's after a round), and the gossip it
 * passes on (`publish`: to every peer but the one it came from).
 *
 * Holds no state of its own: it reads the NetworkActor's registry name from the validator's
 * options at each use. Owned by the validator, which hands `connectionTo` and `reach` to its
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
   * the node has no network or swarm. The dial is released however this ends.
   */
  async reach(
    ctx: ActorContext<TrainingValidatorMessage>,
    trainer: Uint8Array,
    forMs: number,
    holder: string,
  ): Promise<Connection | undefined> {
    const name = this.#options.network;
    const network = name === undefined ? undefined : ctx.system.lookup<
      | { type: "reach"; key: Uint8Array; forMs: number; holder: string }
      | { type: "release_reach"; key: Uint8Array; holder: string }
    >(name);
    if (network === undefined) return undefined;
    const until = performance.now() + forMs;
    let dialled = false;
    try {
      for (;;) {
        const connection = await this.connectionTo(ctx, trainer);
        if (connection !== undefined) return connection;
        const left = until - performance.now();
        if (left <= 0 || ctx.signal.aborted) return undefined;
        if (!dialled) {
          // `false` (nothing to dial: no swarm, or a connection came up meanwhile) or "full"
          // (this node's bound on dials): looked for once more, then no dial is waited for.
          const answer = await network.ask<boolean | "full">(
            { type: "reach", key: trainer, forMs: left, holder },
            { timeoutMs: Math.max(1, left), signal: ctx.signal },
          ).catch(() => undefined);
          dialled = true;
          if (answer !== true) return await this.connectionTo(ctx, trainer);
        }
        await sleep(Math.min(REACH_POLL_MS, left), ctx.signal);
      }
    } finally {
      if (dialled) network.tell({ type: "release_reach", key: trainer, holder }).catch(() => {});
    }
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
