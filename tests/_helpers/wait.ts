/**
 * Waiting in tests, in one place: {@link delay} for a pause that orders events (never one that
 * races a deadline), and {@link eventually} for polling an effect that arrives by message, by
 * timer or from another process.
 *
 * @module
 */

/**
 * How long {@link eventually} polls before it fails. Not a performance bound: a liveness guard
 * generous enough for a loaded two-core machine, so a broken effect fails its test instead of
 * hanging the suite.
 */
export const EVENTUALLY_GIVE_UP_MS = 15_000;

/** Between two polls: short enough that a test waits little past the effect. */
const EVENTUALLY_POLL_MS = 5;

/** Resolves after `ms` milliseconds (0: after the current macrotask). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Options of {@link eventually}. */
export interface EventuallyOptions {
  /** Give up after this many milliseconds; default {@link EVENTUALLY_GIVE_UP_MS}. */
  timeoutMs?: number;
  /** Milliseconds between polls; default 5. */
  everyMs?: number;
}

/**
 * Poll `probe` until it returns something other than `false` or `undefined`, and resolve with
 * that. A probe that throws counts as "not yet" (a server still starting, a peer not yet
 * connected); its last error is named if the wait fails.
 *
 * @param probe A condition (`() => count === 3`) or a lookup (`() => ask(...)`).
 * @param what What is awaited, for the failure message.
 * @param options Give-up time and poll interval.
 * @returns The probe's first value that is neither `false` nor `undefined`.
 */
export async function eventually<T>(
  probe: () => T | Promise<T>,
  what = "the condition",
  options: EventuallyOptions = {},
): Promise<Exclude<T, false | undefined>> {
  const deadline = performance.now() + (options.timeoutMs ?? EVENTUALLY_GIVE_UP_MS);
  let lastError: unknown;
  while (true) {
    try {
      const value = await probe();
      if (value !== false && value !== undefined) return value as Exclude<T, false | undefined>;
    } catch (error) {
      lastError = error;
    }
    if (performance.now() > deadline) {
      const last = lastError === undefined ? "" : ` (last error: ${String(lastError)})`;
      throw new Error(`timed out waiting for ${what}${last}`);
    }
    await delay(options.everyMs ?? EVENTUALLY_POLL_MS);
  }
}
