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
 * - Once that has passed, it is unregistered: `/v1/models` no longer lists it. A timer does it at
 *   that time, so the models of a training that stopped leave too, not only when a newer round
 *   comes (s79). One found loaded then (a job or a challenge named it since it was unloaded) is
 *   given {@link ROUND_MODEL_JOB_TAIL_MS} more: unregistering disposes its session, and a job
 *   running on it would fail mid-stream.
 *
 * Models registered by anything else (`--model`, the builtin one) are never touched, even when a
 * round's model has the same id. The sweep runs on each new round's model and on that timer, which
 * {@link RoundModelRetirement.stop} clears when the node stops; not part of the public API.
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

/** The timers a retirement waits with (tests pass fake ones and fire them). */
export interface RetirementTimers {
  /** Call `callback` once after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancel a timer (one already fired or cleared is ignored). */
  clearTimeout(handle: unknown): void;
}

/** Options of {@link RoundModelRetirement}. */
export interface RoundModelRetirementOptions {
  /** The node's model registry. */
  registry: Pick<ModelRegistry, "register" | "list" | "info" | "unload" | "unregister">;
  /** How long a receipt may be challenged (default `DEFAULT_ECONOMICS.challengeWindowMs`). */
  challengeWindowMs?: number;
  /** Clock in ms (default `Date.now`). */
  now?: () => number;
  /** Timers the next retirement is due on (default the global ones, not keeping a process up). */
  timers?: RetirementTimers;
  /** Where a retirement is said (one line each); default silent. */
  log?: (line: string) => void;
}

interface RoundModel {
  cid: string;
  /** When a newer round's model replaced it; unset for the current one. */
  replacedAt?: number;
  /** When it was due but found loaded (a job may run on it): it gets the job tail from then. */
  busyAt?: number;
}

/** The global timers, unref'd: a retirement due in 15 minutes must not keep a process alive. */
const GLOBAL_TIMERS: RetirementTimers = {
  setTimeout: (callback, ms) => {
    const id = setTimeout(callback, ms);
    Deno.unrefTimer(id);
    return id;
  },
  clearTimeout: (handle) => clearTimeout(handle as number),
};

/** Registers each round's model and retires the rounds' older ones (see the module doc). */
export class RoundModelRetirement {
  #options: RoundModelRetirementOptions;
  /** This retirement's own round models, oldest first; the last is the current one. */
  #rounds: RoundModel[] = [];
  /** Models registered by something else: never retired. */
  #foreign = new Set<string>();
  /** The timer of the next due retirement, while one is armed. */
  #timer: unknown;
  /** Set by {@link stop}: no timer is armed again. */
  #stopped = false;
  /** The sweep running now: sweeps run one at a time (a serve and the timer may meet). */
  #sweeping: Promise<void> = Promise.resolve();

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
    await this.#sweepInTurn(true);
  }

  /** The round models this node still holds registered, oldest first. */
  registered(): string[] {
    return this.#rounds.map((r) => r.cid);
  }

  /**
   * Clear the timer (the node stops) and wait for a sweep still running. The models stay as they
   * are: the registry is closed next. Idempotent.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#disarm();
    await this.#sweeping;
  }

  /** Run a sweep after the one running (if any), then arm the timer for the next due one. */
  #sweepInTurn(unloadOlder: boolean): Promise<void> {
    const run = this.#sweeping.then(() => this.#sweep(unloadOlder)).finally(() => this.#arm());
    // The next sweep waits for this one whether it failed or not; its caller hears the failure.
    this.#sweeping = run.catch(() => {});
    return run;
  }

  /** When `round` is due to be unregistered (ms). */
  #dueAt(round: RoundModel, now: number): number {
    const window = this.#options.challengeWindowMs ?? DEFAULT_ECONOMICS.challengeWindowMs;
    const due = (round.replacedAt ?? now) + window + ROUND_MODEL_JOB_TAIL_MS;
    return round.busyAt === undefined ? due : Math.max(due, round.busyAt + ROUND_MODEL_JOB_TAIL_MS);
  }

  /**
   * Unregister the older rounds' models that are due; with `unloadOlder` (a new round came),
   * unload the others. The timer's sweep leaves a model a job or a challenge loaded again alone
   * until it is due.
   */
  async #sweep(unloadOlder: boolean): Promise<void> {
    const { registry } = this.#options;
    const now = this.#now();
    const older = this.#rounds.slice(0, -ROUND_MODELS_KEPT_LOADED);
    for (const round of older) {
      if (
        now >= this.#dueAt(round, now) && !unloadOlder && round.busyAt === undefined &&
        registry.info(round.cid)?.loaded === true
      ) {
        // Loaded again since it was unloaded: a job may stream on it now. It gets the job tail.
        round.busyAt = now;
      }
      if (now >= this.#dueAt(round, now)) {
        await registry.unregister(round.cid);
        this.#rounds = this.#rounds.filter((r) => r !== round);
        this.#options.log?.(
          `training: round model ${round.cid} retired (replaced, its receipts' challenge window over)`,
        );
      } else if (unloadOlder) {
        await registry.unload(round.cid);
      }
    }
  }

  /**
   * Arm the timer for the earliest due retirement, `atLeastMs` from now at the soonest (none when
   * none is left or after stop).
   */
  #arm(atLeastMs = 0): void {
    this.#disarm();
    if (this.#stopped) return;
    const now = this.#now();
    const older = this.#rounds.slice(0, -ROUND_MODELS_KEPT_LOADED);
    if (older.length === 0) return;
    const due = Math.min(...older.map((round) => this.#dueAt(round, now)));
    const timers = this.#options.timers ?? GLOBAL_TIMERS;
    this.#timer = timers.setTimeout(() => {
      this.#timer = undefined;
      this.#sweepInTurn(false).catch((error) => {
        this.#options.log?.(
          `training: retiring round models failed: ${(error as Error)?.message ?? String(error)}`,
        );
        // Tried again a job tail later: re-armed at once, the timer would spin on the error.
        this.#arm(ROUND_MODEL_JOB_TAIL_MS);
      });
    }, Math.max(atLeastMs, due - now));
  }

  #disarm(): void {
    if (this.#timer === undefined) return;
    (this.#options.timers ?? GLOBAL_TIMERS).clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }
}
