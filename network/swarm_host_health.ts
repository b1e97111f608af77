/**
 * The swarm as a condition of the node, for `/healthz` (`server/health_routes.ts`), as the ledger
 * and the store are (`actors/ledger_conditions.ts`, `actors/storage_conditions.ts`): a node told
 * to join the swarm whose swarm host could not start (no Node.js, a `node` that is not Node.js) or
 * gave up restarting (`SwarmHostOptions.restart`'s `maxRestarts` within `withinMs`: review s71,
 * finding 5) is the `degraded` condition `swarm_host_failed` until a host comes up again (the
 * NetworkActor restarted) — it still serves its model and its TCP peers, and finds nobody on the
 * swarm meanwhile. A host that runs but knows no DHT node (no node answered at its bootstrap:
 * `SwarmHostOptions.onDht`) is the `degraded` condition `swarm_no_dht` until one answers: a node
 * started before its network was up said `ok` while it found no peer (review s78, finding 3).
 *
 * One per actor system (per node) ({@link swarmHostHealthOf}), so it outlives the NetworkActor's
 * restarts: written by `_peer_transports.ts` from its host's states, read by the node's
 * conditions (`node/_http_api.ts`). Not part of the public API.
 *
 * @module
 */
import type { ActorSystem } from "../actors/actor_system.ts";

/** The stable code of a swarm host that failed (`SwarmHostError`'s, which says why). */
export const SWARM_HOST_FAILED = "swarm_host_failed";
/** The stable code of a swarm host that runs but knows no DHT node, so finds no peer. */
export const SWARM_NO_DHT = "swarm_no_dht";

/** A condition of the node's swarm (see `server/health_routes.ts`'s `HealthCondition`). */
export interface SwarmHostCondition {
  /** `swarm`. */
  component: "swarm";
  /** Always `degraded`: the node serves its model and its TCP peers. */
  status: "degraded";
  /** {@link SWARM_HOST_FAILED} or {@link SWARM_NO_DHT}. */
  code: string;
  /** Why the host failed (its last lines), or which bootstrap did not answer, and what to check. */
  message: string;
  /** Unix ms of the failure. */
  since: number;
}

/** Whether one node's swarm host failed for good; see the module doc. */
export class SwarmHostHealth {
  #failure: { message: string; since: number } | undefined;
  #noDht: { message: string; since: number } | undefined;

  /** The host could not start, or gave up restarting: `message` says why. */
  failed(message: string, now: number = Date.now()): void {
    this.#failure = { message, since: now };
  }

  /**
   * A host is up (again): the swarm is back. A host that comes up begins its bootstrap afresh,
   * and says again if no DHT node answers ({@link noDht}).
   */
  up(): void {
    this.#failure = undefined;
    this.#noDht = undefined;
  }

  /** The running host knows no DHT node (none answered at its bootstrap): `message` says so. */
  noDht(message: string, now: number = Date.now()): void {
    this.#noDht ??= { message, since: now };
  }

  /** A DHT node answered the host after {@link noDht}. */
  dhtAnswered(): void {
    this.#noDht = undefined;
  }

  /** The condition while the failure holds (or the DHT is not answering), else none. */
  conditions(): SwarmHostCondition[] {
    if (this.#failure !== undefined) {
      return [{
        component: "swarm",
        status: "degraded",
        code: SWARM_HOST_FAILED,
        message: `no swarm: ${this.#failure.message}`,
        since: this.#failure.since,
      }];
    }
    if (this.#noDht !== undefined) {
      return [{
        component: "swarm",
        status: "degraded",
        code: SWARM_NO_DHT,
        message: `no DHT node: ${this.#noDht.message}`,
        since: this.#noDht.since,
      }];
    }
    return [];
  }
}

const perSystem = new WeakMap<ActorSystem, SwarmHostHealth>();

/** The swarm host's health of the node `system` runs (made on first use). */
export function swarmHostHealthOf(system: ActorSystem): SwarmHostHealth {
  let health = perSystem.get(system);
  if (health === undefined) perSystem.set(system, health = new SwarmHostHealth());
  return health;
}

/**
 * The node's swarm as conditions, for `/healthz`: none unless its swarm host failed for good, or
 * knows no DHT node.
 *
 * @example
 * ```ts ignore
 * const conditions = async () => [...swarmHostConditions(system)];
 * ```
 */
export function swarmHostConditions(system: ActorSystem): SwarmHostCondition[] {
  return perSystem.get(system)?.conditions() ?? [];
}
