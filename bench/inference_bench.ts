/**
 * Inference serving benchmark, on the built-in `small` model (built once into a cache dir).
 *
 * Side by side in one run:
 * 1. tokens/s and time to first token of a bare onnxruntime-node greedy loop (KV cache fed by
 *    hand on an `ort.InferenceSession`: the floor any serving stack sits on) against the same
 *    generation through InferenceActor → WebSocket → client. Goals: ratio ≥ 0.95, TTFT added
 *    ≤ 5 ms.
 * 2. 32 concurrent streaming WebSocket clients: aggregate tokens/s and the node's peak RSS.
 *
 * The node runs in a child process (this script with `--node`), as it would for a real client:
 * onnxruntime-node computes on the JS thread, so a client sharing the node's process would
 * only see messages between compute steps and overstate the serving cost. The node samples its
 * own RSS and reports the peak on `GET /bench/rss` (mounted on the app like any extra module).
 *
 * Median of several runs, baseline and served runs interleaved so drift hits both alike.
 *
 * `--workers N` (default 1) runs the node's model in worker mode (`ModelRegistry({ worker: true,
 * workerCount: N, intraOpThreads: <--threads> })`, generations running one step ahead), so the
 * node's event loop delivers token t while the worker computes token t+1; `--workers 0` runs it
 * in-thread, where compute blocks the loop and socket writes cannot overlap it. The header says
 * which mode the node ran in.
 *
 *     deno run -A bench/inference_bench.ts [--runs 5] [--tokens 128] [--clients 32] [--threads 1]
 *       [--workers 1]
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ActorSystem } from "../actors/actor_system.ts";
import {
  type GenerativeModel,
  InferenceActor,
  type InferenceMessage,
  type ModelSource,
  submitJob,
} from "../actors/inference_actor.ts";
import { StreamClient } from "../client/stream_client.ts";
import { ensureBuiltinModel } from "../inference/builtin_model.ts";
import { LocalInferencePort } from "../inference/local_port.ts";
import { ModelRegistry } from "../inference/model_registry.ts";
import { TextModel } from "../inference/text_model.ts";
import { createApp } from "../server/app.ts";
import { serve } from "../server/serve.ts";
import { median } from "./_stats.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "5" },
    tokens: { type: "string", default: "128" },
    clients: { type: "string", default: "32" },
    "client-tokens": { type: "string", default: "32" },
    size: { type: "string", default: "small" },
    threads: { type: "string", default: "1" },
    workers: { type: "string", default: "1" },
    // Internal: run as the node under test (a child process of the bench).
    node: { type: "boolean", default: false },
  },
});
const RUNS = Number(flags.runs);
const TOKENS = Number(flags.tokens);
const CLIENTS = Number(flags.clients);
const CLIENT_TOKENS = Number(flags["client-tokens"]);
const SIZE = flags.size as "tiny" | "small";
/**
 * onnxruntime intra-op threads of both sessions. One by default: on a small machine the client
 * process needs a core of its own, as it would have on another machine; with every core given to
 * compute, the client's CPU time would be charged to the served path.
 */
const THREADS = Number(flags.threads);
/**
 * Model workers of the node under test: 0 computes on the node's JS thread (in-thread), N ≥ 1
 * (default 1: measured ≥ 0.95 of the bare loop in every invocation) in a pool of N workers with `THREADS` intra-op threads each (the same session options as the
 * baseline, so the comparison stays per-thread fair).
 */
const WORKERS = Number(flags.workers);
if (!Number.isSafeInteger(WORKERS) || WORKERS < 0) throw new RangeError("--workers must be ≥ 0");
const NODE_MODE = WORKERS === 0
  ? "in-thread"
  : `worker mode, ${WORKERS} worker(s) × ${THREADS} intra-op thread(s)`;
/** A prompt of ordinary length; its tokens are the prompt pass both sides pay for. */
const PROMPT = "The history of the decentralized network began with a single node, and";
/** How often the RSS sampler looks during the concurrent run. */
const RSS_SAMPLE_MS = 10;

