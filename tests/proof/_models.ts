/**
 * Test fixtures of the proof suite: the honest tiny model and the cheats' models (another seed,
 * 1 %-perturbed weights, a smaller model), built once per source version
 * (`tests/_helpers/build_cache.ts`) and copied into a temp directory of each test process;
 * the cheaper copies of a model a worker might run instead (weights rounded to bf16/fp16,
 * quantized to int8 per tensor or per channel, relative noise, an int8 KV cache), built by
 * rewriting the ONNX file; and a view of a model whose logits come back rounded to fp16.
 * `bench/detection_bench.ts` uses the same builders.
 */
import onnxProto from "onnx-proto";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import { readTextModelFiles, textModelId } from "../../inference/model_identity.ts";
import { fp16Logits, mapModelWeights, roundToBf16, roundToFp16 } from "../../proof/_precision.ts";
import { cachedDir, cachedJson, copyDir } from "../_helpers/build_cache.ts";

const { onnx } = onnxProto;
const FLOAT = 1;

/** The loaded fixture models. */
export interface Fixture {
  dir: string;
  honest: TextModel;
  /** The honest model with another intra-op thread count (stands for another machine). */
  honestThreads: TextModel;
  otherSeed: TextModel;
  perturbed: TextModel;
  smaller: TextModel;
}

let fixture: Promise<Fixture> | undefined;

/** A deterministic N(0,1) stream (Box–Muller over a 32-bit LCG). */
export function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  return () => Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
}

/** Files of a model directory besides `model.onnx`. */
const MODEL_SIDE_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json"];

/** Write `bytes` as the model of a copy of `src` at `dst`; returns the copy's model id. */
async function writeCopy(src: string, dst: string, bytes: Uint8Array): Promise<string> {
  await Deno.mkdir(dst, { recursive: true });
  await Deno.writeFile(`${dst}/model.onnx`, bytes);
  for (const f of MODEL_SIDE_FILES) {
    await Deno.copyFile(`${src}/${f}`, `${dst}/${f}`).catch(() => {});
  }
  return textModelId(await readTextModelFiles(dst));
}

/** Copy a model directory with every float weight multiplied by (1 + rel·N(0,1)). */
export async function perturbModel(src: string, dst: string, rel: number, seed = 1) {
  const rand = gaussian(seed);
  const bytes = mapModelWeights(
    await Deno.readFile(`${src}/model.onnx`),
    (w) => w * (1 + rel * rand()),
  );
  return await writeCopy(src, dst, bytes);
}

/** The cheaper copies of a model a worker might run in place of the one it is paid for. */
export type ModelVariant =
  | "bf16"
  | "fp16"
  | "int8-tensor"
  | "int8-channel"
  | "kv-int8"
  | "logits-fp16"
  | { noise: number; seed?: number };

/** A short name of a variant, for messages and tables. */
export function variantName(v: ModelVariant): string {
  return typeof v === "string" ? v : `noise ${(v.noise * 100).toFixed(1)} %`;
}

/**
 * Build a variant of the model in `src` at `dst` (see {@link ModelVariant}); returns its id.
 *
 * - `bf16` / `fp16`: every weight rounded to that format (stored as float32 again);
 * - `int8-tensor` / `int8-channel`: every matrix (MatMul weights, embedding tables) quantized
 *   symmetrically to int8 and back, with one scale per tensor or per output channel (per
 *   column of a `[in, out]` MatMul weight, per row of an embedding table); vectors stay float;
 * - `noise`: every weight times (1 + noise·N(0,1));
 * - `kv-int8`: the keys and values each step adds to the cache pass through int8 and back
 *   (one scale per token and head, the largest |x| / 127), inserted into the graph before the
 *   cache concatenation — so generation and a teacher-forced pass see the same quantized cache;
 * - `logits-fp16`: not a cheat — the same model whose runtime returns its logits in fp16 (a
 *   Cast to float16 and back on the output), an honest execution variant.
 */
