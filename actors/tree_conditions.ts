/**
 * The supervision tree as conditions of the node, for `/healthz` (`server/health_routes.ts`): an
 * actor (or supervisor) of the tree that is down, awaiting its restart, or that crashed within the
 * last {@link DEFAULT_CRASH_WINDOW_MS} is the `degraded` condition `actor_restarting`, named by
 * the actor. Review s71, finding 3: a storage actor that crash-looped five times, until its
 * supervisor gave up and the node exited, was `ok` on `/healthz` the whole time — restarts with
 * backoff are quick, so the tree's status alone is `running` almost every time it is read; the
 * crashes in the window are what say the loop is on. Actors the tree no longer holds (a job's
 * child, gone with its job) are not conditions.
 *
 * Crashes are heard on the system's lifecycle events ({@link TreeConditions} subscribes when
 * built): those before it was built are not known, though a down actor still shows.
 *
 * @module
 */
import type { ActorSystem, ActorTreeNode } from "./actor_system.ts";

/** The stable code of an actor down or crashing (see the module doc). */
export const ACTOR_RESTARTING = "actor_restarting";

/**
 * How long a crash keeps its actor a condition: the node supervisor's restart intensity window
 * (`node/node.ts`, 5 restarts in 30 s), so a crash loop shows for as long as its crashes count
 * toward the supervisor giving up, and one isolated crash clears once it no longer counts.
 */
export const DEFAULT_CRASH_WINDOW_MS = 30_000;

/**
 * Actors whose crashes are kept at most: each is a name and a few times, but names are chosen by
 * whoever spawns (one per job for the inference actor's children), so a flood of crashing
 * children must not grow this without bound; the oldest are forgotten first.
 */
const MAX_TRACKED_ACTORS = 256;

/** A condition of the node's supervision tree (see `server/health_routes.ts`'s `HealthCondition`). */
export interface ActorCondition {
  /** The actor's (or supervisor's) name in the tree, such as `node/storage`. */
  component: string;
  /** Always `degraded`: the node serves what its other actors do. */
  status: "degraded";
  /** `actor_restarting`. */
  code: string;
  /** How often it crashed in the window, why last, and its state now. */
  message: string;
  /** Unix ms of its first crash in the window (of the read, for one down with no crash heard). */
  since: number;
}

/** Options of {@link TreeConditions}. */
export interface TreeConditionsOptions {
  /** See {@link DEFAULT_CRASH_WINDOW_MS}. */
  windowMs?: number;
  /** Unix ms now, as the events' `time`; default `Date.now`. */
  now?: () => number;
}

/** An actor's crashes heard within the window. */
interface Crashes {
  /** Their times, oldest first. */
  times: number[];
  /** What it threw last. */
  reason: string;
}

/** The tree's actors down or crashing, as conditions (see the module doc). */
export class TreeConditions {
  readonly #tree: () => ActorTreeNode;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #crashes = new Map<string, Crashes>();
  readonly #unsubscribe: () => void;

  /**
   * Listen to `system`'s lifecycle events from now on.
   *
   * @example
   * ```ts
   * import { ActorSystem } from "./actor_system.ts";
   * import { TreeConditions } from "./tree_conditions.ts";
   * const system = new ActorSystem({ name: "node" });
   * const tree = new TreeConditions(system);
   * console.log(tree.conditions()); // [] while every actor runs
   * tree.close();
   * await system.shutdown();
   * ```
   */
  constructor(
    system: Pick<ActorSystem, "events" | "tree">,
    options?: TreeConditionsOptions,
  ) {
    this.#tree = () => system.tree();
    this.#windowMs = options?.windowMs ?? DEFAULT_CRASH_WINDOW_MS;
    this.#now = options?.now ?? Date.now;
    this.#unsubscribe = system.events.subscribe((event) => {
      if (event.type !== "crashed") return;
      const held = this.#crashes.get(event.name);
      // Re-inserted, so the map's order is the order of last crashes: the oldest go first.
      this.#crashes.delete(event.name);
      this.#crashes.set(event.name, {
        times: [...(held?.times ?? []), event.time],
        reason: event.reason instanceof Error ? event.reason.message : String(event.reason),
      });
      this.#forgetOld();
      while (this.#crashes.size > MAX_TRACKED_ACTORS) {
        this.#crashes.delete(this.#crashes.keys().next().value!);
      }
    });
  }

  /** The conditions now: one per actor of the tree down, or crashed within the window. */
  conditions(): ActorCondition[] {
    this.#forgetOld();
    const found: ActorCondition[] = [];
    const visit = (node: ActorTreeNode, root: boolean) => {
      const crashes = this.#crashes.get(node.name);
      if (!root && (node.status === "down" || crashes !== undefined)) {
        found.push(this.#condition(node, crashes));
      }
      for (const child of node.children) visit(child, false);
    };
    visit(this.#tree(), true);
    return found;
  }

  /** Stop listening to the system's events. */
  close(): void {
    this.#unsubscribe();
  }

  #condition(node: ActorTreeNode, crashes: Crashes | undefined): ActorCondition {
    const state = node.status === "down" ? "down, awaiting its restart" : `now ${node.status}`;
    const seconds = this.#windowMs / 1_000;
    return {
      component: node.name,
      status: "degraded",
      code: ACTOR_RESTARTING,
      message: crashes === undefined
        ? `${node.name} is ${state} (${node.restarts} restarts since the node started)`
        : `${node.name} crashed ${crashes.times.length} ${
          crashes.times.length === 1 ? "time" : "times"
        } in the last ${seconds} s (last: ${crashes.reason}); ${state}; the node's log has ` +
          "each crash, and its supervisor stops the node if the crashes go on",
      since: crashes?.times[0] ?? this.#now(),
    };
  }

  /** Drop the crashes older than the window, and the actors left with none. */
  #forgetOld(): void {
    const since = this.#now() - this.#windowMs;
    for (const [name, crashes] of this.#crashes) {
      const kept = crashes.times.filter((t) => t > since);
      if (kept.length === 0) this.#crashes.delete(name);
      else crashes.times = kept;
    }
  }
}
