/**
 * Batch invariance under random traffic (`inference/_batch_decoder.ts`, `_batch_cache.ts`):
 * sequences that join at random moments, straggle, feed several tokens mid-generation (as a
 * resumed job does), run ahead, and close at a step boundary or mid-step, with random batch
 * sizes and prefill budgets, each get the tokens and fingerprints they get alone, in both cache
 * conventions. The interleaving varies from run to run; the outcome must not.
 */
import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { BatchedDecoder } from "../../inference/_batch_decoder.ts";
import { DecoderSession, type SampledStep } from "../../inference/_decoder_session.ts";
import { createSession } from "../../inference/_session.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import type { SamplingParams } from "../../inference/sampler.ts";

const root = await Deno.makeTempDir({ prefix: "veriflow-review-s47-" });
Deno.test.afterAll(() => Deno.remove(root, { recursive: true }));
const SHAPE = { numLayers: 2, numKeyValueHeads: 4, headDim: 16, vocabSize: 260 };

async function decoderOf(kvCache: "fixed" | "concat"): Promise<DecoderSession> {
  const { dir } = await buildGptModel({
    size: "tiny",
    seed: 0,
    outDir: `${root}/${kvCache}`,
    kvCache,
  });
  const { session } = await createSession(await Deno.readFile(`${dir}/model.onnx`), {
    intraOpThreads: 1,
  });
  return new DecoderSession(session, SHAPE);
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Plan {
  prompt: number[];
  params: SamplingParams;
  steps: number;
  /** Extra forced tokens fed after the sampled one at step t (a resumed-style feed). */
  extra: Map<number, number[]>;
  ahead: boolean;
  waits: number[];
  closeAt: number; // -1: never
}

type Stepper = {
  step(
    t: readonly number[],
    s: { params: SamplingParams; position: number },
    k?: number,
    a?: number | boolean,
  ): Promise<SampledStep>;
};

async function run(
  seq: Stepper,
  plan: Plan,
  real: boolean,
  close?: () => void,
): Promise<SampledStep[]> {
  const out: SampledStep[] = [];
  let feed = plan.prompt;
  for (let t = 0; t < plan.steps; t++) {
    if (real && t === plan.closeAt) {
      close?.();
      return out;
    }
    let ahead = 0;
    while (plan.ahead && t + ahead + 1 < plan.steps && !plan.extra.has(t + ahead + 1)) ahead++;
    const step = await seq.step(feed, { params: plan.params, position: t }, 0, real ? ahead : 0);
    out.push(step);
    feed = [step.tokenId, ...(plan.extra.get(t + 1) ?? [])];
    if (real) {
      for (let w = 0; w < plan.waits[t]; w++) {
        if (w % 2) await new Promise((r) => setImmediate(r));
        else await new Promise((r) => setTimeout(r, 0));
      }
    }
  }
  return out;
}

function plans(seed: number, n: number): Plan[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const len = r() < 0.3 ? 60 + Math.floor(r() * 100) : 1 + Math.floor(r() * 20);
    const steps = 3 + Math.floor(r() * 30);
    const extra = new Map<number, number[]>();
    let total = len + steps;
    for (let t = 1; t < steps; t++) {
      const n = 1 + Math.floor(r() * (r() < 0.3 ? 80 : 4));
      if (r() < 0.1 && total + n < 250) {
        extra.set(t, Array.from({ length: n }, () => 32 + Math.floor(r() * 90)));
        total += n;
      }
    }
    return {
      prompt: Array.from({ length: len }, () => 32 + Math.floor(r() * 90)),
      params: {
        temperature: i % 3 === 0 ? 0 : 0.9,
        topK: i % 4 === 1 ? 20 : 0,
        topP: i % 5 === 2 ? 0.9 : 1,
        seed: 7 + i,
      },
      steps,
      extra,
      ahead: r() < 0.5,
      waits: Array.from({ length: steps }, () => (r() < 0.2 ? Math.floor(r() * 6) : 0)),
      closeAt: r() < 0.15 ? Math.floor(r() * steps) : -1,
    };
  });
}

for (const kv of ["fixed", "concat"] as const) {
  Deno.test(`random joins, leaves, closes, multi-token steps and run-ahead change no sequence's tokens or fingerprints (${kv} cache)`, async () => {
    const decoder = await decoderOf(kv);
    try {
      for (let seed = 1; seed <= 8; seed++) {
        const ps = plans(seed, 12);
        const expected: SampledStep[][] = [];
        for (const p of ps) {
          const s = decoder.sequence();
          expected.push(await run(s, p, false));
          s.close();
        }
        const r = rng(seed * 31);
        const batched = new BatchedDecoder(decoder, {
          maxBatch: 1 + Math.floor(r() * 9),
          ...(r() < 0.5 ? { prefillTokensPerTick: 1 + Math.floor(r() * 40) } : {}),
          ...(r() < 0.5 ? { prefillGroupTokens: 1 + Math.floor(r() * 300) } : {}),
        });
        const got = await Promise.all(ps.map(async (p, i) => {
          for (let k = 0; k < i * 2 * r(); k++) await new Promise((res) => setTimeout(res, 0));
          const s = batched.sequence();
          if (p.closeAt >= 0 && r() < 0.5) {
            // Close at a random moment instead, possibly mid-step.
            const out: SampledStep[] = [];
            const timer = setTimeout(() => s.close(), Math.floor(r() * 30));
            try {
              await run(
                {
                  step: async (...a) => {
                    const x = await s.step(...a);
                    out.push(x);
                    return x;
                  },
                },
                { ...p, closeAt: -1 },
                true,
              );
            } catch (e) {
              if (!/closed/.test(String(e))) throw e;
            }
            clearTimeout(timer);
            return out;
          }
          return await run(s, p, true, () => s.close());
        }));
        for (let i = 0; i < ps.length; i++) {
          const e = expected[i].slice(0, got[i].length);
          assert.deepEqual(
            got[i].map((s) => s.tokenId),
            e.map((s) => s.tokenId),
            `seed ${seed} seq ${i}`,
          );
          for (let t = 0; t < e.length; t++) {
            const d = Math.abs(got[i][t].fingerprint.logProb - e[t].fingerprint.logProb) +
              Math.abs(got[i][t].fingerprint.projection - e[t].fingerprint.projection);
            assert.ok(d < 1e-4, `seed ${seed} seq ${i} pos ${t}: ${d}`);
          }
        }
        batched.dispose();
      }
    } finally {
      await decoder.session.release();
    }
  });
}
