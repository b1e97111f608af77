/**
 * Worker execution mode against in-thread mode, on the built-in `small` model (built once into
 * a cache dir, as `bench/inference_bench.ts` does).
 *
 * Side by side in one run, interleaved so drift hits every mode alike, median of several runs:
 * - single-stream greedy tokens/s and time to first token;
 * - aggregate tokens/s of 2 and of 8 concurrent generations on one model;
 * - event-loop lag: the largest delay of a periodic timer while the model generates (what
 *   every HTTP request, WebSocket write and actor on the node waits at worst).
 *
 * Modes: in-thread with one intra-op thread (the same session options as each worker: the
 * apples-to-apples baseline); in-thread with onnxruntime's default threads (what a node runs
 * today, `new ModelRegistry({ executionProvider })`); worker mode with its defaults
 * (`worker: true`: one worker per core, one intra-op thread each on this machine); and worker
 * mode with a single worker given every core as intra-op threads (`workerCount: 1`).
 *
 *     deno run -A bench/worker_bench.ts [--runs 5] [--tokens 128] [--concurrent-tokens 64]
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureBuiltinModel } from "../inference/builtin_model.ts";
import { TextModel } from "../inference/text_model.ts";
import { DEFAULT_GENERATION_PARAMS, type GenerationParams } from "../protocols/job.ts";
import { median } from "./_stats.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "5" },
    tokens: { type: "string", default: "128" },
    "concurrent-tokens": { type: "string", default: "64" },
    size: { type: "string", default: "small" },
  },
});
const RUNS = Number(flags.runs);
const TOKENS = Number(flags.tokens);
const CONCURRENT_TOKENS = Number(flags["concurrent-tokens"]);
const SIZE = flags.size as "tiny" | "small";
/** Concurrency levels measured: as many jobs as this machine's cores, and well above. */
const CONCURRENCY = [2, 8];
/**
 * Period of the lag probe's timer. Short enough to catch every blocked stretch longer than a
 * couple of ms; the probe costs nothing measurable at this rate.
 */
const LAG_TICK_MS = 2;
/** Same prompt as bench/inference_bench.ts: an ordinary prompt pass for TTFT. */
const PROMPT = "The history of the decentralized network began with a single node, and";
/** Goal for worker/in-thread single-stream tokens/s (same session options). */
const SINGLE_STREAM_GOAL = 0.95;

const cacheDir = join(Deno.env.get("TMPDIR") ?? "/tmp", "veriflow-bench-models");
const buildStart = performance.now();
const dir = await ensureBuiltinModel(cacheDir, SIZE, 0);
console.log(
  `model: built-in ${SIZE} in ${dir} (${(performance.now() - buildStart).toFixed(0)} ms)`,
);

interface Mode {
  label: string;
  model: TextModel;
}

const loadStart = performance.now();
const modes: Mode[] = [
  { label: "in-thread, 1 thread", model: await TextModel.load(dir, { intraOpThreads: 1 }) },
  { label: "in-thread, ORT default threads", model: await TextModel.load(dir) },
  { label: "worker (defaults)", model: await TextModel.load(dir, { worker: true }) },
  {
    label: "worker, 1 × all cores",
    model: await TextModel.load(dir, { worker: true, workerCount: 1 }),
  },
];
const workerModel = modes[2].model;
console.log(
  `loaded ${modes.length} models in ${
    (performance.now() - loadStart).toFixed(0)
  } ms; worker mode: ` +
    `${workerModel.workerCount} workers; cores: ${navigator.hardwareConcurrency}`,
);
const promptIds = modes[0].model.tokenizer.encode(PROMPT);
const greedy = (maxTokens: number): GenerationParams => ({
  ...DEFAULT_GENERATION_PARAMS,
  temperature: 0,
  maxTokens,
});

/** The largest delay of a periodic timer beyond its period, while it runs. */
class LagProbe {
  #timer: ReturnType<typeof setInterval>;
  #last = performance.now();
  #max = 0;

