/**
 * Supervisors: OTP-style restart of failed actors.
 *
 * A supervisor owns an ordered list of children (actors or nested supervisors). When a child
 * exits, its restart policy decides whether it comes back (`permanent`: always; `transient`:
 * after a crash only; `temporary`: never), and the strategy decides who restarts with it:
 * - `one_for_one`: only the failed child;
 * - `one_for_all`: every child (the others are stopped in reverse start order, then all start
 *   again in start order);
 * - `rest_for_one`: the failed child and every child started after it.
 *
 * Restart intensity: more than `maxRestarts` restarts within `withinMs` means restarting does
 * not help. The supervisor then stops its children and escalates: its parent sees it fail with
 * an `EscalatedError` and applies its own policy. At the root, escalation is fatal: the system
 * emits a `fatal` event and shuts down. An optional exponential backoff delays each restart
 * (`initialMs`, then multiplied by `factor` per restart, capped at `maxMs`); it follows each
 * child's own crash streak, which starts over at `initialMs` once the child stayed up for
 * `withinMs` since its last restart, the backoff wait not counted, so a crash loop keeps backing
 * off even when its delays outgrow `withinMs`, and a sibling's crash loop does not lengthen a
 * stable child's restart. Children brought back by a group restart carry on its streak.
 *
 * A restarted supervisor starts its children again from their specs (fresh state everywhere);
 * `temporary` children are not brought back. A child that exits for good (`temporary`, or
 * `transient` after a normal exit) is removed even while its supervisor is down.
 *
 * @example
 * ```ts
 * import { ActorSystem } from "./actor_system.ts";
 * const system = new ActorSystem({ name: "demo" });
 * const sup = await system.supervise({
 *   name: "demo/workers",
 *   strategy: "one_for_all",
 *   maxRestarts: 5,
 *   withinMs: 10_000,
 *   backoff: { initialMs: 10, maxMs: 1_000 },
 *   children: [{ name: "demo/a", factory: () => ({ receive: (m: number) => m * 2 }) }],
 * });
 * const ref = await sup.spawn({ name: "demo/b", factory: () => ({ receive: () => "b" }) });
 * console.log(await ref.ask("x")); // "b"
 * await system.shutdown();
 * ```
 *
 * @module
 */

import type { ChildSpec, RestartPolicy } from "./actor.ts";
import type { ActorRef } from "./actor_ref.ts";
import type { ActorTreeNode } from "./actor_system.ts";
import type { SupervisorCore } from "./_supervisor_core.ts";

/** Which children restart together when one fails. */
export type SupervisionStrategy = "one_for_one" | "one_for_all" | "rest_for_one";

/**
 * Exponential backoff between restarts. Values a timer cannot wait for (negative, `NaN`, over
 * {@link MAX_BACKOFF_MS}) are refused with a `RangeError` when the system or supervisor is built.
 */
export interface BackoffOptions {
  /**
   * Delay before the first restart of a child's crash streak, in milliseconds;
   * 0..{@link MAX_BACKOFF_MS}. The streak ends once the child stayed up for `withinMs` since its
   * last restart.
   */
  initialMs: number;
  /** Upper bound of the delay; 0..{@link MAX_BACKOFF_MS}. Default {@link DEFAULT_BACKOFF_MAX_MS}. */
  maxMs?: number;
  /** Growth per restart of the streak; finite, >= 0 (below 1 shrinks). Default 2. */
  factor?: number;
}

/** How to build a supervisor and its initial children. */
export interface SupervisorSpec {
  /** Unique name in the system. */
  name: string;
  /** Default `"one_for_one"`. */
  strategy?: SupervisionStrategy;
  /** Restarts tolerated within `withinMs` before giving up. Default {@link DEFAULT_MAX_RESTARTS}. */
  maxRestarts?: number;
  /** The intensity window in milliseconds. Default {@link DEFAULT_RESTART_WINDOW_MS}. */
  withinMs?: number;
  /** Delay restarts; default none. */
  backoff?: BackoffOptions;
  /** How this supervisor's own parent restarts it. Default `"permanent"`. */
  restart?: RestartPolicy;
  /** Children, started in this order (and stopped in reverse). */
  // deno-lint-ignore no-explicit-any
  children?: Array<ChildSpec<any> | SupervisorSpec>;
}

/**
 * Default restart intensity: 3 restarts in 5 s. A crash loop (bad config, missing file) hits
 * it within milliseconds and escalates, while rare independent crashes are absorbed.
 */
export const DEFAULT_MAX_RESTARTS = 3;
/** Default intensity window; see {@link DEFAULT_MAX_RESTARTS}. */
export const DEFAULT_RESTART_WINDOW_MS = 5_000;
/** Default backoff cap: long enough to ride out a restarting dependency, short enough to notice. */
export const DEFAULT_BACKOFF_MAX_MS = 30_000;
/**
 * Largest `initialMs` and `maxMs`: the longest wait a timer takes (2^31 - 1 ms, about 24.8
 * days). The runtime clamps a longer one (or `Infinity`) to 1 ms, which turned the longest
 * backoff into none at all.
 */
export const MAX_BACKOFF_MS = 2_147_483_647;

/** Whether a spec describes a nested supervisor (rather than an actor). */
// deno-lint-ignore no-explicit-any
export function isSupervisorSpec(spec: ChildSpec<any> | SupervisorSpec): spec is SupervisorSpec {
  // deno-lint-ignore no-explicit-any
  return typeof (spec as ChildSpec<any>).factory !== "function";
}

/**
 * Handle on a running supervisor, returned by `system.supervise` and `Supervisor.supervise`.
 * Its lifecycle belongs to its parent; stop it with `system.stop(name)`.
 */
export class Supervisor {
  readonly #core: SupervisorCore;

  /** @internal Built by the runtime; use `system.supervise(spec)`. */
  constructor(core: SupervisorCore) {
    this.#core = core;
  }

  /** Registered name. */
  get name(): string {
    return this.#core.name;
  }

  /** Its strategy. */
  get strategy(): SupervisionStrategy {
    return this.#core.strategy;
  }

  /**
   * Adds and starts an actor as the last child.
   *
   * @throws {NameTakenError} if the name is in use; {@link ActorCrashedError} if its factory or
   * `preStart` throws (it is then removed again).
   */
  spawn<M>(spec: ChildSpec<M>): Promise<ActorRef<M>> {
    return this.#core.spawn(spec);
  }

  /** Adds and starts a nested supervisor as the last child. */
  supervise(spec: SupervisorSpec): Promise<Supervisor> {
    return this.#core.supervise(spec);
  }

  /** Stops a direct child for good and removes it; false if there is no such child. */
  stopChild(name: string): Promise<boolean> {
    return this.#core.stopChild(name);
  }

  /** Names of the direct children, in start order. */
  childNames(): string[] {
    return this.#core.childNames();
  }

  /** This supervisor's subtree as data. */
  tree(): ActorTreeNode {
    return this.#core.tree();
  }
}
