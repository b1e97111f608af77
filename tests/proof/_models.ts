/**
 * Test fixtures of the proof suite: the honest tiny model and the cheats' models (another seed,
 * 1 %-perturbed weights, a smaller model), built once per test process into a temp directory,
 * plus a logits perturbation at fp16 rounding scale.
 */
import onnxProto from "onnx-proto";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import { cidOf } from "../../protocols/cid.ts";

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

/** Copy a model directory with every float weight multiplied by (1 + rel·N(0,1)). */
export async function perturbModel(src: string, dst: string, rel: number, seed = 1) {
  await Deno.mkdir(dst, { recursive: true });
  const model = onnx.ModelProto.decode(await Deno.readFile(`${src}/model.onnx`));
  const rand = gaussian(seed);
  for (const init of model.graph!.initializer!) {
    if (init.dataType !== FLOAT || !init.rawData || init.rawData.length === 0) continue;
    const raw = new Uint8Array(init.rawData);
    const f = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    for (let i = 0; i < f.length; i++) f[i] *= 1 + rel * rand();
    init.rawData = raw;
  }
  const bytes = onnx.ModelProto.encode(model).finish();
  await Deno.writeFile(`${dst}/model.onnx`, bytes);
  for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${src}/${f}`, `${dst}/${f}`).catch(() => {});
  }
  return cidOf(bytes);
}

/** Round every logit to the nearest fp16 value and add up to one more fp16 ulp of noise. */
export function fp16Noise(logits: Float32Array, seed: number): Float32Array {
  const rand = gaussian(seed);
  const out = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    const ulp = 2 ** (Math.floor(Math.log2(Math.max(Math.abs(v), 2 ** -14))) - 10);
    out[i] = Math.round(v / ulp) * ulp + ulp * Math.max(-1, Math.min(1, rand()));
  }
  return out;
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
    const honest = await buildGptModel({ size: "tiny", seed: 0, outDir: `${dir}/honest` });
    await buildGptModel({ size: "tiny", seed: 1, outDir: `${dir}/other` });
    await buildGptModel({ size: "tiny", seed: 0, numLayers: 1, outDir: `${dir}/smaller` });
    await perturbModel(honest.dir, `${dir}/perturbed`, 0.01);
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

import type { TokenChunk } from "../../inference/text_model.ts";
import { sampleToken } from "../../inference/sampler.ts";
import { fingerprintOf } from "../../proof/fingerprint.ts";
import type { GenerationParams } from "../../protocols/job.ts";

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

/** A view of `model` whose forward pass adds fp16-scale noise (another GPU / kernel). */
export function noisyModel(model: TextModel, seed: number): TextModel {
  return new Proxy(model, {
    get(target, prop) {
      if (prop === "forward") {
        return async (tokens: number[]) => fp16Noise(await target.forward(tokens), seed);
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}
