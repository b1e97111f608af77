/**
 * The node's configuration: one zod schema, validated once at the edge (config file + flags),
 * trusted everywhere behind it. Every field has a default, so an empty file is a working node.
 *
 * This file is the configuration as the node sees it: {@link NodeConfig} and
 * {@link ConfigError}, the layers (file, environment, flags) merged by
 * {@link resolveNodeConfig}, and validation. The schema itself, with its limits, defaults and
 * refusals, and the list of its leaves are in `_config_schema.ts`; how `--print-config` shows
 * a resolved configuration is in `_print_config.ts`. Both are re-exported from here.
 *
 * @module
 */
import { SHELL_HOME_REFUSAL as NO_TILDE, startsAtShellHome } from "./default_data_dir.ts";
import type { z } from "zod";
import { dirname, isAbsolute, join, resolve as resolvePath } from "node:path";
import { IDENTITY_FILE } from "./node_identity.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { nearestName } from "./nearest_name.ts";
import { repeatedJsonKey } from "../server/repeated_json_key.ts";
import { schemaIssueLine } from "../protocols/schema_issues.ts";
import type { EdgeConfig } from "../server/edge_config.ts";
import {
  notDecimalNumber,
  notWholeNumber,
  parseDecimalNumber,
  parseWholeNumber,
} from "./number_flags.ts";
import type { RemoteInferencePortOptions } from "../inference/remote_port.ts";
import type { ConnectionOptions } from "../protocols/connection_options.ts";
import { WireBudget } from "../protocols/wire_budget.ts";
import {
  configLeaves,
  DEFAULT_REPLICA_QUOTA_BYTES,
  ENV_PREFIX,
  nodeConfigSchema,
} from "./_config_schema.ts";

// Numbers as an operator writes them, read the same way by every command (`number_flags.ts`).
export { notDecimalNumber, notWholeNumber, parseDecimalNumber, parseWholeNumber };
export type { NumberRange } from "./number_flags.ts";
// The schema's leaves (`_config_schema.ts`) and `--print-config`'s view (`_print_config.ts`).
export {
  type ConfigLeaf,
  type ConfigLeafKind,
  configLeaves,
  DEFAULT_REPLICA_QUOTA_BYTES,
  ENV_PREFIX,
  MAX_PREFILL_TOKENS_PER_TICK,
} from "./_config_schema.ts";
export { formatResolvedConfig } from "./_print_config.ts";

/** Options of a {@link ConfigError}. */
export interface ConfigErrorOptions extends ErrorOptions {
  /**
   * How many keys (or `VERIFLOW_*` variables) at fault the message names, so that the operator
   * can look them up (`start --print-config`); 0 for a file that cannot be read or parsed.
   * Default 0.
   */
  keysNamed?: number;
}

/** The configuration file failed to parse or validate. */
export class ConfigError extends VeriflowError {
  /** How many keys at fault the message names (see {@link ConfigErrorOptions}). */
  readonly keysNamed: number;
  /** Whether the message names any key at fault. */
  get namesKeys(): boolean {
    return this.keysNamed > 0;
  }
  /**
   * Create the error.
   * @param message What is wrong, field by field.
   * @param options Standard error options, and whether the message names keys.
   */
  constructor(message: string, options?: ConfigErrorOptions) {
    super("invalid_config", message, options);
    this.keysNamed = options?.keysNamed ?? 0;
  }
}

/**
 * A configuration file's relative path (`dataDir`, `model.dir`, `http.apiKeysFile`,
 * `training.coordinator.heldOutFile`) that names, against the file's directory, nothing in use,
 * where earlier versions read it against the working directory and find what the node keeps
 * ({@link fileLayer}). Its own class so that
 * `start` prints it with its code, as the storage commands, which read `dataDir` too, print it.
 */
export class MovedConfigPathError extends ConfigError {}

