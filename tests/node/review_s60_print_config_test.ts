/**
 * `--print-config` shows what a setting left unset means where the node puts a value of its own
 * in its place: an operator asking "how often does my validator challenge?" or "how long is proof
 * data kept?" was told `(unset)`, though the node runs with 0.1 and 21 minutes (review stop 60,
 * the first-hour walk). Settings whose absence is simply nothing (`model.dir`, `http.apiKeysFile`)
 * still say `(unset)`.
 */
import assert from "node:assert/strict";
import { runStart, type StartCommandIo } from "../../node/start_command.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { MIN_PROOF_RETENTION_MS } from "../../proof/challenge_timing.ts";

async function printConfig(args: string[] = []): Promise<string> {
  const out: string[] = [];
  const io: StartCommandIo = {
    onStopSignal: () => () => {},
    out: (line) => void out.push(line),
    err: (line) => void out.push(`ERR ${line}`),
    now: () => 0,
    env: () => ({ VERIFLOW_DATA_DIR: "/nonexistent/never-created" }),
  };
  assert.equal(await runStart(["--print-config", ...args], io), 0, out.join("\n"));
  return out.join("\n");
}

Deno.test("--print-config says what an unset setting with a node-chosen value comes to", async () => {
  const text = await printConfig();
  const p = DEFAULT_ECONOMICS.challengeProbability;
  assert.match(
    text,
    new RegExp(`^validator\\.challengeProbability\\s+\\(unset: ${p}\\)\\s+default$`, "m"),
  );
  assert.match(
    text,
    new RegExp(`^training\\.challengeProbability\\s+\\(unset: ${p}\\)\\s+default$`, "m"),
  );
  assert.match(
    text,
    new RegExp(`^proofs\\.retentionMs\\s+\\(unset: ${MIN_PROOF_RETENTION_MS}\\)\\s+default$`, "m"),
  );
  assert.match(text, /^storage\.quotaBytes\s+\(unset: no quota\)\s+default$/m);
  assert.match(
    text,
    /^storage\.replicaQuotaBytes\s+\(unset: half of storage\.quotaBytes, none without one\)\s+default$/m,
  );
  // Nothing in its place: still plainly unset.
  assert.match(text, /^model\.dir\s+\(unset\)\s+default$/m);
  assert.match(text, /^http\.apiKeysFile\s+\(unset\)\s+default$/m);
});

Deno.test("--print-config shows a set value as itself, not what unset would mean", async () => {
  const text = await printConfig(["--challenge-probability", "0.5"]);
  assert.match(text, /^validator\.challengeProbability\s+0\.5\s+flag --challenge-probability$/m);
});
