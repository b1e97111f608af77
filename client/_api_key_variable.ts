/**
 * The API key that `infer` and `status` take from `VERIFLOW_API_KEY`, and what they say when a
 * node asks for a key. Both run with `--allow-net` alone; without `--allow-env=VERIFLOW_API_KEY`
 * Deno does not let them read the variable, and a key set there would be silently left out: when
 * the node then answers 401 they say why, not just "set VERIFLOW_API_KEY" to someone who did.
 *
 * @module
 */

/** The environment variable the client commands take an API key from. */
export const API_KEY_VARIABLE = "VERIFLOW_API_KEY";

/** What reading {@link API_KEY_VARIABLE} gave. */
export interface ApiKeyFromEnv {
  /** The key, when the variable is set and could be read. */
  key?: string;
  /** The process may not read the variable (no `--allow-env=VERIFLOW_API_KEY`): set or not. */
  unreadable: boolean;
}

/**
 * Read {@link API_KEY_VARIABLE} with `env`, which throws `Deno.errors.NotCapable` (as
 * `Deno.env.get` does) when the process may not read it. Set to nothing (`export
 * VERIFLOW_API_KEY=`, a CI template whose secret is missing) it is no key: sent, it would be
 * refused as one no header can carry, and a node that needs none would never be asked.
 *
 * @param env Reads an environment variable; none is read when absent.
 */
export function apiKeyFromEnv(env?: (name: string) => string | undefined): ApiKeyFromEnv {
  try {
    const key = env?.(API_KEY_VARIABLE);
    return { key: key === "" ? undefined : key, unreadable: false };
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) return { unreadable: true };
    throw error;
  }
}

/**
 * What to do when a node answered 401 to a request that carried no key.
 *
 * @param unreadable The process could not read {@link API_KEY_VARIABLE} for want of permission.
 */
export function missingKeyHint(unreadable: boolean): string {
  return unreadable
    ? `(pass --api-key KEY, or run deno with --allow-env=${API_KEY_VARIABLE}: without it ` +
      `${API_KEY_VARIABLE} cannot be read, set or not)`
    : `(pass --api-key KEY or set ${API_KEY_VARIABLE})`;
}