/** A validated node configuration with every default filled in (see README, "Configuration"). */
export interface NodeConfig {
  /**
   * Where the node keeps its identity, models, chunks, proofs and ledger. Default `.veriflow`. A
   * relative path is relative to the working directory, or, written in a configuration file, to
   * that file's directory ({@link fileLayer}).
   */
  dataDir: string;
  /** Which actors this node runs; all on by default. */
  roles: { storage: boolean; inference: boolean; prover: boolean; validator: boolean };
  /** Where the HTTP/WebSocket API listens (default 127.0.0.1:8080), its limits and access rules. */
  http: { hostname: string; port: number } & EdgeConfig;
  /**
   * The served model: an exported model directory, or the built-in model of `size` and `seed`;
   * where it runs, and how a text model's batch reads joining prompts (`prefillTokensPerTick`,
   * unset: the model's default).
   */
  model: {
    dir?: string;
    size: "tiny" | "small" | "brown";
    seed: number;
    executionProvider: "cpu" | "cuda" | "webgpu";
    workers: number;
    validationWorkers: number;
    prefillTokensPerTick?: number;
    restart: { maxRestarts: number; withinMs: number; stallMs: number };
    loadTimeoutMs: number;
  };
  /** Jobs computed at once per model, and jobs allowed to wait. Default 4 and 64. */
  inference: { concurrency: number; queueLimit: number };
  /**
   * Peers: where this node listens (default 127.0.0.1:7700), the static peers it dials, and
   * how fast a dead peer is noticed (keepalive 1.5 s, idle timeout 5 s).
   */
  network: {
    listen: { hostname: string; port: number };
    listening: boolean;
    peers: string[];
    keepaliveMs: number;
    idleTimeoutMs: number;
    swarm: { enabled: boolean; bootstrap: string[] | null; bind?: string };
    routing: RoutingConfig;
    wire: WireConfig;
  };
  /**
   * Chunk store limits: quota (none), what peers may place here (half the quota; 1 GiB of disk
   * kept free), disk kept free under the node's own puts (256 MiB), GC grace period (10 min), largest in-memory read (64 MiB); how often the holders
   * of this node's files are audited (10 min).
   */
  storage: {
    quotaBytes?: number;
    replicaQuotaBytes?: number;
    replicaMinFreeBytes: number;
    putMinFreeBytes: number;
    gcGraceMs: number;
    maxInMemoryBytes: number;
    auditIntervalMs: number;
  };
  /** Validator settings: the challenge probability (default: the economics' value). */
  validator: { challengeProbability?: number };
  /** Decentralized training: trainer, coordinator and validator settings (off by default). */
  training: {
    arch: { numLayers: number; hiddenSize: number; numHeads: number; contextLength: number };
    corpusDocs: number;
    trainer: { enabled: boolean; shard: number; shards: number };
    coordinator: {
      enabled: boolean;
      rounds: number;
      steps: number;
      deadlineMs: number;
      minTrainers: number;
      seed: number;
      /** Private held-out text evaluated instead of the public split (absent: the split). */
      heldOutFile?: string;
    };
    validate: boolean;
    challengeProbability?: number;
  };
  /** Ledger checkpoints: every `checkpointEvery` entries (default 1,024). */
  ledger: { checkpointEvery: number };
  /** How long the prover keeps proof data (default: window + proof deadline + 10 minutes). */
  proofs: { retentionMs?: number };
  /** Milliseconds between heartbeat lines; 0 turns them off. Default 10 000. */
  heartbeatMs: number;
  /** Log lines as readable text (default) or one JSON object per line. */
  log: { format: "text" | "json" };
  /** The dashboard at `/`: on by default. */
  dashboard: { enabled: boolean };
  /**
   * The edge's process-wide guards: the RSS past which idle WebSockets are dropped (unset: half
   * the machine's memory).
   */
  server: { wsMemoryLimitBytes?: number };
  /** Stake recorded for the node's own key on first start. Default 1 000 000. */
  selfStake: number;
}