export async function buildVariant(src: string, dst: string, v: ModelVariant): Promise<string> {
  const bytes = await Deno.readFile(`${src}/model.onnx`);
  if (typeof v === "object") return await perturbModel(src, dst, v.noise, v.seed ?? 1);
  if (v === "bf16") return await writeCopy(src, dst, mapModelWeights(bytes, roundToBf16));
  if (v === "fp16") return await writeCopy(src, dst, mapModelWeights(bytes, roundToFp16));
  if (v === "kv-int8") return await writeCopy(src, dst, kvInt8Graph(bytes));
  if (v === "logits-fp16") return await writeCopy(src, dst, fp16OutputGraph(bytes));
  return await writeCopy(src, dst, int8Weights(bytes, v === "int8-channel"));
}

/** Symmetric int8 quantization (and back) of every 2-D float initializer. */
function int8Weights(bytes: Uint8Array, perChannel: boolean): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  for (const init of model.graph!.initializer!) {
    const dims = (init.dims ?? []).map(Number);
    if (init.dataType !== FLOAT || dims.length !== 2 || !init.rawData?.length) continue;
    const raw = new Uint8Array(init.rawData);
    const f = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const [rows, cols] = dims;
    // Embedding tables are read by row (one token); MatMul weights [in, out] by output column.
    const byRow = /\.(wte|wpe)\./.test(init.name ?? "");
    const group = (i: number) => !perChannel ? 0 : byRow ? Math.floor(i / cols) : i % cols;
    const max = new Float64Array(perChannel ? (byRow ? rows : cols) : 1);
    for (let i = 0; i < f.length; i++) max[group(i)] = Math.max(max[group(i)], Math.abs(f[i]));
    for (let i = 0; i < f.length; i++) {
      const scale = max[group(i)] / 127 || 1;
      f[i] = Math.round(f[i] / scale) * scale;
    }
    init.rawData = raw;
  }
  return onnx.ModelProto.encode(model).finish();
}

/** The graph with new keys and values fake-quantized to int8 before they enter the cache. */
function kvInt8Graph(bytes: Uint8Array): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const g = model.graph!;
  const scalar = (name: string, v: number) =>
    onnx.TensorProto.create({
      name,
      dataType: FLOAT,
      dims: [],
      rawData: new Uint8Array(new Float32Array([v]).buffer),
    });
  g.initializer!.push(scalar("kv_int8_max", 127), scalar("kv_int8_tiny", 1e-30));
  const attr = (name: string, fields: onnxProto.onnx.IAttributeProto) =>
    onnx.AttributeProto.create({ name, ...fields });
  const nodes: onnxProto.onnx.INodeProto[] = [];
  let n = 0;
  for (const node of g.node!) {
    // Where new keys and values enter the cache: a past/present graph's Concat (its second
    // input), a fixed-cache graph's Identity naming a `kv_new` output (its only input).
    const slot = node.opType === "Concat" && node.input![0].startsWith("past_key_values.")
      ? 1
      : node.opType === "Identity" && node.output![0].startsWith("kv_new.")
      ? 0
      : -1;
    if (slot >= 0) {
      const x = node.input![slot];
      const p = `kv_int8_${n++}`;
      const op = (
        opType: string,
        input: string[],
        out: string,
        attribute: onnxProto.onnx.IAttributeProto[] = [],
      ) => nodes.push(onnx.NodeProto.create({ opType, input, output: [out], attribute }));
      op("Abs", [x], `${p}_abs`);
      op("ReduceMax", [`${p}_abs`], `${p}_max`, [
        attr("axes", { type: onnx.AttributeProto.AttributeType.INTS, ints: [-1] }),
        attr("keepdims", { type: onnx.AttributeProto.AttributeType.INT, i: 1 }),
      ]);
      op("Div", [`${p}_max`, "kv_int8_max"], `${p}_s0`);
      op("Max", [`${p}_s0`, "kv_int8_tiny"], `${p}_scale`);
      op("Div", [x, `${p}_scale`], `${p}_d`);
      op("Round", [`${p}_d`], `${p}_r`);
      op("Mul", [`${p}_r`, `${p}_scale`], `${p}_q`);
      node.input![slot] = `${p}_q`;
    }
    nodes.push(node);
  }
  // A graph with no such node would make this "cheat" the honest model: refuse, do not pass.
  if (n === 0) throw new Error("kv-int8: no node where keys and values enter the cache");
  g.node = nodes;
  return onnx.ModelProto.encode(model).finish();
}

