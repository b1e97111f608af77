/**
 * The data directory of the commands other than `start` ({@link commandDataDir}): their
 * `--data`, else `VERIFLOW_DATA_DIR` when set (the variable `start` reads for `dataDir`), else
 * `.veriflow`. So `cli.ts put` beside a node started with that variable writes into the node's
 * store, not a `./.veriflow` of its own.
 *
 * Also the one rule on paths an operator configures ({@link startsAtShellHome}): `config.ts`
 * applies it to `dataDir` and `model.dir`, `server/edge_config.ts` to `http.apiKeysFile`.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";

/** The node's default data directory (`config.ts`'s `dataDir`). */
export const DEFAULT_DATA_DIR = ".veriflow";

/**
 * Said of a configured path led by `~`: only a shell expands it, and not everywhere
 * (`--data=~/vf`, a systemd `Environment=` line, a JSON file). Taken as it is, the node made a
 * folder named `~` in its working directory (under systemd, `/~`) and kept its key and ledger
 * there. Refused rather than expanded: the home of the user a service runs as is seldom the
 * one the operator had in mind.
 */
export const SHELL_HOME_REFUSAL: string =
  "starts with ~, which only a shell expands (not after = nor " +
  "in a file or a service's environment): write the full path, such as /home/you/.veriflow";

/** Whether `path` is led by `~` ({@link SHELL_HOME_REFUSAL}); a `~` elsewhere is a name. */
export function startsAtShellHome(path: string): boolean {
  return path.startsWith("~");
}

/**
 * The data directory a command other than `start` uses: `flag` (its `--data`, as parsed) when
 * given, else `VERIFLOW_DATA_DIR` when it is set and may be read (a command run without
 * `--allow-env` falls back quietly), else {@link DEFAULT_DATA_DIR}. The variable is read only
 * without a flag, as `start` lets `--data` win over it.
 * @throws {VeriflowError} `invalid_config`: the one used is led by `~`
 *   ({@link SHELL_HOME_REFUSAL}), as `start` refuses it.
 */
export function commandDataDir(flag?: unknown): string {
  let dir = flag === undefined ? undefined : String(flag);
  let source = "--data";
  if (dir === undefined) {
    const query = { name: "env", variable: "VERIFLOW_DATA_DIR" } as const;
    if (Deno.permissions.querySync(query).state !== "granted") return DEFAULT_DATA_DIR;
    dir = Deno.env.get("VERIFLOW_DATA_DIR") || DEFAULT_DATA_DIR;
    source = "VERIFLOW_DATA_DIR";
  }
  if (startsAtShellHome(dir)) {
    throw new VeriflowError("invalid_config", `${source} ${dir} ${SHELL_HOME_REFUSAL}`);
  }
  return dir;
}