/**
 * How a routing node forwards jobs (`network.routing`; defaults in parentheses): the worker's
 * `start` within `startTimeoutMs` (30 s), a started job's next event within `stallTimeoutMs`
 * (60 s), the first token within `firstTokenTimeoutMs` (10 min) while the worker streams other
 * jobs, a second worker asked after `queueHoldMs` (30 s; 0: never), `tokenBudgetMs` per token
 * after the first (2 s; 0: no floor), up to `tokensPerEvent` tokens (8) gathered for
 * `gatherMs` (5 ms) in one event.
 */
export interface RoutingConfig {
  /** How long the worker may take to answer a job with its `start`. */
  startTimeoutMs: number;
  /** How long a started job may wait for the worker's next event while the client reads. */
  stallTimeoutMs: number;
  /** How long a job may wait for its first token while the worker streams other jobs. */
  firstTokenTimeoutMs: number;
  /** How long without a first token before a second worker is asked; 0: never. */
  queueHoldMs: number;
  /** Waiting allowed per token after the first, beyond the stall timeout; 0: no such floor. */
  tokenBudgetMs: number;
  /** Most ready tokens the worker may send in one event. */
  tokensPerEvent: number;
  /** How long the worker gathers ready tokens into one event. */
  gatherMs: number;
}

/**
 * `network.wire`: the node's wire limits, shared by all its peer connections (docs/PROTOCOL.md,
 * "Limits and defaults"; `protocols/wire_budget.ts`): peer requests running (4096, 1024 for one
 * peer key), streams served (1024, 256 for one key), bytes queued to all peers before requests are
 * refused `busy` (256 MiB); and per connection, how long a stream served waits for credit (120 s)
 * and a frame begun to be whole (60 s; 0: never, for either).
 */
export interface WireConfig {
  /** Most peer requests running on all connections. */
  maxHandlers: number;
  /** Most of those for one peer key. */
  maxHandlersPerPeer: number;
  /** Most streams served on all connections. */
  maxStreams: number;
  /** Most of those to one peer key. */
  maxStreamsPerPeer: number;
  /** Most bytes queued to all peers before requests are refused `busy`. */
  maxQueuedBytes: number;
  /** A stream served ends `credit_timeout` after this long without credit; 0: never. */
  streamCreditTimeoutMs: number;
  /** A connection closes `peer_timeout` when a frame begun is not whole this long after; 0: never. */
  frameTimeoutMs: number;
}

/**
 * The options of every peer connection of a node with `network`'s config: its liveness, its
 * stream and frame deadlines, and one {@link WireBudget} of `network.wire`'s bounds, new for each
 * call (a NetworkActor started again starts with an empty one: its connections closed).
 * @example
 * ```ts
 * import { connectionOptionsOf, parseNodeConfig } from "./config.ts";
 * const options = connectionOptionsOf(parseNodeConfig({}).network);
 * console.log(options.budget?.maxHandlers); // 4096
 * ```
 */
export function connectionOptionsOf(network: NodeConfig["network"]): ConnectionOptions {
  const { streamCreditTimeoutMs, frameTimeoutMs, ...bounds } = network.wire;
  return {
    keepaliveMs: network.keepaliveMs,
    idleTimeoutMs: network.idleTimeoutMs,
    streamCreditTimeoutMs,
    frameTimeoutMs,
    budget: new WireBudget(bounds),
  };
}

/**
 * The routing port's options for `network.routing` (its worker ports' options and the
 * failover's `queueHoldMs`): the same values, except that 0 turns the queue hold and the
 * delivery floor off (Infinity to the port).
 */
export function forwardingOptionsOf(
  routing: RoutingConfig,
): RemoteInferencePortOptions & { queueHoldMs: number } {
  const { queueHoldMs, tokenBudgetMs, ...rest } = routing;
  return {
    ...rest,
    queueHoldMs: queueHoldMs === 0 ? Infinity : queueHoldMs,
    tokenBudgetMs: tokenBudgetMs === 0 ? Infinity : tokenBudgetMs,
  };
}

