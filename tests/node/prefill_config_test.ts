/**
 * `model.prefillTokensPerTick` (`--prefill-tokens-per-tick`, `VERIFLOW_MODEL_PREFILL_TOKENS_PER_TICK`):
 * how many prompt tokens a text model's batch reads per step while its streams decode. The
 * configuration accepts a whole number from 1 to `MAX_PREFILL_TOKENS_PER_TICK` and refuses
 * anything else in one line naming the key and the range; `--print-config` shows it; and the
 * model the node loads (`node/_node_models.ts`) reads joining prompts in pieces of that size.
 * The pieces are counted from the batch's own statistics, not timed.
 */
import assert from "node:assert/strict";
import { resolveStartConfig, runStart, type StartCommandIo } from "../../cli/start_command.ts";
import {
  ConfigError,
  MAX_PREFILL_TOKENS_PER_TICK,
  type NodeConfigInput,
  parseNodeConfig,
} from "../../node/config.ts";
import { loadModels } from "../../node/_node_models.ts";
import { collect, params } from "../inference/_fixtures.ts";

const KEY = "model.prefillTokensPerTick";
const FLAG = "--prefill-tokens-per-tick";
const ENV = "VERIFLOW_MODEL_PREFILL_TOKENS_PER_TICK";

/** The lines of a configuration error that name a key (the first line is its heading). */
function issueLines(error: ConfigError): string[] {
  return error.message.split("\n").slice(1);
}

