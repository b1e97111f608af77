/**
 * The actor system's lifecycle event feed: started, crashed (with the reason), restarted,
 * stopped, escalated, fatal. Logs and the dashboard subscribe to it.
 *
 * Events are emitted synchronously, in the order things happen, to every subscriber. A
 * subscriber that throws is unsubscribed-proof: its error is caught and reported on the console
 * so one bad listener cannot break supervision. Only lifecycle changes are events, never
 * individual messages, so the feed is cheap to keep on.
 *
 * @example
 * ```ts
 * import { ActorSystem } from "./actor_system.ts";
 * import { formatEvent } from "./events.ts";
 * const system = new ActorSystem({ name: "demo" });
 * const unsubscribe = system.events.subscribe((e) => console.log(formatEvent(e)));
 * await system.spawn({ name: "echo", factory: () => ({ receive: (m: string) => m }) });
 * unsubscribe();
 * await system.shutdown();
 * ```
 *
 * @module
 */

import { describeReason, HookTimeoutError } from "./errors.ts";

/** Whether an event is about an actor or a supervisor. */
export type ActorKind = "actor" | "supervisor";

/** Why an actor or supervisor stopped. */
export type StopReason =
  /** It ended itself with `ctx.stop()`. */
  | "normal"
  /** Its supervisor stopped it to restart it with its siblings (`one_for_all`, `rest_for_one`). */
  | "restart"
  /** Removed: stopped explicitly, or a `temporary`/`transient` child that will not come back. */
  | "removed"
  /** Its supervisor gave up (restart intensity exceeded) and stopped it. */
  | "gave_up"
  /** The system (or its parent) is shutting down. */
  | "shutdown";

/** Fields common to every event. */
export interface ActorEventBase {
  /** Name of the actor, supervisor or (for `fatal`) the system. */
  name: string;
  /** Milliseconds since the epoch when it happened. */
  time: number;
}

/** First start of an actor or supervisor. */
export interface StartedEvent extends ActorEventBase {
  /** Discriminant. */
  type: "started";
  /** Actor or supervisor. */
  kind: ActorKind;
}

/** An actor's incarnation threw (in `receive`, `preStart` or its factory). */
export interface CrashedEvent extends ActorEventBase {
  /** Discriminant. */
  type: "crashed";
  /** Actor or supervisor. */
  kind: ActorKind;
  /** What it threw. */
  reason: unknown;
  /** Queued messages discarded with the incarnation (their asks were rejected). */
  discarded: number;
}

/** A fresh incarnation started after a crash or a sibling restart. */
export interface RestartedEvent extends ActorEventBase {
  /** Discriminant. */
  type: "restarted";
  /** Actor or supervisor. */
  kind: ActorKind;
  /** 1 for the first incarnation, so the first restart is 2. */
  incarnation: number;
  /** Backoff waited before this restart, in milliseconds. */
  delayMs: number;
}

/**
 * An incarnation ended without crashing. When it ends for good (removed or shut down, not halted
 * for a restart), this comes once the name is free: a listener may spawn a replacement under it.
 */
export interface StoppedEvent extends ActorEventBase {
  /** Discriminant. */
  type: "stopped";
  /** Actor or supervisor. */
  kind: ActorKind;
  /** Why it stopped. */
  reason: StopReason;
}

/** A supervisor exceeded its restart intensity and handed the failure to its parent. */
export interface EscalatedEvent extends ActorEventBase {
  /** Discriminant. */
  type: "escalated";
  /** Always a supervisor. */
  kind: "supervisor";
  /** The failure it could not absorb. */
  reason: unknown;
  /** Restarts counted inside the window when it gave up. */
  restarts: number;
}

/** The root supervisor gave up: the system shuts down. */
export interface FatalEvent extends ActorEventBase {
  /** Discriminant. */
  type: "fatal";
  /** The failure the root supervisor could not absorb. */
  reason: unknown;
}