// Compile-time proof that the schema produces exactly a NodeConfig.
const _schemaMatches: (c: z.infer<typeof nodeConfigSchema>) => NodeConfig = (c) => c;

/**
 * A configuration section `T` as {@link parseNodeConfig} takes it: every field optional (each
 * has a default), sections within it the same way, lists and other values as they are.
 */
export type ConfigInput<T> = {
  [K in keyof T]?: T[K] extends readonly unknown[] ? T[K]
    : T[K] extends object ? ConfigInput<T[K]>
    : T[K];
};

/**
 * What {@link parseNodeConfig} takes: a {@link NodeConfig} with every field optional (each has
 * a default), nested the same way. Typed so that an editor completes the keys and `deno check`
 * refuses a misspelt one; a value read from JSON is `unknown` until the schema has checked it,
 * so cast it (`parseNodeConfig(JSON.parse(text) as NodeConfigInput)`): the run-time check
 * still names each wrong key, with a "did you mean".
 *
 * @example
 * ```ts ignore
 * const input: NodeConfigInput = { http: { port: 0 }, model: { size: "tiny" } };
 * const config = parseNodeConfig(input);
 * ```
 */
export type NodeConfigInput = ConfigInput<NodeConfig>;

// Compile-time proof that NodeConfigInput is exactly what the schema takes (`z.input`): spelt
// out over NodeConfig rather than as `z.input`, so that its documentation names no private type.
const _inputMatches: [
  (c: z.input<typeof nodeConfigSchema>) => NodeConfigInput,
  (c: NodeConfigInput) => z.input<typeof nodeConfigSchema>,
] = [(c) => c, (c) => c];

/** Where a configuration value came from, highest precedence last. */
export type ConfigSource = "default" | "file" | "env" | "flag";

/**
 * One layer of configuration: values (nested like the file) from one source, with what set each
 * leaf (`--port`, `VERIFLOW_HTTP_PORT`, the file's path) by dotted key path.
 */
export interface ConfigLayer {
  /** Which kind of source. */
  source: Exclude<ConfigSource, "default">;
  /** The values, nested like the configuration file. */
  values: Record<string, unknown>;
  /** What set each leaf, by dotted key path (`http.port` → `--port`). */
  setBy: Map<string, string>;
  /**
   * Refusals of this layer's values that hold only while its value of their key is the one
   * used, by dotted key path: a file's moved relative `dataDir` is no fault once `--data` or
   * `VERIFLOW_DATA_DIR` sets the directory ({@link fileLayer}). {@link resolveNodeConfig}
   * throws the first that holds.
   */
  refusals?: Map<string, ConfigError>;
}

/** Where one effective value came from. */
export interface ConfigOrigin {
  /** The kind of source. */
  source: ConfigSource;
  /** The flag, variable or file that set it; absent for defaults. */
  by?: string;
}

/** A validated configuration and where each of its leaves came from. */
export interface ResolvedConfig {
  /** The effective configuration. */
  config: NodeConfig;
  /** The origin of every leaf, by dotted key path, in schema order. */
  origins: Map<string, ConfigOrigin>;
}

/**
 * `VERIFLOW_*` variables that are not configuration leaves but are read elsewhere (the config
 * file's path here; the client's key and the tests' log switch by their own commands).
 */
const OTHER_ENV = new Set(["VERIFLOW_CONFIG", "VERIFLOW_API_KEY", "VERIFLOW_TEST_LOG"]);

/** Set `value` at dotted `path` in `target`, creating sections on the way. */
export function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  let section = target;
  for (const key of keys.slice(0, -1)) {
    const next = section[key];
    section = (next !== null && typeof next === "object" && !Array.isArray(next)
      ? next
      : (section[key] = {})) as Record<string, unknown>;
  }
  section[keys[keys.length - 1]] = value;
}

