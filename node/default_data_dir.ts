/**
 * The data directory a command uses when it is given no `--data`: `VERIFLOW_DATA_DIR` when set
 * (the variable `start` reads for `dataDir`), else `.veriflow`. So `cli.ts put` beside a node
 * started with that variable writes into the node's store, not a `./.veriflow` of its own.
 *
 * @module
 */

/** The node's default data directory (`config.ts`'s `dataDir`). */
export const DEFAULT_DATA_DIR = ".veriflow";

/**
 * `VERIFLOW_DATA_DIR` when it is set and may be read (a command run without `--allow-env`
 * falls back quietly), else {@link DEFAULT_DATA_DIR}.
 */
export function defaultDataDir(): string {
  const query = { name: "env", variable: "VERIFLOW_DATA_DIR" } as const;
  if (Deno.permissions.querySync(query).state !== "granted") return DEFAULT_DATA_DIR;
  return Deno.env.get("VERIFLOW_DATA_DIR") || DEFAULT_DATA_DIR;
}
