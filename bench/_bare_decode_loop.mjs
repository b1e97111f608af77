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

// The built-in model's KV cache is the caller's: per layer a key and a value buffer of `slots`
// positions per head ([1, heads, slots, headDim]); the graph reads the first `length` of them
// (attention_mask) and returns only the new positions (kv_new.N.*), copied in here. `slots` grows
// when full as the node's cache does (and the Deno loop of bench/inference_bench.ts): a power of
// two (at least 16) up to 64, then the next multiple of 64 (a step reads every slot it is given),
// in buffers with room for the next power of two, within which the heads move in place.
function cacheOf(slots, from, length) {
  const room = 2 ** Math.ceil(Math.log2(slots));
  const inPlace = from !== undefined && from.room >= slots;
  const buffers = [];
  for (let i = 0; i < 2 * layers; i++) {
    const buffer = inPlace ? from.buffers[i] : new Float32Array(heads * room * headDim);
    if (from) {
      // Last head first: heads only move towards the end, so none is overwritten before it moves.
      for (let h = heads - 1; h >= 0; h--) {
        const at = h * from.slots * headDim;
        if (inPlace) buffer.copyWithin(h * slots * headDim, at, at + length * headDim);
        else buffer.set(from.buffers[i].subarray(at, at + length * headDim), h * slots * headDim);
      }
    }
    buffers.push(buffer);
  }
  return { slots, room: inPlace ? from.room : room, buffers };
}

async function generate() {
  const start = performance.now();
  let cache = cacheOf(16);
  let input = promptIds;
  let length = 0;
  const tokens = [];
  let firstAt = 0;
  while (tokens.length < newTokens) {
    const n = input.length;
    const positions = new BigInt64Array(n);
    for (let i = 0; i < n; i++) positions[i] = BigInt(length + i);
    const mask = new BigInt64Array(cache.slots + n);
    mask.fill(1n, 0, length);
    mask.fill(1n, cache.slots);
    const feeds = {
      input_ids: new ort.Tensor("int64", BigInt64Array.from(input, BigInt), [1, n]),
      attention_mask: new ort.Tensor("int64", mask, [1, cache.slots + n]),
      position_ids: new ort.Tensor("int64", positions, [1, n]),
    };
    for (let l = 0; l < layers; l++) {
      ["key", "value"].forEach((kv, k) => {
        const used = cache.buffers[2 * l + k].subarray(0, heads * cache.slots * headDim);
        feeds[`kv_cache.${l}.${kv}`] = new ort.Tensor("float32", used, [
          1,
          heads,
          cache.slots,
          headDim,
        ]);
      });
    }
    const out = await session.run(feeds);
    const logits = out.logits.data;
    let best = (n - 1) * vocab;
    for (let i = best + 1; i < n * vocab; i++) if (logits[i] > logits[best]) best = i;
    const token = best - (n - 1) * vocab;
    tokens.push(token);
    if (tokens.length === 1) firstAt = performance.now();
    let slots = cache.slots;
    while (slots < length + n) slots = slots < 64 ? 2 * slots : slots + 64;
    if (slots !== cache.slots) cache = cacheOf(slots, cache, length);
    for (let l = 0; l < layers; l++) {
      ["key", "value"].forEach((kv, k) => {
        const fresh = out[`kv_new.${l}.${kv}`].data;
        for (let h = 0; h < heads; h++) {
          cache.buffers[2 * l + k].set(
            fresh.subarray(h * n * headDim, (h + 1) * n * headDim),
            (h * cache.slots + length) * headDim,
          );
        }
      });
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
