/**
 * The free disk `cli.ts put` leaves, as the node's own uploads leave it (`storage.putMinFreeBytes`,
 * `storage/chunk_store.ts`): without it the operator's `put` beside a running node could fill the
 * disk under the node's ledger and receipts, as the node's API lets no client do (review s75 F1).
 * Read from the configuration `put` already reads (`node/default_data_dir.ts`' `commandDataDir`):
 * the file `VERIFLOW_CONFIG` names, then `VERIFLOW_STORAGE_PUT_MIN_FREE_BYTES`, layered as `start`
 * layers them; else the node's default. Read with `--data` given too: the floor guards the disk,
 * whichever directory on it the put writes.
 *
 * @module
 */
import { DEFAULT_PUT_MIN_FREE_BYTES } from "../node/_config_schema.ts";
import {
  type ConfigLayer,
  envLayer,
  fileLayer,
  readConfigFile,
  resolveNodeConfig,
} from "../node/config.ts";

/** The variable `start` reads `storage.putMinFreeBytes` from (`config.ts`'s `envLayer`). */
const FLOOR_VARIABLE = "VERIFLOW_STORAGE_PUT_MIN_FREE_BYTES";

/**
 * The floor of free disk a `put` keeps: the configured `storage.putMinFreeBytes`, else
 * {@link DEFAULT_PUT_MIN_FREE_BYTES}. A process without `--allow-env` reads neither variable and
 * keeps the default, as `commandDataDir` falls back to its own.
 *
 * @param env The environment; default this process's (the variables it may read).
 * @throws {VeriflowError} `invalid_config` (a `ConfigError`): the file or the variable is refused, as `start` refuses them.
 */
export async function putMinFreeBytes(
  env: Readonly<Record<string, string | undefined>> = readableEnv(),
): Promise<number> {
  const layers: ConfigLayer[] = [];
  const file = env.VERIFLOW_CONFIG;
  if (file !== undefined && file.trim() !== "") {
    layers.push(fileLayer(await readConfigFile(file), file));
  }
  const floor = env[FLOOR_VARIABLE];
  // Only this variable: another `VERIFLOW_*` the node would refuse is `start`'s to name.
  if (floor !== undefined) layers.push(envLayer({ [FLOOR_VARIABLE]: floor }));
  if (layers.length === 0) return DEFAULT_PUT_MIN_FREE_BYTES;
  return resolveNodeConfig(layers).config.storage.putMinFreeBytes;
}

/** `VERIFLOW_CONFIG` and the floor's variable, each where this process may read it. */
function readableEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const variable of ["VERIFLOW_CONFIG", FLOOR_VARIABLE]) {
    if (Deno.permissions.querySync({ name: "env", variable }).state === "granted") {
      env[variable] = Deno.env.get(variable);
    }
  }
  return env;
}