/**
 * A `postStop` hook threw, or a hook (`preStart` while stopping, `postStop`) did not finish
 * within `stopTimeoutMs` and was abandoned ({@link HookTimeoutError}); reported, otherwise
 * ignored.
 */
export interface HookFailedEvent extends ActorEventBase {
  /** Discriminant. */
  type: "hook_failed";
  /** Which hook failed. */
  hook: "preStart" | "postStop";
  /** What it threw, or a {@link HookTimeoutError}. */
  reason: unknown;
}

/** Everything the feed can carry. */
export type ActorEvent =
  | StartedEvent
  | CrashedEvent
  | RestartedEvent
  | StoppedEvent
  | EscalatedEvent
  | FatalEvent
  | HookFailedEvent;

/** A subscriber callback. */
export type ActorEventListener = (event: ActorEvent) => void;

/**
 * Fan-out of events to subscribers: the actor runtime's {@link ActorEvent}s (the default `E`), and
 * any other feed of the same shape (the NetworkActor's peer changes, `network/peer_changes.ts`).
 * A listener that throws is reported on the console and the others still hear the event: a
 * listener cannot break the code that emits.
 */
export class EventFeed<E = ActorEvent> {
  #listeners: ((event: E) => void)[] = [];
  readonly #what: string;

  /**
   * A feed with no subscribers yet.
   * @param what What the feed carries, for the console line of a listener that throws
   * (`<what> listener threw:`); default `actor event`.
   */
  constructor(what = "actor event") {
    this.#what = what;
  }

  /**
   * Registers a listener; returns the function that unregisters it. A function subscribed twice
   * is called twice per event, and each unsubscribe removes one of its subscriptions.
   *
   * @param listener Called synchronously with each event.
   * @returns An unsubscribe function (idempotent).
   */
  subscribe(listener: (event: E) => void): () => void {
    // Copy-on-write so emitting never sees a list mutated by a listener mid-loop.
    this.#listeners = [...this.#listeners, listener];
    let subscribed = true;
    return () => {
      // Removes this subscription's copy only: filtering by identity also dropped the other
      // subscriptions of the same function (a shared module-level logger, say).
      if (!subscribed) return;
      subscribed = false;
      const index = this.#listeners.indexOf(listener);
      this.#listeners = [...this.#listeners.slice(0, index), ...this.#listeners.slice(index + 1)];
    };
  }

  /** Number of current subscribers. */
  get size(): number {
    return this.#listeners.length;
  }

  /** Delivers `event` to every subscriber (never throws). Used by the runtime. */
  emit(event: E): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        console.error(`${this.#what} listener threw:`, error);
      }
    }
  }
}

/**
 * Renders an event as one log line, for example
 * `crashed actor "node/storage": Error: disk full (2 queued messages discarded)`.
 */
export function formatEvent(event: ActorEvent): string {
  switch (event.type) {
    case "started":
      return `started ${event.kind} "${event.name}"`;
    case "crashed":
      return `crashed ${event.kind} "${event.name}": ${describeReason(event.reason)}` +
        (event.discarded > 0 ? ` (${event.discarded} queued messages discarded)` : "");
    case "restarted":
      return `restarted ${event.kind} "${event.name}" (incarnation ${event.incarnation}` +
        (event.delayMs > 0 ? `, after ${event.delayMs} ms backoff)` : ")");
    case "stopped":
      return `stopped ${event.kind} "${event.name}" (${event.reason})`;
    case "escalated":
      return `escalated from supervisor "${event.name}" after ${event.restarts} restarts: ` +
        describeReason(event.reason);
    case "fatal":
      return `fatal: actor system "${event.name}" shuts down: ${describeReason(event.reason)}`;
    case "hook_failed":
      return event.reason instanceof HookTimeoutError
        ? `${event.hook} of "${event.name}" did not finish within ${event.reason.timeoutMs} ms`
        : `${event.hook} of "${event.name}" threw: ${describeReason(event.reason)}`;
  }
}