/** The {@link ConfigError} `body` throws (fails when it throws none, or another error). */
async function configErrorOf(body: () => unknown): Promise<ConfigError> {
  try {
    await body();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail("no ConfigError was thrown");
}

Deno.test("prefillTokensPerTick: unset by default, so the batch keeps its adaptive pieces", () => {
  assert.equal(parseNodeConfig({}).model.prefillTokensPerTick, undefined);
});

Deno.test("prefillTokensPerTick: a whole number from 1 to the maximum is accepted", () => {
  for (const n of [1, 64, 128, MAX_PREFILL_TOKENS_PER_TICK]) {
    assert.equal(
      parseNodeConfig({ model: { prefillTokensPerTick: n } }).model.prefillTokensPerTick,
      n,
    );
  }
});

Deno.test("prefillTokensPerTick: anything else is one line naming the key and the range", async () => {
  const bad: unknown[] = [0, -1, 1.5, 0.5, MAX_PREFILL_TOKENS_PER_TICK + 1, "128", null, true];
  for (const value of bad) {
    const raw = { model: { prefillTokensPerTick: value } } as unknown as NodeConfigInput;
    const error = await configErrorOf(() => parseNodeConfig(raw));
    const lines = issueLines(error);
    assert.equal(lines.length, 1, `${JSON.stringify(value)}: ${lines.join(" | ")}`);
    assert.match(
      lines[0],
      new RegExp(
        `^  ${KEY.replace(".", "\\.")}: expected a whole number of prompt tokens ` +
          `from 1 to ${MAX_PREFILL_TOKENS_PER_TICK} `,
      ),
      JSON.stringify(value),
    );
    assert.equal(error.keysNamed, 1);
  }
});

Deno.test("prefillTokensPerTick: set by its flag or its variable, the flag winning", async () => {
  const byEnv = await resolveStartConfig([], { [ENV]: "32" });
  assert.equal(byEnv.config.model.prefillTokensPerTick, 32);
  assert.deepEqual(byEnv.origins.get(KEY), { source: "env", by: ENV });
  const byFlag = await resolveStartConfig([FLAG, "48"], { [ENV]: "32" });
  assert.equal(byFlag.config.model.prefillTokensPerTick, 48);
  assert.deepEqual(byFlag.origins.get(KEY), { source: "flag", by: FLAG });
});

Deno.test("prefillTokensPerTick: a flag out of range is refused naming the key, the range and the flag", async () => {
  const lines = issueLines(await configErrorOf(() => resolveStartConfig([FLAG, "0"])));
  assert.equal(lines.length, 1, lines.join(" | "));
  assert.match(lines[0], /model\.prefillTokensPerTick: expected a whole number .* from 1 to 65536/);
  assert.match(lines[0], /\[from --prefill-tokens-per-tick\]$/);
  // Not a number at all: the flag is named, as for every other whole-number flag.
  await assert.rejects(resolveStartConfig([FLAG, "lots"]), /--prefill-tokens-per-tick/);
});

Deno.test("start with a bad prefillTokensPerTick exits 2 with one error line for it", async () => {
  const err: string[] = [];
  const io: StartCommandIo = {
    onStopSignal: () => () => {},
    out: () => {},
    err: (line) => void err.push(line),
    now: () => 0,
  };
  assert.equal(await runStart([FLAG, "70000"], io), 2);
  const text = err.join("\n");
  const named = text.split("\n").filter((line) => line.includes(KEY));
  assert.equal(named.length, 1, text);
  assert.match(named[0], /from 1 to 65536/);
});

Deno.test("prefillTokensPerTick: the flag on a node that generates nothing is refused", async () => {
  await assert.rejects(
    resolveStartConfig([FLAG, "64", "--no-inference"]),
    /--prefill-tokens-per-tick has no effect here: --no-inference/,
  );
  await assert.rejects(
    resolveStartConfig([FLAG, "64", "--no-inference", "--no-validator"]),
    /--prefill-tokens-per-tick has no effect here: this node loads no model/,
  );
});

Deno.test("--print-config shows prefillTokensPerTick: what unset means, and a value set", async () => {
  const print = async (args: string[]) => {
    const out: string[] = [];
    const io: StartCommandIo = {
      onStopSignal: () => () => {},
      out: (line) => void out.push(line),
      err: (line) => void out.push(`ERR ${line}`),
      now: () => 0,
    };
    assert.equal(await runStart(["--print-config", ...args], io), 0, out.join("\n"));
    return out.join("\n");
  };
  assert.match(
    await print([]),
    /^model\.prefillTokensPerTick\s+\(unset: 128, adaptive pieces\)\s+default$/m,
  );
  assert.match(
    await print([FLAG, "40"]),
    /^model\.prefillTokensPerTick\s+40\s+flag --prefill-tokens-per-tick$/m,
  );
});

/** A prompt of `n` byte tokens, different for each `k`. */
function prompt(n: number, k: number): number[] {
  return Array.from({ length: n }, (_, j) => 97 + ((k * 3 + j * 7) % 26));
}

/**
 * The prompt reads of the model a node with `model` settings loads: a stream that decodes, then
 * a 100-token prompt joining it (read in pieces of at most the budget, since the first stream
 * decodes: it has sent tokens and has 200 to go).
 */
async function promptReadsOfNodeModel(model: NodeConfigInput["model"]): Promise<number> {
  const dataDir = await Deno.makeTempDir({ prefix: "veriflow-prefill-config-" });
  const config = parseNodeConfig({ dataDir, model: { size: "tiny", ...model } });
  const registry = await loadModels(config, () => {});
  try {
    const [{ cid }] = registry.list();
    const text = await registry.getText(cid);
    const running = text.generate(prompt(10, 1), params({ temperature: 0, maxTokens: 200 }));
    const reader = running.getReader();
    for (let i = 0; i < 3; i++) assert.equal((await reader.read()).done, false);
    const joined = await collect(
      text.generate(prompt(100, 2), params({ temperature: 0, maxTokens: 1 })),
    );
    assert.equal(joined.length, 1);
    await reader.cancel();
    const [stats] = await text.batchStats();
    return stats.prefillRuns;
  } finally {
    await registry.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

for (const workers of [1, 0]) {
  const where = workers === 0 ? "on the main thread" : "in a model worker";
  Deno.test(`the model a node loads reads a joining prompt in pieces of prefillTokensPerTick (${where})`, async () => {
    // The running stream's prompt, then the 100 tokens in 5 pieces of 20. Without the setting
    // reaching the batch it is read in one (the default budget, 128, holds it).
    assert.equal(await promptReadsOfNodeModel({ workers, prefillTokensPerTick: 20 }), 1 + 5);
  });
}

Deno.test("the model a node loads without prefillTokensPerTick reads that prompt whole", async () => {
  // The control of the test above: the same run under the default budget.
  assert.equal(await promptReadsOfNodeModel({ workers: 1 }), 1 + 1);
});