const cacheDir = join(Deno.env.get("TMPDIR") ?? "/tmp", "veriflow-bench-models");
const buildStart = performance.now();
const dir = await ensureBuiltinModel(cacheDir, SIZE, 0);
if (!flags.node) {
  console.log(
    `model: built-in ${SIZE} in ${dir} (${(performance.now() - buildStart).toFixed(0)} ms); ` +
      `node under test: ${NODE_MODE}`,
  );
}

const model = await TextModel.load(dir, { intraOpThreads: THREADS });
const promptIds = model.tokenizer.encode(PROMPT);

// --- the node under test (child process mode) ---------------------------------------------

if (flags.node) {
  let nodeModel: GenerativeModel = model;
  if (WORKERS > 0) {
    // As a node configured for worker mode loads it: through the registry.
    const registry = new ModelRegistry({
      worker: true,
      workerCount: WORKERS,
      intraOpThreads: THREADS,
    });
    const { cid } = await registry.register(dir);
    nodeModel = await registry.getText(cid);
    await model.dispose();
  }
  const models: ModelSource & { list(): GenerativeModel["info"][] } = {
    get: (cid) => Promise.resolve(cid === nodeModel.info.cid ? nodeModel : undefined),
    list: () => [nodeModel.info],
  };
  const system = new ActorSystem({ name: "bench" });
  const inference = await system.spawn<InferenceMessage>({
    name: "node/inference",
    factory: () => new InferenceActor({ models, concurrency: 4, queueLimit: 64 }),
  });
  // As the node does: only an in-thread model needs the edge to yield between tokens.
  const app = createApp({
    inference: new LocalInferencePort({ inference, models }),
    computesOnEventLoop: WORKERS === 0,
  });
  let peak = Deno.memoryUsage().rss;
  setInterval(() => {
    peak = Math.max(peak, Deno.memoryUsage().rss);
  }, RSS_SAMPLE_MS);
  // Read-and-reset, so each concurrent run reports its own peak.
  app.get("/bench/rss", (c) => {
    const reported = Math.max(peak, Deno.memoryUsage().rss);
    peak = Deno.memoryUsage().rss;
    return c.json({ peak: reported });
  });
  const server = serve({ app, port: 0 });
  console.log(`LISTENING ${server.url}`);
  await server.finished;
  Deno.exit(0);
}

// --- the baseline: a bare greedy loop on an onnxruntime session --------------------------------

const session = await ort.InferenceSession.create(await Deno.readFile(join(dir, "model.onnx")), {
  graphOptimizationLevel: "all",
  executionProviders: ["cpu"],
  intraOpNumThreads: THREADS,
});
const { numLayers, numKeyValueHeads, headDim, vocabSize } = model.info;

interface RunResult {
  tokensPerS: number;
  ttftMs: number;
  /** Served runs: the node's own TTFT (submission to first token), without the socket. */
  serverTtftMs?: number;
  tokens: number[];
}

