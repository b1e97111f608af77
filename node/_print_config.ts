/**
 * How `cli.ts start --print-config` shows a resolved configuration (`config.ts`'s
 * `ResolvedConfig`): one leaf a line with where it came from, secrets counted, not shown.
 * Used by `start_command.ts`. Private: `config.ts` (and so `mod.ts`) re-exports
 * `formatResolvedConfig`.
 *
 * @module
 */
import type { ResolvedConfig } from "./config.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";
import { MIN_PROOF_RETENTION_MS } from "../proof/challenge_timing.ts";
import { DEFAULT_REPLICA_QUOTA_BYTES } from "./_config_schema.ts";
import { DEFAULT_PREFILL_TOKENS_PER_TICK } from "../inference/_prefill_planner.ts";

/**
 * Leaves whose values are secrets: `--print-config` shows how many there are, never the values
 * (its output is what an operator pastes into a bug report).
 */
const SECRET_LEAVES: ReadonlySet<string> = new Set(["http.apiKeys"]);

/**
 * What an optional leaf left unset comes to, where the node puts a value of its own in its
 * place: `(unset)` alone would hide the challenge rate or proof retention the node runs with.
 * Leaves whose absence is simply nothing (`model.dir`, `http.apiKeysFile`) are not listed.
 */
const UNSET_MEANS: ReadonlyMap<string, string> = new Map([
  ["validator.challengeProbability", String(DEFAULT_ECONOMICS.challengeProbability)],
  ["training.challengeProbability", String(DEFAULT_ECONOMICS.challengeProbability)],
  // The prover's default retention is the least a challenge needs (`DEFAULT_PROOF_RETENTION_MS`).
  ["proofs.retentionMs", String(MIN_PROOF_RETENTION_MS)],
  ["storage.quotaBytes", "no quota"],
  // Unset, a coordinator evaluates on text every trainer can read: worth seeing in a bug report.
  ["training.coordinator.heldOutFile", "the public Brown held-out split"],
  // The batch's default budget, its pieces sized to the measured decode step under it.
  ["model.prefillTokensPerTick", `${DEFAULT_PREFILL_TOKENS_PER_TICK}, adaptive pieces`],
  [
    "storage.replicaQuotaBytes",
    `half of storage.quotaBytes, else ${DEFAULT_REPLICA_QUOTA_BYTES} without one`,
  ],
]);

/** How `--print-config` shows a value: JSON, or for a secret leaf only its count. */
function shownValue(path: string, value: unknown): string {
  if (value === undefined) {
    const means = UNSET_MEANS.get(path);
    return means === undefined ? "(unset)" : `(unset: ${means})`;
  }
  if (!SECRET_LEAVES.has(path)) return JSON.stringify(value);
  const count = Array.isArray(value) ? value.length : 1;
  return count === 0 ? "[]" : `(${count} ${count === 1 ? "value" : "values"}, not shown)`;
}

/**
 * The effective configuration, one leaf a line with where it came from, for
 * `cli.ts start --print-config`; secrets (the API keys) are counted, not shown:
 *
 * ```
 * http.port                 8080              default
 * dataDir                   "/srv/vf"         env VERIFLOW_DATA_DIR
 * http.apiKeys              (2 values, not shown)  env VERIFLOW_HTTP_API_KEYS
 * ```
 */
export function formatResolvedConfig(resolved: ResolvedConfig): string {
  const rows = [...resolved.origins].map(([path, origin]) => {
    let value: unknown = resolved.config;
    for (const key of path.split(".")) value = (value as Record<string, unknown>)?.[key];
    const shown = shownValue(path, value);
    const from = origin.by === undefined ? origin.source : `${origin.source} ${origin.by}`;
    return [path, shown, from];
  });
  const width = (i: number) => Math.max(...rows.map((r) => r[i].length));
  const [w0, w1] = [width(0), Math.min(width(1), 40)];
  return rows.map(([path, shown, from]) => `${path.padEnd(w0)}  ${shown.padEnd(w1)}  ${from}`).join(
    "\n",
  );
}