/**
 * Dotted paths of every leaf (non-object value) in `values`; an empty object counts as a leaf,
 * so that a section set to `{}` still has a source to name.
 */
function leafPaths(values: Record<string, unknown>, prefix = ""): string[] {
  return Object.entries(values).flatMap(([key, value]) => {
    const path = prefix + key;
    return value !== null && typeof value === "object" && !Array.isArray(value) &&
        Object.keys(value).length > 0
      ? leafPaths(value as Record<string, unknown>, path + ".")
      : [path];
  });
}

/** `b` merged over `a`: sections merge key by key; lists and values replace. */
function mergeOver(
  a: Record<string, unknown>,
  b: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [key, value] of Object.entries(b)) {
    const under = out[key];
    const bothSections = [under, value].every((v) =>
      v !== null && typeof v === "object" && !Array.isArray(v)
    );
    out[key] = bothSections
      ? mergeOver(under as Record<string, unknown>, value as Record<string, unknown>)
      : value;
  }
  return out;
}

/**
 * A configuration file's values as a layer (every leaf set by the file), its relative paths
 * ({@link FILE_PATH_KEYS}) made absolute against the file's own directory: read against the
 * working directory, one file started from a shell and from a service manager gave two data
 * directories and two node keys. Flags and `VERIFLOW_*` variables keep the working directory,
 * as a shell user expects of them.
 *
 * A relative path read the old way (against the working directory) that finds what the node
 * keeps there, where the new way does not, is refused ({@link movedPathRefusal}) by
 * {@link resolveNodeConfig}, unless a flag or variable sets that key (the layer's `refusals`).
 */
export function fileLayer(values: Record<string, unknown>, path: string): ConfigLayer {
  const resolved = structuredClone(values);
  const refusals = new Map<string, ConfigError>();
  for (const [key, inUse] of FILE_PATH_KEYS) {
    const written = getPath(resolved, key);
    if (typeof written !== "string" || written === "" || startsAtShellHome(written)) continue;
    if (isAbsolute(written)) continue;
    const fromFile = resolvePath(dirname(path), written);
    const fromCwd = resolvePath(written);
    const { marker } = inUse;
    if (fromFile !== fromCwd && !exists(marker(fromFile)) && exists(marker(fromCwd))) {
      // Held, not thrown: a flag or variable that sets the key makes the file's value moot, and
      // refused while the file was read, `start --data OLD_DIR` could not get past it.
      refusals.set(
        key,
        new MovedConfigPathError(movedPathRefusal(key, written, path, fromFile, fromCwd, inUse)),
      );
    }
    setPath(resolved, key, fromFile);
  }
  return {
    source: "file",
    values: resolved,
    setBy: new Map(leafPaths(resolved).map((p) => [p, path])),
    refusals,
  };
}

/** How {@link movedPathRefusal} says that a path holds what shows it in use, and that it lacks it. */
interface InUse {
  /** What shows that a path is in use: the node's key in a data directory, else the path. */
  marker: (path: string) => string;
  /** Said of the path that has it. */
  has: string;
  /** Said of the path that lacks it. */
  lacks: string;
}

/**
 * The path-valued keys of a configuration file, each with what shows that a path is in use: a
 * relative one is read against the file's directory ({@link fileLayer}).
 */
const FILE_PATH_KEYS: readonly [string, InUse][] = [
  ["dataDir", {
    marker: (dir) => join(dir, IDENTITY_FILE),
    has: `holds the node's key (${IDENTITY_FILE})`,
    lacks: `holds no ${IDENTITY_FILE}`,
  }],
  ["model.dir", { marker: (dir) => dir, has: "exists", lacks: "does not exist" }],
  ["http.apiKeysFile", { marker: (file) => file, has: "exists", lacks: "does not exist" }],
  ["training.coordinator.heldOutFile", {
    marker: (file) => file,
    has: "exists",
    lacks: "does not exist",
  }],
];