/** The graph with its `logits` output cast to float16 and back. */
function fp16OutputGraph(bytes: Uint8Array): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const g = model.graph!;
  const producer = g.node!.find((n) => n.output!.includes("logits"))!;
  producer.output = producer.output!.map((o) => o === "logits" ? "logits_fp32" : o);
  const cast = (input: string, output: string, to: number) =>
    onnx.NodeProto.create({
      opType: "Cast",
      input: [input],
      output: [output],
      attribute: [
        onnx.AttributeProto.create({
          name: "to",
          type: onnx.AttributeProto.AttributeType.INT,
          i: to,
        }),
      ],
    });
  g.node!.push(
    cast("logits_fp32", "logits_fp16", onnx.TensorProto.DataType.FLOAT16),
    cast("logits_fp16", "logits", FLOAT),
  );
  return onnx.ModelProto.encode(model).finish();
}

/** A view of `model` whose forward pass returns logits rounded to fp16 (another runtime's output). */
export function fp16LogitsModel(model: TextModel): TextModel {
  return new Proxy(model, {
    get(target, prop) {
      if (prop === "forward") {
        return async (tokens: number[]) => fp16Logits(await target.forward(tokens));
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** The fixture's model directories under `dir`: honest, other (seed), smaller, perturbed. */
async function buildFixtureModels(dir: string): Promise<void> {
  const honest = await buildGptModel({ size: "tiny", seed: 0, outDir: `${dir}/honest` });
  await buildGptModel({ size: "tiny", seed: 1, outDir: `${dir}/other` });
  await buildGptModel({ size: "tiny", seed: 0, numLayers: 1, outDir: `${dir}/smaller` });
  await perturbModel(honest.dir, `${dir}/perturbed`, 0.01);
}

/** The shared fixture (built on first use). */
export function loadFixture(): Promise<Fixture> {
  fixture ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-proof-" });
    // Built models are a few MB; remove them when the test process exits.
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // already gone
      }
    });
    // Built once per source version (the same bytes every time), copied here: tests build
    // variants next to them and must not write into the shared copy.
    // This file is in the key: its perturbModel builds one of them.
    const key = { v: 1, builder: await Deno.readTextFile(new URL(import.meta.url)) };
    await copyDir(await cachedDir("proof-fixture-models", key, buildFixtureModels), dir);
    return {
      dir,
      honest: await TextModel.load(`${dir}/honest`, { intraOpThreads: 1 }),
      honestThreads: await TextModel.load(`${dir}/honest`, { intraOpThreads: 2 }),
      otherSeed: await TextModel.load(`${dir}/other`, { intraOpThreads: 1 }),
      perturbed: await TextModel.load(`${dir}/perturbed`, { intraOpThreads: 1 }),
      smaller: await TextModel.load(`${dir}/smaller`, { intraOpThreads: 1 }),
    };
  })();
  return fixture;
}

const copies = new Map<string, Promise<TextModel>>();

/**
 * The fixture's honest model as a cheaper copy `v` (see {@link ModelVariant}), one intra-op
 * thread: what a cheating worker runs. Built once per test process.
 */
export function cheaperCopy(v: ModelVariant): Promise<TextModel> {
  // Keyed on the whole variant, not its display name: the name rounds the noise to 0.1 % and
  // leaves out the seed, so two levels shared one copy and a row measured the wrong model
  // (review s74).
  const key = variantKey(v);
  let model = copies.get(key);
  if (!model) {
    model = (async () => {
      const f = await loadFixture();
      const dir = `${f.dir}/copy-${key.replace(/\W+/g, "_")}`;
      await buildVariant(`${f.dir}/honest`, dir, v);
      return await TextModel.load(dir, { intraOpThreads: 1 });
    })();
    copies.set(key, model);
  }
  return model;
}

/** A key that tells every variant apart: the noise in full and its seed. */
export function variantKey(v: ModelVariant): string {
  return typeof v === "string" ? v : `noise-${v.noise}-seed-${v.seed ?? 1}`;
}

