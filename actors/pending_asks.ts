/**
 * One ask in flight per question, for the node's periodic askers: the dashboard's snapshot (one a
 * second to every open page), the heartbeat, a `/metrics` scrape. An ask that timed out for its
 * caller is still in the actor's mailbox and is still answered; asking again at the next tick put a
 * second copy behind it, and so on, and the actor's other senders waited behind the pile (review
 * s74 F1: with 2000 pinned files and one dashboard open, a user's get went from 5 ms to 3.6 s).
 *
 * Here a question whose last ask has not been answered is not sent again: a later caller waits on
 * the ask in flight, for at most its own timeout, and each caller's timeout fails it alone, with
 * the runtime's `ask_timeout`. The ask in flight is given {@link IN_FLIGHT_LIMIT_MS} before it is
 * dropped and the question may be sent again (a crashed actor fails it at once: the runtime's
 * rule).
 *
 * @module
 */
import type { ActorRef } from "./actor_ref.ts";
import { AskTimeoutError } from "./errors.ts";

/**
 * How long the ask in flight may wait for its answer before the question is sent again: a wedged
 * actor then gets one copy of each periodic question every 30 s, not one a tick, and an actor that
 * is only slow (a long mailbox) answers well within it.
 */
export const IN_FLIGHT_LIMIT_MS = 30_000;

/** The timers a {@link PendingAsks} uses for callers' timeouts (tests pass fake ones). */
export interface PendingAskTimers {
  /** Arm a timer. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Disarm one. */
  clearTimeout(handle: unknown): void;
}

/** Options of a {@link PendingAsks}. */
export interface PendingAsksOptions {
  /** The ask in flight's own limit; default {@link IN_FLIGHT_LIMIT_MS}. */
  inFlightLimitMs?: number;
  /** Timers for callers' timeouts; default the global ones. */
  timers?: PendingAskTimers;
}

/**
 * Asks by question, one in flight for each.
 *
 * @example
 * ```ts ignore
 * const asks = new PendingAsks();
 * const counts = await asks.ask(storage, "file_counts", { type: "file_counts" }, 1_000);
 * ```
 */
export class PendingAsks {
  readonly #inFlight = new Map<string, Promise<unknown>>();
  /** Refs without a name, numbered as first seen (held weakly: a dropped one is forgotten). */
  readonly #unnamed = new WeakMap<object, number>();
  #nextUnnamed = 1;
  readonly #limitMs: number;
  readonly #timers: PendingAskTimers;

  /** Asks with nothing in flight. */
  constructor(options: PendingAsksOptions = {}) {
    this.#limitMs = options.inFlightLimitMs ?? IN_FLIGHT_LIMIT_MS;
    this.#timers = options.timers ?? {
      setTimeout: (callback, ms) => setTimeout(callback, ms),
      clearTimeout: (handle) => clearTimeout(handle as number),
    };
  }

  /**
   * Who `ref` is: its registered name (each `lookup` of one actor gives a new ref of the same
   * name), or, for a ref with none (a library caller's stand-in), the ref itself.
   */
  #actorOf(ref: ActorRef<unknown>): string {
    if (typeof ref.name === "string") return `name:${ref.name}`;
    let id = this.#unnamed.get(ref);
    if (id === undefined) this.#unnamed.set(ref, id = this.#nextUnnamed++);
    return `ref:${id}`;
  }

  /** Questions asked and not yet answered. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /**
   * The answer to `message` from `ref`: the ask in flight for `question` to that actor (by its
   * name) when there is one, else a new ask. Waits at most `timeoutMs`.
   *
   * @param ref The actor asked.
   * @param question Names the question: asks under one name share one answer.
   * @param message What is sent when nothing is in flight.
   * @param timeoutMs This caller's wait.
   * @throws {AskTimeoutError} no answer within `timeoutMs` (the ask stays in flight).
   */
  ask<M, R>(ref: ActorRef<M>, question: string, message: M, timeoutMs: number): Promise<R> {
    const key = `${this.#actorOf(ref)}\u0000${question}`;
    let pending = this.#inFlight.get(key);
    if (pending === undefined) {
      const sent = ref.ask<R>(message, { timeoutMs: this.#limitMs });
      pending = sent;
      const forget = () => {
        if (this.#inFlight.get(key) === sent) this.#inFlight.delete(key);
      };
      sent.then(forget, forget);
      this.#inFlight.set(key, sent);
    }
    const answer = pending as Promise<R>;
    if (timeoutMs === Infinity) return answer;
    return new Promise<R>((resolve, reject) => {
      const timer = this.#timers.setTimeout(
        () => reject(new AskTimeoutError(ref.name, timeoutMs)),
        timeoutMs,
      );
      answer.then(resolve, reject).finally(() => this.#timers.clearTimeout(timer));
    });
  }
}