/**
 * One line for a relative `key` that now names `fromFile` (unused), where earlier versions read
 * `fromCwd` (in use): started as it is, the node would run with a new, empty data directory and a
 * new key, its credit and files left behind without a word.
 */
function movedPathRefusal(
  key: string,
  written: string,
  file: string,
  fromFile: string,
  fromCwd: string,
  inUse: InUse,
): string {
  return `${key} "${written}" in ${file} is relative to that file's directory since this ` +
    `version: it names ${fromFile}, which ${inUse.lacks}, no longer ${fromCwd} (relative to ` +
    `the working directory), which ${inUse.has}: move ${fromCwd} to ${fromFile}, or write ` +
    `the absolute path "${fromCwd}" as ${key} in ${file}`;
}

/** Whether `path` exists (one this process may not look at counts as absent). */
function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The value at dotted `path` in `values`, or undefined. */
function getPath(values: Record<string, unknown>, path: string): unknown {
  let at: unknown = values;
  for (const key of path.split(".")) {
    if (at === null || typeof at !== "object" || Array.isArray(at)) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

/**
 * The `VERIFLOW_*` environment variables as a layer: `VERIFLOW_HTTP_PORT=9000` sets `http.port`
 * (one variable per leaf, its path in upper snake case: `configLeaves()` lists them); a list is
 * comma-separated, a boolean `true`/`false` (or `1`/`0`), a whole number decimal digits only and
 * any other number plain decimal notation (as a flag's: {@link parseWholeNumber},
 * {@link parseDecimalNumber}). A variable that names no leaf is refused, naming it, like
 * an unknown key in the file.
 *
 * @param env The environment (`Deno.env.toObject()`).
 */
export function envLayer(env: Readonly<Record<string, string>>): ConfigLayer {
  const byName = new Map(configLeaves().map((leaf) => [leaf.env, leaf]));
  const layer: ConfigLayer = { source: "env", values: {}, setBy: new Map() };
  const problems: string[] = [];
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || OTHER_ENV.has(name)) continue;
    const leaf = byName.get(name);
    if (leaf === undefined) {
      problems.push(`  ${name}: unknown variable (${closest(name, [...byName.keys()])})`);
      continue;
    }
    let value: unknown = text;
    if (leaf.kind === "integer") {
      value = parseWholeNumber(text);
      if (value === undefined) problems.push(`  ${notWholeNumber(name, text)}`);
    } else if (leaf.kind === "number") {
      value = parseDecimalNumber(text);
      if (value === undefined) problems.push(`  ${notDecimalNumber(name, text)}`);
    } else if (leaf.kind === "boolean") {
      const t = text.trim().toLowerCase();
      value = t === "true" || t === "1" ? true : t === "false" || t === "0" ? false : undefined;
      if (value === undefined) problems.push(`  ${name}: expected true or false, got "${text}"`);
    } else if (leaf.kind === "list") {
      value = text.split(",").map((item) => item.trim()).filter((item) => item !== "");
      // Set but empty (`Environment=VAR=`, compose's `VAR=${UNSET}`), it replaced the file's
      // list with none: a node with no peers, or no API keys, and not a word. Refused like an
      // empty number; a list is emptied in the file (`[]`) or by a flag, where it is written.
      if (text.trim() === "") {
        problems.push(
          `  ${name} is set but empty: unset it, or list its values separated by commas ` +
            `(to empty ${leaf.path}, write [] in the configuration file)`,
        );
      }
    }
    setPath(layer.values, leaf.path, value);
    layer.setBy.set(leaf.path, name);
  }
  if (problems.length > 0) {
    throw new ConfigError(`invalid environment:\n${problems.join("\n")}`, {
      keysNamed: problems.length,
    });
  }
  return layer;
}

