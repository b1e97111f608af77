/**
 * A scripted stand-in for a text model, cheap enough for thousands of positions: each logits
 * row is a hash of (previous token, position), so a teacher-forced pass costs O(tokens × V)
 * and generation needs no model at all. `generateChunks` follows `TextModel.generate`'s rules
 * (sampler, fingerprint next to the row, EOS / stop strings / maxTokens / context window), with
 * an optional cheat that never stops.
 */
import {
  BUILTIN_EOS_TOKEN_ID,
  BUILTIN_VOCAB_SIZE,
  ByteTokenizer,
} from "../../inference/byte_tokenizer.ts";
import { sampleToken } from "../../inference/sampler.ts";
import { fingerprintOf } from "../../proof/fingerprint.ts";
import type { ProofModel } from "../../proof/_common.ts";
import type { ProverChunk } from "../../proof/prover.ts";
import type { GenerationParams } from "../../protocols/job.ts";

/** Options of {@link scriptedModel}. */
export interface ScriptedModelOptions {
  /** Applied to every row (e.g. −∞ for masked ids). */
  patch?: (row: Float32Array, position: number) => void;
  /** Context window; default 8192. */
  contextLength?: number;
}

/** A deterministic {@link ProofModel} over the built-in byte vocabulary. */
export function scriptedModel(cid: string, options: ScriptedModelOptions = {}): ProofModel & {
  rowFor(previous: number, position: number): Float32Array;
} {
  const V = BUILTIN_VOCAB_SIZE;
  const rowFor = (previous: number, position: number): Float32Array => {
    const row = new Float32Array(V);
    let h = (Math.imul(previous + 1, 2654435761) ^ Math.imul(position + 7, 40503)) >>> 0;
    for (let i = 0; i < V; i++) {
      h = Math.imul(h ^ (i + 0x9e37), 16777619) >>> 0;
      row[i] = ((h % 10000) / 10000) * 8 - 4;
    }
    options.patch?.(row, position);
    return row;
  };
  return {
    info: {
      cid,
      vocabSize: V,
      contextLength: options.contextLength ?? 8192,
      eosTokenId: BUILTIN_EOS_TOKEN_ID,
    },
    tokenizer: new ByteTokenizer(),
    rowFor,
    forward(tokens) {
      const out = new Float32Array(tokens.length * V);
      for (let p = 0; p < tokens.length; p++) out.set(rowFor(tokens[p], p), p * V);
      return Promise.resolve(out);
    },
  };
}

/**
 * The chunks an honest worker streams for `promptIds` under `params`. A cheat: `runOn` never
 * stops before `maxTokens` (it samples from the row with EOS masked instead of emitting it, and
 * ignores stop strings); `replace` swaps the sampled token of a position for another.
 */
export function generateChunks(
  model: ReturnType<typeof scriptedModel>,
  promptIds: readonly number[],
  params: GenerationParams,
  options: { runOn?: boolean; replace?: (position: number, token: number) => number } = {},
): ProverChunk[] {
  const V = model.info.vocabSize;
  const eos = model.info.eosTokenId;
  const seq = [...promptIds];
  const decoder = model.tokenizer.streamDecoder();
  const out: ProverChunk[] = [];
  let output = "";
  for (let t = 0; t < params.maxTokens; t++) {
    const row = model.rowFor(seq[seq.length - 1], seq.length - 1);
    let token = sampleToken(row, params, t).token;
    if (token === eos && options.runOn) {
      const masked = row.slice();
      masked[token] = -Infinity;
      token = sampleToken(masked, params, t).token;
    }
    token = options.replace?.(t, token) ?? token;
    seq.push(token);
    let finished = token === eos;
    let text = "";
    if (!finished) {
      text = decoder.push(token);
      output += text;
      if (!options.runOn && params.stop.some((s) => output.includes(s))) finished = true;
    }
    if (t + 1 >= params.maxTokens || seq.length >= model.info.contextLength) finished = true;
    if (finished) text += decoder.flush();
    out.push({
      index: t,
      tokenId: token,
      text,
      fingerprint: fingerprintOf(row, token),
      vocabSize: V,
    });
    if (finished) break;
  }
  return out;
}
