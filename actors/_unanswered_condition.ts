/**
 * The one way an actor's `/healthz` conditions (`ledger_conditions.ts`, `storage_conditions.ts`,
 * the prover's `proofStoreConditions`) say that the actor itself did not answer: each asks its
 * actor for its figures within {@link HEALTH_ASK_TIMEOUT_MS}, and an ask that fails or times out
 * (the actor wedged, or down between a crash and its restart) is a `degraded` condition of that
 * actor, coded by the ask's error. Not part of the public API.
 *
 * @module
 */

/**
 * How long `/healthz` waits for an actor's figures before it reports the actor unanswering: a
 * health check answers within a load balancer's probe timeout (commonly 5 s), and an actor that
 * takes 2 s to answer a read of its own state is not healthy anyway.
 */
export const HEALTH_ASK_TIMEOUT_MS = 2_000;

/** The condition of an actor that did not answer its health ask. */
export interface UnansweredCondition<C extends string> {
  /** The actor's component name (`validator`, `storage`, `prover`). */
  component: C;
  /** Always `degraded`: the node may still serve what does not need that actor. */
  status: "degraded";
  /** The ask's error code (`ask_timeout`, `actor_stopped`, …), else `internal_error`. */
  code: string;
  /** Who did not answer, and the ask's error. */
  message: string;
  /** When the ask failed (Unix ms). */
  since: number;
}

/**
 * The condition of `component` (named `who` in its message) whose health ask failed with `error`.
 *
 * @example
 * ```ts ignore
 * return [unansweredCondition("validator", "the validator", error, Date.now())];
 * ```
 */
export function unansweredCondition<C extends string>(
  component: C,
  who: string,
  error: unknown,
  since: number,
): UnansweredCondition<C> {
  return {
    component,
    status: "degraded",
    code: (error as { code?: string }).code ?? "internal_error",
    message: `${who} did not answer: ${(error as Error).message}`,
    since,
  };
}