/** The fixture's honest model calibrated, with workers under each honest execution variant. */
export interface CalibratedFixture {
  /** The profile of the honest tiny model (classes fp32 and bf16). */
  profile: CalibrationProfile;
  /** Lookup for validation options: the profile for the honest model's CID. */
  calibration: CalibrationLookup;
  /** The validator: the honest model as the calibration's reference runs it (2 threads). */
  validator: TextModel;
  /** Honest workers: 1 and 2 threads, graph optimization off, logits returned in fp16. */
  workers: { name: string; model: TextModel }[];
  /** Directory of the honest model (to build variants of it). */
  honestDir: string;
}

let calibrated: Promise<CalibratedFixture> | undefined;

/**
 * The shared fixture's honest model, calibrated on this machine (a small calibration: 8
 * generations per variant; built on first use).
 */
export function loadCalibratedFixture(): Promise<CalibratedFixture> {
  calibrated ??= (async () => {
    const f = await loadFixture();
    const honestDir = `${f.dir}/honest`;
    // Measured once per machine and source version (seconds of generations), shared by the
    // test files that use it; the honest model is the same bytes every time.
    const options = {
      jobs: 8,
      precisions: ["fp32", "bf16"] as JobPrecision[],
      reference: { threads: 2 },
    };
    const profile = await cachedJson(
      "proof-fixture-calibration",
      { v: 1, model: textModelId(await readTextModelFiles(honestDir)), options },
      () => calibrateModel(honestDir, options),
    );
    await buildVariant(honestDir, `${f.dir}/logits-fp16`, "logits-fp16");
    return {
      profile,
      calibration: (cid) => (cid === profile.model ? profile : undefined),
      validator: f.honestThreads,
      workers: [
        { name: "1 thread", model: f.honest },
        { name: "2 threads", model: f.honestThreads },
        {
          name: "graph optimization off",
          model: await TextModel.load(honestDir, {
            intraOpThreads: 1,
            graphOptimizationLevel: "disabled",
          }),
        },
        {
          name: "logits in fp16",
          model: await TextModel.load(`${f.dir}/logits-fp16`, { intraOpThreads: 2 }),
        },
      ],
      honestDir,
    };
  })();
  return calibrated;
}

import type { TokenChunk } from "../../inference/text_model.ts";
import { sampleToken } from "../../inference/sampler.ts";
import { fingerprintOf } from "../../proof/fingerprint.ts";
import type { GenerationParams, JobPrecision } from "../../protocols/job.ts";
import { calibrateModel } from "../../proof/calibrate_model.ts";
import type { CalibrationLookup, CalibrationProfile } from "../../proof/calibration.ts";

/**
 * A token stream produced by teacher-forced passes, with the model chosen per position and
 * optional logits/seed tampering: how the cheats of the adversarial suite "generate". Like
 * `TextModel.generate`, each chunk carries the fingerprint of the row its token was sampled from,
 * not the row.
 */
export async function* manualStream(
  modelAt: (t: number) => TextModel,
  promptIds: readonly number[],
  params: GenerationParams,
  options: { seed?: number; stopAfter?: number } = {},
): AsyncGenerator<TokenChunk> {
  const first = modelAt(0);
  const eos = first.info.eosTokenId;
  const decoder = first.tokenizer.streamDecoder();
  const seq = [...promptIds];
  const V = first.info.vocabSize;
  const limit = Math.min(params.maxTokens, options.stopAfter ?? Infinity);
  for (let t = 0; t < limit; t++) {
    const logits = await modelAt(t).forward(seq);
    const row = logits.slice((seq.length - 1) * V, seq.length * V);
    const { token } = sampleToken(row, { ...params, seed: options.seed ?? params.seed }, t);
    seq.push(token);
    const last = token === eos || t + 1 >= limit ||
      seq.length >= first.info.contextLength;
    const text = (token === eos ? "" : decoder.push(token)) + (last ? decoder.flush() : "");
    yield { index: t, tokenId: token, text, fingerprint: fingerprintOf(row, token), vocabSize: V };
    if (token === eos || seq.length >= first.info.contextLength) return;
  }
}
