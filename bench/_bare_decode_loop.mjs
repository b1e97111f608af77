// The bare greedy decode loop of bench/inference_bench.ts, in plain Node.js: the same
// onnxruntime-node package and model file as the Deno loop, so the difference between the two
// rows is the runtime's binding, not the loop. Run by the bench, one process per round:
//
//   node bench/_bare_decode_loop.mjs MODEL_DIR THREADS NEW_TOKENS PROMPT_IDS(comma-separated) [DEVICE]
//
// Prints one JSON line: { tokensPerS, ttftMs, tokens } of a timed run after one warm-up run.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(join(process.cwd(), "package.json"));
const ort = require("onnxruntime-node");

const [dir, threadsArg, tokensArg, promptArg, device = "cpu"] = process.argv.slice(2);
const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
const layers = config.n_layer;
const heads = config.n_head;
const headDim = config.n_embd / heads;
const vocab = config.vocab_size;
const eos = config.eos_token_id;
const promptIds = promptArg.split(",").map(Number);
const newTokens = Number(tokensArg);

const session = await ort.InferenceSession.create(readFileSync(join(dir, "model.onnx")), {
  graphOptimizationLevel: "all",
  executionProviders: [device],
  intraOpNumThreads: Number(threadsArg),
  // As the node's sessions and the Deno loop: idle intra-op threads sleep instead of spinning.
  extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } },
});

async function generate() {
  const start = performance.now();
  let past = {};
  for (let l = 0; l < layers; l++) {
    for (const kv of ["key", "value"]) {
      past[`past_key_values.${l}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [
        1,
        heads,
        0,
        headDim,
      ]);
    }
  }
  let input = promptIds;
  let length = 0;
  const tokens = [];
  let firstAt = 0;
  while (tokens.length < newTokens) {
    const n = input.length;
    const positions = new BigInt64Array(n);
    for (let i = 0; i < n; i++) positions[i] = BigInt(length + i);
    const out = await session.run({
      ...past,
      input_ids: new ort.Tensor("int64", BigInt64Array.from(input, BigInt), [1, n]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(length + n).fill(1n), [
        1,
        length + n,
      ]),
      position_ids: new ort.Tensor("int64", positions, [1, n]),
    });
    const logits = out.logits.data;
    let best = (n - 1) * vocab;
    for (let i = best + 1; i < n * vocab; i++) if (logits[i] > logits[best]) best = i;
    const token = best - (n - 1) * vocab;
    tokens.push(token);
    if (tokens.length === 1) firstAt = performance.now();
    past = {};
    for (let l = 0; l < layers; l++) {
      for (const kv of ["key", "value"]) {
        past[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`];
      }
    }
    length += n;
    input = [token];
    if (token === eos) break;
  }
  const seconds = (performance.now() - start) / 1000;
  return { tokensPerS: tokens.length / seconds, ttftMs: firstAt - start, tokens: tokens.length };
}

await generate(); // warm-up: allocator growth and kernel selection
console.log(JSON.stringify(await generate()));
await session.release();
