/**
 * Generation while the validator works: tokens/s of one greedy stream alone, and the same
 * stream while a validator runs forward passes back to back (a challenge queue that never
 * empties), side by side in one run, interleaved, for each way the node can place those passes:
 *
 * - `own lane` — `validationWorkers: 1` (the node's default when it validates): forward passes
 *   run on a worker of their own; a step never waits behind one, the two only share cores.
 * - `shared` — `validationWorkers: 0`: forward passes go to the generation worker, which serves
 *   its queued steps first but cannot interrupt a pass already running.
 *
 * The model runs in worker mode with the node's defaults (one generation worker, intra-op
 * threads = cores / workers). A validation pass covers `--prompt-tokens` + `--tokens` positions,
 * as a challenge of a job of that size does (128 + 256 by default, like the proof bench).
 * The ratio is "with the validator" / "alone" of medians; goal: ≥ 0.5 with its own lane on two
 * cores (the validator may take a core, never the stream).
 *
 *     deno run -A bench/validation_bench.ts [--size small] [--runs 5] [--tokens 128]
 *       [--validate-tokens 384]
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureBuiltinModel } from "../inference/builtin_model.ts";
import { TextModel } from "../inference/text_model.ts";
import { DEFAULT_GENERATION_PARAMS } from "../protocols/job.ts";
import { median } from "./_stats.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "small" },
    runs: { type: "string", default: "5" },
    tokens: { type: "string", default: "128" },
    "validate-tokens": { type: "string", default: "384" },
  },
});
const SIZE = flags.size as "tiny" | "small";
const RUNS = Number(flags.runs);
const TOKENS = Number(flags.tokens);
const VALIDATE_TOKENS = Number(flags["validate-tokens"]);
/** Goal for the own-lane ratio (see the module doc). */
const GOAL_RATIO = 0.5;

const cacheDir = join(Deno.env.get("TMPDIR") ?? "/tmp", "veriflow-bench-models");
const dir = await ensureBuiltinModel(cacheDir, SIZE, 0);
const cores = navigator.hardwareConcurrency;
console.log(
  `model: built-in ${SIZE}; ${cores} cores; stream of ${TOKENS} tokens; validation passes of ` +
    `${VALIDATE_TOKENS} positions; ${RUNS} runs per cell, interleaved`,
);

interface Cell {
  alone: number[];
  withValidator: number[];
  passes: number[];
}

/** Tokens/s of one greedy stream, from its first token to its last (decode rate). */
async function streamRate(model: TextModel, prompt: number[]): Promise<number> {
  const params = { ...DEFAULT_GENERATION_PARAMS, maxTokens: TOKENS, temperature: 0, stop: [] };
  let first = 0;
  let count = 0;
  for await (const _ of model.generate(prompt, params)) {
    if (count++ === 0) first = performance.now();
  }
  return (count - 1) / ((performance.now() - first) / 1000);
}

/** Forward passes back to back until `stop` is aborted; resolves with how many ran. */
async function validateUntil(model: TextModel, tokens: number[], stop: AbortSignal) {
  let passes = 0;
  while (!stop.aborted) {
    await model.forward(tokens);
    passes++;
  }
  return passes;
}

async function measure(validationWorkers: number): Promise<Cell> {
  const model = await TextModel.load(dir, { worker: true, workerCount: 1, validationWorkers });
  try {
    const prompt = model.tokenizer.encode("The history of the decentralized network began with");
    const vocab = model.info.vocabSize;
    const validated = Array.from({ length: VALIDATE_TOKENS }, (_, i) => (i * 31 + 7) % vocab);
    await streamRate(model, prompt); // warm both paths
    await model.forward(validated);
    const cell: Cell = { alone: [], withValidator: [], passes: [] };
    for (let run = 0; run < RUNS; run++) {
      cell.alone.push(await streamRate(model, prompt));
      const stop = new AbortController();
      const validating = validateUntil(model, validated, stop.signal);
      cell.withValidator.push(await streamRate(model, prompt));
      stop.abort();
      cell.passes.push(await validating);
    }
    return cell;
  } finally {
    await model.dispose();
  }
}

const rows: [string, Cell][] = [];
for (const [name, validationWorkers] of [["own lane", 1], ["shared", 0]] as const) {
  rows.push([name, await measure(validationWorkers)]);
}

console.log(
  `\n| forward passes | tok/s alone | tok/s with validator | ratio | passes during a stream | ` +
    `goal (own lane) ≥ ${GOAL_RATIO} |`,
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const [name, cell] of rows) {
  const alone = median(cell.alone);
  const busy = median(cell.withValidator);
  const ratio = busy / alone;
  const status = name === "own lane" ? (ratio >= GOAL_RATIO ? "met" : "not met") : "";
  console.log(
    `| ${name} | ${alone.toFixed(1)} | ${busy.toFixed(1)} | ${ratio.toFixed(2)} | ` +
      `${median(cell.passes)} | ${status} |`,
  );
}
