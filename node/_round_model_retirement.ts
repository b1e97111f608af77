/**
 * Serving training rounds' models without keeping every one for good (review s78 F2): each round
 * registers a new model, and a node that coordinates or trains for hours would otherwise hold
 * every round's metadata, and every one something ever loaded with its workers and metric series.
 *
 * What is kept, and why:
 * - The newest {@link ROUND_MODELS_KEPT_LOADED} round models may stay loaded: the current one is
 *   the one served, and the one it replaced still finishes the jobs that named it before.
 * - An older one is unloaded (workers stopped, series gone) but stays registered while a receipt
 *   of a job on it may still be challenged: this node's validator recomputes such a receipt with
 *   the model, and a validator that cannot find the model never finalizes the receipt. A receipt is
 *   pending for the ledger's challenge window (`DEFAULT_ECONOMICS.challengeWindowMs`, the one the
 *   node's ValidatorActor runs with) after it arrives, and a job started on the model before it
 *   was replaced ends within {@link ROUND_MODEL_JOB_TAIL_MS}: a challenge loads it again on demand.
 * - Once that has passed, it is unregistered: `/v1/models` no longer lists it.
 *
 * Models registered by anything else (`--model`, the builtin one) are never touched, even when a
 * round's model has the same id. The sweep runs on each new round's model; not part of the
 * public API.
 *
 * @module
 */
import type { ModelRegistry } from "../inference/model_registry.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";

/**
 * Round models that may stay loaded: the current one, and the one it replaced, whose jobs begun
 * before the new round still run to their end.
 */
export const ROUND_MODELS_KEPT_LOADED = 2;

/**
 * How long after a round's model is replaced a job begun on it may still end and its receipt
 * reach a validator. Jobs here stream for seconds to a minute; five minutes leaves room for a
 * queue and a slow peer without keeping a model registered much past its receipts' window.
 */
export const ROUND_MODEL_JOB_TAIL_MS = 5 * 60 * 1000;

/** Options of {@link RoundModelRetirement}. */
export interface RoundModelRetirementOptions {
  /** The node's model registry. */
  registry: Pick<ModelRegistry, "register" | "list" | "unload" | "unregister">;
  /** How long a receipt may be challenged (default `DEFAULT_ECONOMICS.challengeWindowMs`). */
  challengeWindowMs?: number;
  /** Clock in ms (default `Date.now`). */
  now?: () => number;
  /** Where a retirement is said (one line each); default silent. */
  log?: (line: string) => void;
}

interface RoundModel {
  cid: string;
  /** When a newer round's model replaced it; unset for the current one. */
  replacedAt?: number;
}

/** Registers each round's model and retires the rounds' older ones (see the module doc). */
export class RoundModelRetirement {
  #options: RoundModelRetirementOptions;
  /** This retirement's own round models, oldest first; the last is the current one. */
  #rounds: RoundModel[] = [];
  /** Models registered by something else: never retired. */
  #foreign = new Set<string>();

  /**
   * Create it.
   *
   * @param options See {@link RoundModelRetirementOptions}.
   */
  constructor(options: RoundModelRetirementOptions) {
    this.#options = options;
  }

  /**
   * Register the model in `dir` as the newest round's, then retire the older rounds' models that
   * are due. A model already served as a round's (the coordinator and its validator both serve
   * each round) changes nothing.
   */
  async serve(dir: string): Promise<void> {
    const { registry } = this.#options;
    const before = new Set(registry.list().map((m) => m.cid));
    const { cid } = await registry.register(dir);
    if (this.#foreign.has(cid) || this.#rounds.some((r) => r.cid === cid)) return;
    const now = this.#now();
    const current = this.#rounds.at(-1);
    if (current !== undefined) current.replacedAt = now;
    if (before.has(cid)) this.#foreign.add(cid);
    else this.#rounds.push({ cid });
    await this.#sweep(now);
  }

  /** The round models this node still holds registered, oldest first. */
  registered(): string[] {
    return this.#rounds.map((r) => r.cid);
  }

  async #sweep(now: number): Promise<void> {
    const { registry } = this.#options;
    const window = this.#options.challengeWindowMs ?? DEFAULT_ECONOMICS.challengeWindowMs;
    const older = this.#rounds.slice(0, -ROUND_MODELS_KEPT_LOADED);
    for (const round of older) {
      const replacedAt = round.replacedAt ?? now;
      if (now >= replacedAt + window + ROUND_MODEL_JOB_TAIL_MS) {
        await registry.unregister(round.cid);
        this.#rounds = this.#rounds.filter((r) => r !== round);
        this.#options.log?.(
          `training: round model ${round.cid} retired (replaced, its receipts' challenge window over)`,
        );
      } else {
        await registry.unload(round.cid);
      }
    }
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }
}