  constructor() {
    this.#timer = setInterval(() => {
      const now = performance.now();
      this.#max = Math.max(this.#max, now - this.#last - LAG_TICK_MS);
      this.#last = now;
    }, LAG_TICK_MS);
  }

  /** Stop and return the worst lag seen (ms). */
  stop(): number {
    clearInterval(this.#timer);
    // A stretch still blocked at the end counts too.
    return Math.max(this.#max, performance.now() - this.#last - LAG_TICK_MS);
  }
}

interface SingleResult {
  tokensPerS: number;
  ttftMs: number;
  lagMs: number;
  tokens: number[];
}

async function single(model: TextModel): Promise<SingleResult> {
  const probe = new LagProbe();
  const start = performance.now();
  let firstAt = 0;
  const tokens: number[] = [];
  for await (const chunk of model.generate(promptIds, greedy(TOKENS))) {
    if (tokens.length === 0) firstAt = performance.now();
    tokens.push(chunk.tokenId);
  }
  const seconds = (performance.now() - start) / 1000;
  const lagMs = probe.stop();
  return { tokensPerS: tokens.length / seconds, ttftMs: firstAt - start, lagMs, tokens };
}

interface ConcurrentResult {
  tokensPerS: number;
  lagMs: number;
}

async function concurrent(model: TextModel, jobs: number): Promise<ConcurrentResult> {
  const probe = new LagProbe();
  const start = performance.now();
  const counts = await Promise.all(Array.from({ length: jobs }, async () => {
    let n = 0;
    for await (const _ of model.generate(promptIds, greedy(CONCURRENT_TOKENS))) n++;
    return n;
  }));
  const seconds = (performance.now() - start) / 1000;
  const lagMs = probe.stop();
  return { tokensPerS: counts.reduce((a, b) => a + b, 0) / seconds, lagMs };
}

// Warm-up: first runs pay for allocator growth and kernel selection in every session.
for (const { model } of modes) {
  await single(model);
  await concurrent(model, Math.max(...CONCURRENCY));
}

const singles = modes.map((): SingleResult[] => []);
const concurrents = modes.map(() => CONCURRENCY.map((): ConcurrentResult[] => []));
for (let run = 0; run < RUNS; run++) {
  for (const [m, { model }] of modes.entries()) {
    singles[m].push(await single(model));
    for (const [c, jobs] of CONCURRENCY.entries()) {
      concurrents[m][c].push(await concurrent(model, jobs));
    }
  }
}
const sameTokens = singles[2].every((r, i) => r.tokens.join() === singles[0][i].tokens.join());

// --- report ------------------------------------------------------------------------------------

const [base, ortDefault, worker, oneWorker] = [0, 1, 2, 3];
const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
const singleTps = (m: number) => median(singles[m].map((r) => r.tokensPerS));
const ttft = (m: number) => median(singles[m].map((r) => r.ttftMs));
const singleLag = (m: number) => median(singles[m].map((r) => r.lagMs));
const concTps = (m: number, c: number) => median(concurrents[m][c].map((r) => r.tokensPerS));
const concLag = (m: number, c: number) => median(concurrents[m][c].map((r) => r.lagMs));

console.log(
  `\n${SIZE} model, prompt ${promptIds.length} tokens, greedy; single stream ${TOKENS} tokens, ` +
    `concurrent ${CONCURRENT_TOKENS} tokens per job; median of ${RUNS} runs; ` +
    `worker tokens identical to in-thread (1 thread): ${sameTokens}\n`,
);
const rows = [
  {
    measure: "single stream: tokens/s",
    values: modes.map((_, m) => singleTps(m).toFixed(1)),
    ratio: singleTps(worker) / singleTps(base),
    ratioDefault: singleTps(worker) / singleTps(ortDefault),
    ratioOne: singleTps(oneWorker) / singleTps(ortDefault),
    goal: `worker/in-thread(1) ≥ ${SINGLE_STREAM_GOAL}`,
    ok: singleTps(worker) / singleTps(base) >= SINGLE_STREAM_GOAL,
  },
  {
    measure: "single stream: TTFT (ms)",
    values: modes.map((_, m) => ttft(m).toFixed(1)),
    ratio: ttft(worker) / ttft(base),
    ratioDefault: ttft(worker) / ttft(ortDefault),
    ratioOne: ttft(oneWorker) / ttft(ortDefault),
    goal: "(information)",
    ok: undefined,
  },
  {
    measure: "single stream: max event-loop lag (ms)",
    values: modes.map((_, m) => singleLag(m).toFixed(1)),
    ratio: singleLag(worker) / singleLag(base),
    ratioDefault: singleLag(worker) / singleLag(ortDefault),
    ratioOne: singleLag(oneWorker) / singleLag(ortDefault),
    goal: "worker < in-thread",
    ok: singleLag(worker) < singleLag(base) && singleLag(worker) < singleLag(ortDefault),
  },
  ...CONCURRENCY.flatMap((jobs, c) => [
    {
      measure: `${jobs} concurrent: aggregate tokens/s`,
      values: modes.map((_, m) => concTps(m, c).toFixed(1)),
      ratio: concTps(worker, c) / concTps(base, c),
      ratioDefault: concTps(worker, c) / concTps(ortDefault, c),
      ratioOne: concTps(oneWorker, c) / concTps(ortDefault, c),
      goal: "worker/in-thread > 1",
      ok: concTps(worker, c) > concTps(base, c) && concTps(worker, c) > concTps(ortDefault, c),
    },
    {
      measure: `${jobs} concurrent: max event-loop lag (ms)`,
      values: modes.map((_, m) => concLag(m, c).toFixed(1)),
      ratio: concLag(worker, c) / concLag(base, c),
      ratioDefault: concLag(worker, c) / concLag(ortDefault, c),
      ratioOne: concLag(oneWorker, c) / concLag(ortDefault, c),
      goal: "worker < in-thread",
      ok: concLag(worker, c) < concLag(base, c) && concLag(worker, c) < concLag(ortDefault, c),
    },
  ]),
];
console.table(rows.map((row) => ({
  measure: row.measure,
  [modes[base].label]: row.values[base],
  [modes[ortDefault].label]: row.values[ortDefault],
  [modes[worker].label]: row.values[worker],
  [modes[oneWorker].label]: row.values[oneWorker],
  "worker(defaults) / in-thread(1)": row.ratio.toFixed(3),
  "worker(defaults) / in-thread(ORT default)": row.ratioDefault.toFixed(3),
  "worker(1 × all) / in-thread(ORT default)": row.ratioOne.toFixed(3),
  goal: row.goal,
  status: row.ok === undefined ? "-" : verdict(row.ok),
})));

for (const { model } of modes) await model.dispose();
