/**
 * Model bench: build time of the built-in sizes, and greedy generation speed with the KV cache
 * versus without it (every step recomputes the whole sequence with `forward`), measured in the
 * same run so the ratio is meaningful on any machine.
 *
 * ```
 * deno run -A bench/model_bench.ts [--runs 3] [--tokens 64] [--threads N]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { buildGptModel, type GptModelSize } from "../inference/model_builder.ts";
import { argmax } from "../inference/sampler.ts";
import { TextModel } from "../inference/text_model.ts";
import { DEFAULT_GENERATION_PARAMS } from "../protocols/job.ts";
import { median } from "./_stats.ts";

/** Goals from the design: the tiny model must build in seconds (tests build it per file). */
const GOALS = {
  /** Tiny build time, ms. */
  tinyBuildMs: 2_000,
  /** Small build time, ms. */
  smallBuildMs: 30_000,
  /** KV-cached greedy tokens/s over full-recompute tokens/s, per size. */
  cacheSpeedup: { tiny: 2, small: 3 } as Record<GptModelSize, number>,
};

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "3" },
    tokens: { type: "string", default: "64" },
    threads: { type: "string" },
  },
});
const RUNS = Number(values.runs);
const TOKENS = Number(values.tokens);
const THREADS = values.threads === undefined ? undefined : Number(values.threads);
const PROMPT = "The quick brown fox jumps over the lazy dog.";

async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

const rows: string[][] = [];
const root = await Deno.makeTempDir({ prefix: "veriflow-model-bench-" });
try {
  for (const size of ["tiny", "small"] as GptModelSize[]) {
    const builds: number[] = [];
    let dir = "";
    for (let r = 0; r < RUNS; r++) {
      dir = `${root}/${size}-${r}`;
      builds.push(await timeMs(() => buildGptModel({ size, seed: 0, outDir: dir })));
    }
    const buildGoal = size === "tiny" ? GOALS.tinyBuildMs : GOALS.smallBuildMs;
    const buildMs = median(builds);
    rows.push([
      `${size} build`,
      `${buildMs.toFixed(0)} ms`,
      `goal < ${buildGoal} ms`,
      buildMs < buildGoal ? "met" : "NOT met",
    ]);

    const model = await TextModel.load(dir, { intraOpThreads: THREADS });
    const promptIds = model.tokenizer.encode(PROMPT);
    const params = { ...DEFAULT_GENERATION_PARAMS, maxTokens: TOKENS };
    const cached: number[] = [];
    const uncached: number[] = [];
    // Warm-up, so session initialisation is not billed to the first timed run.
    for await (const _ of model.generate(promptIds, { ...params, maxTokens: 4 }));
    for (let r = 0; r < RUNS; r++) {
      cached.push(
        await timeMs(async () => {
          for await (const _ of model.generate(promptIds, params));
        }),
      );
      uncached.push(
        await timeMs(async () => {
          const seq = [...promptIds];
          const V = model.info.vocabSize;
          for (let t = 0; t < TOKENS; t++) {
            const logits = await model.forward(seq);
            seq.push(argmax(logits.subarray((seq.length - 1) * V)));
          }
        }),
      );
    }
    await model.dispose();
    const withCache = TOKENS / (median(cached) / 1000);
    const without = TOKENS / (median(uncached) / 1000);
    const ratio = withCache / without;
    rows.push([`${size} greedy, KV cache`, `${withCache.toFixed(0)} tok/s`, "", ""]);
    rows.push([`${size} greedy, full recompute`, `${without.toFixed(0)} tok/s`, "baseline", ""]);
    rows.push([
      `${size} cache speedup`,
      `${ratio.toFixed(2)}x`,
      `goal >= ${GOALS.cacheSpeedup[size]}x`,
      ratio >= GOALS.cacheSpeedup[size] ? "met" : "NOT met",
    ]);
  }
} finally {
  await Deno.remove(root, { recursive: true });
}

console.log(
  `model bench: ${RUNS} runs (median), ${TOKENS} tokens after a ${PROMPT.length}-byte prompt, ` +
    `threads=${THREADS ?? "default"}`,
);
const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length)));
for (const row of rows) console.log(row.map((c, i) => c.padEnd(widths[i])).join("  "));