/**
 * `did you mean X?` for the name nearest `name` among `known` and `alsoNear` (names that are
 * not settings themselves, such as sections), or the size of `known` when none is near.
 */
function closest(name: string, known: readonly string[], alsoNear: readonly string[] = []): string {
  const best = nearestName(name, [...known, ...alsoNear]);
  return best !== undefined
    ? `did you mean ${best}?`
    : `see README, "Configuration", for the ${known.length} known ones`;
}

/**
 * Merge layers (later ones win: pass them file, env, flags for the documented precedence
 * flag > env > file > default), validate the result, and say where each leaf came from. Throws
 * {@link ConfigError} naming each wrong key path, why, and which flag, variable or file set it;
 * first, a layer's refusal of a key whose value it gives (`refusals`: {@link MovedConfigPathError}).
 */
export function resolveNodeConfig(layers: readonly ConfigLayer[]): ResolvedConfig {
  // A layer's refusal of a key holds only where that layer's value is the one used.
  for (const layer of layers) {
    for (const [path, refusal] of layer.refusals ?? []) {
      if (layers.findLast((above) => above.setBy.has(path)) === layer) throw refusal;
    }
  }
  let merged: Record<string, unknown> = {};
  for (const layer of layers) merged = mergeOver(merged, layer.values);
  const originOf = (path: string): ConfigOrigin => {
    for (const layer of [...layers].reverse()) {
      const by = layer.setBy.get(path);
      if (by !== undefined) return { source: layer.source, by };
    }
    // A section (an unknown one, say) has no entry of its own: layers record leaves. The layer
    // that set a leaf under it set the section.
    for (const layer of [...layers].reverse()) {
      for (const [leaf, by] of layer.setBy) {
        if (leaf.startsWith(`${path}.`)) return { source: layer.source, by };
      }
    }
    return { source: "default" };
  };
  // The layers' values are checked by the schema here, not by their type.
  const config = parseNodeConfig(merged as NodeConfigInput, (path) => {
    const origin = originOf(path);
    return origin.by === undefined ? undefined : origin.by;
  });
  const origins = new Map(configLeaves().map((leaf) => [leaf.path, originOf(leaf.path)]));
  return { config, origins };
}

/**
 * The cap on what peers may place in this node's store: `storage.replicaQuotaBytes`, else half
 * of `storage.quotaBytes`, else {@link DEFAULT_REPLICA_QUOTA_BYTES}.
 */
export function replicaQuotaOf(storage: NodeConfig["storage"]): number {
  if (storage.replicaQuotaBytes !== undefined) return storage.replicaQuotaBytes;
  return storage.quotaBytes === undefined
    ? DEFAULT_REPLICA_QUOTA_BYTES
    : Math.floor(storage.quotaBytes / 2);
}

/**
 * Validate a raw configuration value (from JSON); throws {@link ConfigError} naming every wrong
 * key path and the reason.
 *
 * @param raw The value (a parsed file, or merged layers); absent, every default. Typed, so that
 *   a misspelt key is a compile error too; cast a value read from JSON ({@link NodeConfigInput}).
 * @param setBy What set the value at a dotted path (a flag, a variable, a file), to name it.
 */
