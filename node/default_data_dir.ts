/**
 * The data directory of the commands other than `start` ({@link commandDataDir}): their
 * `--data`, else `VERIFLOW_DATA_DIR` when set (the variable `start` reads for `dataDir`), else
 * the `dataDir` of the `VERIFLOW_CONFIG` file, else `.veriflow`. So `cli.ts put` beside a node
 * started with that variable or file writes into the node's store, not a `./.veriflow` of its
 * own.
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

/**
 * Said of an empty data directory, which would be the working directory. A variable set but
 * empty is refused, not taken as unset, as `start` refuses it.
 */
function emptyDataDirRefusal(source: string): string {
  return `${source} is empty, which would be the working directory: ` +
    (source === "--data"
      ? 'name a directory (was the shell variable in --data "$DIR" set?)'
      : `name a directory, or unset ${source} for the default`);
}

/** Whether `path` is led by `~` ({@link SHELL_HOME_REFUSAL}); a `~` elsewhere is a name. */
export function startsAtShellHome(path: string): boolean {
  return path.startsWith("~");
}

/**
 * The data directory a command other than `start` uses, found as `start` finds its own: `flag`
 * (its `--data`, as parsed) when given, else `VERIFLOW_DATA_DIR` when it is set, else the
 * `dataDir` of the configuration file `VERIFLOW_CONFIG` names (read as `start` reads it, a
 * relative path against the file's directory), else {@link DEFAULT_DATA_DIR}. Without the file,
 * `put` stored into a `./.veriflow` that the node, configured by file, never served. A command
 * run without `--allow-env` falls back quietly to the default.
 * @throws {VeriflowError} `invalid_config`: the one used is empty, or led by `~`
 *   ({@link SHELL_HOME_REFUSAL}), or the configuration file is refused, as `start` refuses them.
 */
export async function commandDataDir(flag?: unknown): Promise<string> {
  let dir = flag === undefined ? undefined : String(flag);
  let source = "--data";
  if (dir === undefined) {
    const readable = (variable: string) =>
      Deno.permissions.querySync({ name: "env", variable }).state === "granted";
    if (!readable("VERIFLOW_DATA_DIR")) return DEFAULT_DATA_DIR;
    dir = Deno.env.get("VERIFLOW_DATA_DIR");
    source = "VERIFLOW_DATA_DIR";
    const file = readable("VERIFLOW_CONFIG") ? Deno.env.get("VERIFLOW_CONFIG") : undefined;
    if (dir === undefined && file !== undefined && file.trim() !== "") {
      // Loaded only here: the configuration's schema names this module's constants as it loads.
      const { fileLayer, readConfigFile, resolveNodeConfig } = await import("./config.ts");
      return resolveNodeConfig([fileLayer(await readConfigFile(file), file)]).config.dataDir;
    }
    dir ??= DEFAULT_DATA_DIR;
  }
  // An empty one is the working directory to the file system: `keygen` left the node's key in
  // it and `put` a store there (review s82 cli, F2). Usually a shell variable that was not set
  // (`--data "$DIR"`); `start` refuses it too.
  if (dir === "") {
    throw new VeriflowError("invalid_config", emptyDataDirRefusal(source));
  }
  if (startsAtShellHome(dir)) {
    throw new VeriflowError("invalid_config", `${source} ${dir} ${SHELL_HOME_REFUSAL}`);
  }
  return dir;
}
