/**
 * Small helpers shared by the actor runtime tests.
 *
 * @module
 */

import type { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorEvent } from "../../actors/events.ts";
import { delay } from "../_helpers/wait.ts";

/** A promise with its resolve function exposed. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}

/** Creates a {@link Deferred}. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Records every event of `system` as compact `type:name` strings (and the raw events). */
export function recordEvents(system: ActorSystem): { log: string[]; events: ActorEvent[] } {
  const log: string[] = [];
  const events: ActorEvent[] = [];
  system.events.subscribe((event) => {
    events.push(event);
    log.push(`${event.type}:${event.name}`);
  });
  return { log, events };
}

/** Resolves whether `promise` is still pending after the microtask queue and one macrotask ran. */
export async function isPending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => (settled = true), () => (settled = true));
  await delay(0);
  return !settled;
}

/**
 * How long a test waits for something that should settle at once before failing instead of
 * hanging: a liveness guard generous for a loaded two-core machine, not a performance bound.
 */
export const SETTLE_GUARD_MS = 5_000;

/** Resolves `promise`'s value, or fails the test (instead of hanging it) after `ms`. */
export async function settlesWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}
