/**
 * Whether this node's swarm is still finding its peers: its host starting (up to its ready
 * timeout), or up, its topics joined, less than {@link SWARM_SETTLE_MS} ago (by the actor's
 * clock). The window counts from when the host came up and joined, and again from each restart's
 * coming up (the host joins its topics again then), not from the NetworkActor's start: a host
 * that took most of its 30 s to come up left the node no time to find its peers in, one still
 * starting past 30 s counted as settled, and a swarm that could not start at all said
 * "connecting" for 30 s (review s64). A host that is down (restarting) or gave up adds no window.
 *
 * Owned by `_peer_transports.ts` (which tells it the host's states), read by `_worker_routing.ts`
 * (`WorkerRouting.connecting`). Not part of the public API.
 *
 * @module
 */

/**
 * How long after its swarm host came up (its topics joined) a node on Hyperswarm counts as still
 * finding its peers: each topic's DHT lookup and the peers' dials take seconds to tens of seconds
 * on the public DHT. After it, a swarm node without a worker is one the swarm found none for, and
 * a retry hint would be a guess.
 */
export const SWARM_SETTLE_MS = 30_000;

/** The swarm's settling window; see the module doc. */
export class SwarmSettling {
  readonly #now: () => number;
  /** A host is starting for the first time (neither up yet nor given up). */
  #starting: boolean;
  /** When the host last came up or joined its topics (by {@link #now}); undefined while down. */
  #upAt: number | undefined;

  /**
   * @param starting Whether a swarm host is being started (the node joins a swarm).
   * @param now The actor's clock (`NetworkActorOptions.now`), ms.
   */
  constructor(starting: boolean, now: () => number) {
    this.#starting = starting;
    this.#now = now;
  }

  /** The host came up (again), or joined its topics: the window counts from now. */
  up(): void {
    this.#starting = false;
    this.#upAt = this.#now();
  }

  /** The host died (it is restarted; its next {@link up} opens a new window). */
  down(): void {
    this.#upAt = undefined;
  }

  /** The swarm could not start (or join): no peer comes through it. */
  failed(): void {
    this.#starting = false;
  }

  /** Whether the swarm is still finding its peers (see the module doc). */
  get settling(): boolean {
    if (this.#starting) return true;
    return this.#upAt !== undefined && this.#now() - this.#upAt < SWARM_SETTLE_MS;
  }
}
