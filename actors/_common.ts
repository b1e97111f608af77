/**
 * Internal contracts shared by the actor cell, the supervisor core and the system: what a
 * supervised child (an actor or a nested supervisor) must offer its parent, and the runtime
 * environment every node of the tree shares. Not part of the public API.
 *
 * @module
 */

import type { ActorSystem, ActorTreeNode } from "./actor_system.ts";
import type { ActorEvent, ActorKind, StopReason } from "./events.ts";
import type { RestartPolicy } from "./actor.ts";
import type { Registry } from "./registry.ts";
import type { AskDeadlines } from "./_ask_deadlines.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";

/** How a (re)start came about. */
export interface StartInfo {
  /** First start: a failure is thrown to the caller instead of reported to the parent. */
  initial: boolean;
  /** Backoff waited before this start, for the `restarted` event. */
  delayMs: number;
}

/** A node of the supervision tree as seen by its parent. */
export interface SupervisedChild {
  readonly name: string;
  readonly kind: ActorKind;
  readonly restart: RestartPolicy;
  /** Incremented at every start; exit reports carry it so stale reports can be ignored. */
  readonly incarnation: number;
  /** Starts a fresh incarnation (no-op once finally stopped). */
  start(info: StartInfo): Promise<void>;
  /** Ends the current incarnation but keeps the name and mailbox, for a restart. */
  halt(reason: StopReason): Promise<void>;
  /** Ends it for good: mailbox closed, name released. */
  stop(reason: StopReason): Promise<void>;
  tree(): ActorTreeNode;
  /** Whether `name` is a descendant (nested or linked child) of this node. */
  owns(name: string): boolean;
  /** Stops the descendant `name` for good; false if there is none. */
  stopDescendant(name: string): Promise<boolean>;
}

/** Whoever supervises a child: a supervisor core, an actor (for linked children), the system. */
export interface ChildParent {
  /**
   * Reports that `child`'s incarnation `incarnation` ended, abnormally (`crashed`, with
   * `reason`) or normally.
   */
  childExited(child: SupervisedChild, incarnation: number, reason: unknown, crashed: boolean): void;
}

/** Settings and services shared by one actor system's tree. */
export interface RuntimeEnv {
  readonly system: ActorSystem;
  readonly registry: Registry<unknown>;
  emit(event: ActorEvent): void;
  readonly askTimeoutMs: number;
  /** Shared ask-timeout bookkeeping (one timer per distinct timeout, not per ask). */
  readonly deadlines: AskDeadlines;
  readonly stopTimeoutMs: number;
  readonly drainBatch: number;
}

/**
 * Sleeps `ms` on `timers` (the real clock by default; a test's fake timers it fires by hand),
 * resolving early (without error) when `signal` aborts.
 */
export function sleep(
  ms: number,
  signal: AbortSignal,
  timers: ConnectionTimers = SYSTEM_TIMERS,
): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      timers.clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = timers.setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Waits for `promise` at most `ms`; true if it settled in time. Never rejects. */
export function settleWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

/**
 * Waits for `promise`, but no longer than until `signal` aborts (then resolves; what `promise`
 * does later is ignored). Rejects if `promise` rejects first.
 */
export function untilAborted(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve();
    signal.addEventListener("abort", onAbort, { once: true });
    // Long-lived signals (the root supervisor's) must not collect a listener per start.
    promise.then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