export function parseNodeConfig(
  raw?: NodeConfigInput,
  setBy: (path: string) => string | undefined = () => undefined,
): NodeConfig {
  const result = nodeConfigSchema.safeParse(raw ?? {});
  if (!result.success) {
    const known = configLeaves().map((leaf) => leaf.path);
    // An unknown section is near a known section, not a leaf: `htttp` → `http`.
    const sections = new Set<string>();
    for (const leaf of known) {
      for (let dot = leaf.indexOf("."); dot > 0; dot = leaf.indexOf(".", dot + 1)) {
        sections.add(leaf.slice(0, dot));
      }
    }
    // Layers record a list as one leaf (`--peer` sets `network.peers`, not `network.peers.0`):
    // an item's source is its list's.
    const sourceOf = (at: readonly string[]): string | undefined => {
      let keys = at;
      for (;;) {
        const by = setBy(keys.join("."));
        if (by !== undefined || keys.length === 0 || !/^\d+$/.test(keys[keys.length - 1])) {
          return by;
        }
        keys = keys.slice(0, -1);
      }
    };
    const issues = oneIssuePerKey(result.error.issues).flatMap((issue) => {
      const at = issue.path.map(String);
      if (issue.code === "unrecognized_keys") {
        return issue.keys.map((key) => {
          const path = [...at, key].join(".");
          const by = sourceOf([...at, key]);
          const hint = closest(path, known, [...sections]);
          return `  ${path}: unknown key (${hint})${by === undefined ? "" : ` [from ${by}]`}`;
        });
      }
      const by = sourceOf(at.length === 0 ? ["(root)"] : at);
      return [`  ${schemaIssueLine(issue)}${by === undefined ? "" : ` [from ${by}]`}`];
    });
    throw new ConfigError(`invalid configuration:\n${issues.join("\n")}`, {
      keysNamed: issues.length,
    });
  }
  return result.data;
}

/**
 * `issues` with one per key path: the first, or of several "too big", the one with the lowest
 * bound. A number past 2^53 failed both `.int()`'s own safe range and the key's `.max()`, and
 * `"heartbeatMs": 1e300` was refused twice, once with a bound the key does not have.
 */
function oneIssuePerKey(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue[] {
  const chosen = new Map<string, z.core.$ZodIssue>();
  // Unknown keys are one issue for several keys, each named: never merged.
  const keyed = issues.filter((issue) => issue.code !== "unrecognized_keys");
  for (const issue of keyed) {
    const key = issue.path.map(String).join(".");
    const before = chosen.get(key);
    if (
      before === undefined ||
      (before.code === "too_big" && issue.code === "too_big" &&
        Number(issue.maximum) < Number(before.maximum))
    ) chosen.set(key, issue);
  }
  const kept = new Set(chosen.values());
  return issues.filter((issue) => issue.code === "unrecognized_keys" || kept.has(issue));
}

/**
 * Read a JSON configuration file (not yet validated: a layer for {@link resolveNodeConfig}); a
 * path led by `~` is refused like a configured one (`SHELL_HOME_REFUSAL`).
 */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  if (startsAtShellHome(path)) {
    // Refused as such: "no such file" sent the operator looking for a file that is there.
    throw new ConfigError(
      `configuration file ${path} ${NO_TILDE} (check the path given to --config or ` +
        `VERIFLOW_CONFIG)`,
    );
  }
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (cause) {
    throw new ConfigError(
      `cannot read configuration file ${path} (${(cause as Error).message}); check the path ` +
        `given to --config or VERIFLOW_CONFIG`,
      { cause },
    );
  }
  let raw: unknown;
  // One byte-order mark is the encoding's, not the JSON's (Notepad and PowerShell 5 write it):
  // JSON.parse refused it as an invisible "Unexpected token".
  const json = text.startsWith("\uFEFF") ? text.slice(1) : text;
  try {
    raw = JSON.parse(json);
  } catch (cause) {
    throw new ConfigError(`${path} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  // JSON.parse keeps the last copy of a repeated key: a section written twice lost the first
  // copy's settings without a word (review s78 F5).
  const repeated = repeatedJsonKey(json);
  if (repeated !== undefined) {
    throw new ConfigError(
      `${repeated.join(".")}: written twice in ${path} (JSON keeps only the last); merge the ` +
        `two into one`,
    );
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(`${path}: expected a JSON object at the top level`);
  }
  return raw as Record<string, unknown>;
}

/** Read and validate a JSON configuration file. */
export async function loadNodeConfig(path: string): Promise<NodeConfig> {
  return resolveNodeConfig([fileLayer(await readConfigFile(path), path)]).config;
}