async function bareGeneration(): Promise<RunResult> {
  const start = performance.now();
  let feeds: Record<string, ort.Tensor> = {};
  for (let l = 0; l < numLayers; l++) {
    for (const kv of ["key", "value"]) {
      feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [
        1,
        numKeyValueHeads,
        0,
        headDim,
      ]);
    }
  }
  let input = promptIds;
  let past = 0;
  const tokens: number[] = [];
  let firstAt = 0;
  while (tokens.length < TOKENS) {
    const n = input.length;
    feeds.input_ids = new ort.Tensor("int64", BigInt64Array.from(input, BigInt), [1, n]);
    feeds.attention_mask = new ort.Tensor("int64", new BigInt64Array(past + n).fill(1n), [
      1,
      past + n,
    ]);
    const positions = new BigInt64Array(n);
    for (let i = 0; i < n; i++) positions[i] = BigInt(past + i);
    feeds.position_ids = new ort.Tensor("int64", positions, [1, n]);
    const out = await session.run(feeds);
    const logits = out.logits.data as Float32Array;
    let best = (n - 1) * vocabSize;
    for (let i = best + 1; i < n * vocabSize; i++) if (logits[i] > logits[best]) best = i;
    const token = best - (n - 1) * vocabSize;
    tokens.push(token);
    if (tokens.length === 1) firstAt = performance.now();
    const next: Record<string, ort.Tensor> = {};
    for (let l = 0; l < numLayers; l++) {
      for (const kv of ["key", "value"]) {
        next[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`];
      }
    }
    feeds = next;
    past += n;
    input = [token];
  }
  const end = performance.now();
  return { tokensPerS: tokens.length / ((end - start) / 1000), ttftMs: firstAt - start, tokens };
}

// --- the served path: a node in a child process; InferenceActor → app → WebSocket → client ---

const child = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    new URL(import.meta.url).pathname,
    "--node",
    "--size",
    SIZE,
    "--threads",
    String(THREADS),
    "--workers",
    String(WORKERS),
  ],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
let banner = "";
while (!/LISTENING \S+\n/.test(banner)) {
  const { value, done } = await lines.read();
  if (done) throw new Error("the node process exited before listening");
  banner += value;
}
const nodeUrl = banner.match(/LISTENING (\S+)\n/)![1];
const wsUrl = nodeUrl.replace("http:", "ws:");

async function servedGeneration(client: StreamClient, maxTokens = TOKENS): Promise<RunResult> {
  const start = performance.now();
  const job = client.infer({ prompt: PROMPT, max_tokens: maxTokens, temperature: 0 });
  const tokens: number[] = [];
  let firstAt = 0;
  for await (const token of job.tokens) {
    if (tokens.length === 0) firstAt = performance.now();
    tokens.push(token.token_id);
  }
  const done = await job.done;
  const end = performance.now();
  return {
    tokensPerS: tokens.length / ((end - start) / 1000),
    ttftMs: firstAt - start,
    serverTtftMs: done.timings.ttft_ms ?? NaN,
    tokens,
  };
}

// Warm-up: first runs pay for allocator growth and kernel selection on both paths.
const client = await StreamClient.connect(wsUrl);
await bareGeneration();
await servedGeneration(client);

// The InferenceActor alone, in this process (no socket, no second process): isolates what the
// actor layer adds from what the transport and the shared CPU add.
const localModels: ModelSource = {
  get: (cid) => Promise.resolve(cid === model.info.cid ? model : undefined),
};
const localSystem = new ActorSystem({ name: "bench-local" });
const localInference = await localSystem.spawn<InferenceMessage>({
  name: "local/inference",
  factory: () => new InferenceActor({ models: localModels }),
});
let localNonce = 0;

async function actorGeneration(): Promise<RunResult> {
  const start = performance.now();
  const handle = await submitJob(localInference, {
    kind: "text",
    model: model.info.cid,
    prompt: PROMPT,
    params: { maxTokens: TOKENS, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
    nonce: `bench-${++localNonce}`,
  });
  const tokens: number[] = [];
  let firstAt = 0;
  for await (const chunk of handle.tokens) {
    if (tokens.length === 0) firstAt = performance.now();
    tokens.push(chunk.tokenId);
  }
  const end = performance.now();
  return { tokensPerS: tokens.length / ((end - start) / 1000), ttftMs: firstAt - start, tokens };
}

const bare: RunResult[] = [];
const served: RunResult[] = [];
const local: RunResult[] = [];
for (let i = 0; i < RUNS; i++) {
  bare.push(await bareGeneration());
  local.push(await actorGeneration());
  served.push(await servedGeneration(client));
}
await localSystem.shutdown();
const sameTokens = bare.every((b, i) =>
  b.tokens.join() === served[i].tokens.join() && b.tokens.join() === local[i].tokens.join()
);
client.close();

// --- 32 concurrent streaming clients ------------------------------------------------------------

interface ConcurrentResult {
  tokensPerS: number;
  peakRssMiB: number;
}

async function concurrentRun(): Promise<ConcurrentResult> {
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, () => StreamClient.connect(wsUrl)),
  );
  await fetch(`${nodeUrl}/bench/rss`).then((r) => r.body?.cancel()); // reset the node's peak
  const start = performance.now();
  const results = await Promise.all(clients.map((c) => servedGeneration(c, CLIENT_TOKENS)));
  const seconds = (performance.now() - start) / 1000;
  const { peak } = await (await fetch(`${nodeUrl}/bench/rss`)).json();
  for (const c of clients) c.close();
  const total = results.reduce((sum, r) => sum + r.tokens.length, 0);
  return { tokensPerS: total / seconds, peakRssMiB: peak / (1 << 20) };
}

const concurrent: ConcurrentResult[] = [];
const concurrentRuns = Math.max(1, Math.ceil(RUNS / 2));
for (let i = 0; i < concurrentRuns; i++) concurrent.push(await concurrentRun());

child.kill();
await child.status;

// --- report -------------------------------------------------------------------------------------

const bareTps = median(bare.map((r) => r.tokensPerS));
const servedTps = median(served.map((r) => r.tokensPerS));
const bareTtft = median(bare.map((r) => r.ttftMs));
const servedTtft = median(served.map((r) => r.ttftMs));
const ratio = servedTps / bareTps;
const addedTtft = servedTtft - bareTtft;
const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
const signed = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(2)}`;

console.log(
  `\n${SIZE} model, prompt ${promptIds.length} tokens, ${TOKENS} new tokens, greedy, ` +
    `${THREADS} intra-op thread(s); node: ${NODE_MODE}; ` +
    `median of ${RUNS} runs (concurrent: ${concurrentRuns}); identical tokens: ${sameTokens}\n`,
);
console.table([
  {
    measure: "tokens/s",
    "bare ort loop": bareTps.toFixed(1),
    "actor → WebSocket": servedTps.toFixed(1),
    "ratio / delta": ratio.toFixed(3),
    goal: "ratio ≥ 0.95",
    status: verdict(ratio >= 0.95),
  },
  {
    measure: "time to first token (ms)",
    "bare ort loop": bareTtft.toFixed(2),
    "actor → WebSocket": servedTtft.toFixed(2),
    "ratio / delta": `${signed(addedTtft)} ms`,
    goal: "≤ 5 ms added",
    status: verdict(addedTtft <= 5),
  },
  {
    measure: "  of which inside the node process (submission → token)",
    "bare ort loop": "-",
    "actor → WebSocket": median(served.map((r) => r.serverTtftMs!)).toFixed(2),
    "ratio / delta": "-",
    goal: "(information)",
    status: "-",
  },
  {
    measure: "InferenceActor in-process (no socket): tokens/s",
    "bare ort loop": bareTps.toFixed(1),
    "actor → WebSocket": median(local.map((r) => r.tokensPerS)).toFixed(1),
    "ratio / delta": (median(local.map((r) => r.tokensPerS)) / bareTps).toFixed(3),
    goal: "(information)",
    status: "-",
  },
  {
    measure: "InferenceActor in-process (no socket): TTFT (ms)",
    "bare ort loop": bareTtft.toFixed(2),
    "actor → WebSocket": median(local.map((r) => r.ttftMs)).toFixed(2),
    "ratio / delta": `${signed(median(local.map((r) => r.ttftMs)) - bareTtft)} ms`,
    goal: "(information)",
    status: "-",
  },
  {
    measure: `${CLIENTS} concurrent clients × ${CLIENT_TOKENS} tokens: aggregate tokens/s`,
    "bare ort loop": "-",
    "actor → WebSocket": median(concurrent.map((r) => r.tokensPerS)).toFixed(1),
    "ratio / delta": `${
      (median(concurrent.map((r) => r.tokensPerS)) / bareTps).toFixed(2)
    }× single`,
    goal: "(information)",
    status: "-",
  },
  {
    measure: `${CLIENTS} concurrent clients: node peak RSS (MiB)`,
    "bare ort loop": "-",
    "actor → WebSocket": median(concurrent.map((r) => r.peakRssMiB)).toFixed(0),
    "ratio / delta": "-",
    goal: "(information)",
    status: "-",
  },
]);
