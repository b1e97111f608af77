/**
 * Training state: what a trainer commits to after each local step, so a validator can later
 * ask it to open any step and re-run it.
 *
 * State k = the weights and the AdamW moments m and v after k steps (state 0 = the round's
 * start weights with zero moments). The step counter is not part of the state: it is the
 * state's position in the receipt's `checkpointsRoot` (leaf k), and AdamW's bias correction
 * of step k uses t = k + 1.
 *
 * Canonical encoding (version 1), tensors in the architecture's fixed order
 * (`gptWeightShapes`): `"VFS1" ‖ u32 count ‖ per tensor: u16 nameLen ‖ name ‖ u8 rank ‖
 * u32 dims… ‖ f32 weights ‖ f32 m ‖ f32 v`, integers and floats little-endian. The state hash
 * is SHA-256 of these bytes.
 *
 * The trainer's private data is committed the same way: `shardRoot` is the Merkle root over
 * its shard's `sampleBytes`-long samples ({@link shardLeaf}: the sample's index and bytes),
 * so an opening can prove each batch sample is the committed one without the rest of the
 * shard leaving the trainer.
 *
 * @module
 */
import type { GptArchitecture } from "../inference/model_builder.ts";
import { sha256, sha256Hex, toHex } from "../protocols/hash.ts";
import { merklePath, merkleRoot, rootFromPath } from "../proof/merkle.ts";
import { type GptWeights, gptWeightShapes } from "./gpt_weights.ts";
import { sampleAt, sampleCount, type TextShard } from "./brown_corpus.ts";
import { TrainingError } from "./training_error.ts";

const MAGIC = new TextEncoder().encode("VFS1");
/** Domain byte of a checkpoint leaf: `H(0x02 ‖ u32 step ‖ stateHash)`. */
const CHECKPOINT_LEAF_DOMAIN = 0x02;
/** Domain byte of a shard-sample leaf: `H(0x03 ‖ u32 index ‖ bytes)`. */
const SHARD_LEAF_DOMAIN = 0x03;
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** Weights and AdamW moments after some number of steps. */
export interface TrainingState {
  /** The weights. */
  weights: GptWeights;
  /** First moments (same names and shapes). */
  m: GptWeights;
  /** Second moments (same names and shapes). */
  v: GptWeights;
}

/** State 0 of a round: the start weights with zero moments. */
export function startTrainingState(start: GptWeights): TrainingState {
  const zeros = () =>
    new Map(
      [...start].map(([k, w]) => [k, { shape: w.shape, data: new Float32Array(w.data.length) }]),
    );
  return { weights: start, m: zeros(), v: zeros() };
}

function f32Bytes(a: Float32Array): Uint8Array {
  if (!LITTLE_ENDIAN) throw new TrainingError("unsupported", "big-endian hosts are not supported");
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Length of {@link encodeTrainingState}'s bytes for `arch`: every state of it has this length (a
 * validator bounds a trainer's answer by it before decoding anything, `step_verify.ts`).
 */
export function trainingStateBytes(arch: GptArchitecture): number {
  let size = MAGIC.length + 4;
  for (const [name, shape] of gptWeightShapes(arch)) {
    const n = shape.reduce((a, b) => a * b, 1);
    size += 2 + new TextEncoder().encode(name).length + 1 + 4 * shape.length + 3 * 4 * n;
  }
  return size;
}

/** Canonical bytes of a state (see the module doc). Names follow `gptWeightShapes(arch)`. */
export function encodeTrainingState(arch: GptArchitecture, state: TrainingState): Uint8Array {
  const shapes = gptWeightShapes(arch);
  const names = shapes.map(([n]) => new TextEncoder().encode(n));
  const out = new Uint8Array(trainingStateBytes(arch));
  const view = new DataView(out.buffer);
  out.set(MAGIC);
  let o = MAGIC.length;
  view.setUint32(o, shapes.length, true);
  o += 4;
  shapes.forEach(([name, shape], i) => {
    view.setUint16(o, names[i].length, true);
    out.set(names[i], o + 2);
    o += 2 + names[i].length;
    out[o++] = shape.length;
    for (const d of shape) o = (view.setUint32(o, d, true), o + 4);
    const n = shape.reduce((a, b) => a * b, 1);
    for (const part of [state.weights, state.m, state.v]) {
      const t = part.get(name);
      if (!t || t.data.length !== n) {
        throw new TrainingError("weights_mismatch", `state lacks ${name}${shape}`);
      }
      out.set(f32Bytes(t.data), o);
      o += 4 * n;
    }
  });
  return out;
}

/**
 * Parse {@link encodeTrainingState}'s bytes for `arch`: names, order and shapes must be the
 * architecture's exactly. Throws `bad_state` otherwise.
 */
export function decodeTrainingState(arch: GptArchitecture, bytes: Uint8Array): TrainingState {
  const bad = (why: string) => new TrainingError("bad_state", `malformed training state: ${why}`);
  if (!LITTLE_ENDIAN) throw new TrainingError("unsupported", "big-endian hosts are not supported");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (o: number, n: number) => {
    if (o + n > bytes.length) throw bad("truncated");
  };
  need(0, MAGIC.length + 4);
  if (MAGIC.some((b, i) => bytes[i] !== b)) throw bad("magic");
  const shapes = gptWeightShapes(arch);
  let o = MAGIC.length;
  if (view.getUint32(o, true) !== shapes.length) throw bad("tensor count");
  o += 4;
  const state: TrainingState = { weights: new Map(), m: new Map(), v: new Map() };
  for (const [name, shape] of shapes) {
    need(o, 2);
    const nameLen = view.getUint16(o, true);
    need(o + 2, nameLen + 1);
    const got = new TextDecoder().decode(bytes.subarray(o + 2, o + 2 + nameLen));
    if (got !== name) throw bad(`expected ${name}, found ${got}`);
    o += 2 + nameLen;
    const rank = bytes[o++];
    if (rank !== shape.length) throw bad(`rank of ${name}`);
    need(o, 4 * rank);
    for (let i = 0; i < rank; i++) {
      if (view.getUint32(o + 4 * i, true) !== shape[i]) throw bad(`shape of ${name}`);
    }
    o += 4 * rank;
    const n = shape.reduce((a, b) => a * b, 1);
    need(o, 12 * n);
    for (const part of [state.weights, state.m, state.v]) {
      // Copy into an aligned buffer (the opening's bytes may sit at any offset).
      const data = new Float32Array(n);
      new Uint8Array(data.buffer).set(bytes.subarray(o, o + 4 * n));
      for (let i = 0; i < n; i++) if (!Number.isFinite(data[i])) throw bad(`non-finite ${name}`);
      part.set(name, { shape: [...shape], data });
      o += 4 * n;
    }
  }
  if (o !== bytes.length) throw bad("trailing bytes");
  return state;
}

/** Hex SHA-256 of a state's canonical bytes. */
export function trainingStateHash(arch: GptArchitecture, state: TrainingState): string {
  return sha256Hex(encodeTrainingState(arch, state));
}

/** Merkle leaf of state `step` (its hex hash). */
export function checkpointLeaf(step: number, stateHash: string): Uint8Array {
  const buf = new Uint8Array(5 + 32);
  buf[0] = CHECKPOINT_LEAF_DOMAIN;
  new DataView(buf.buffer).setUint32(1, step);
  for (let i = 0; i < 32; i++) buf[5 + i] = parseInt(stateHash.slice(2 * i, 2 * i + 2), 16);
  return sha256(buf);
}

/** The checkpoint leaves of H + 1 state hashes (state 0 … state H). */
export function checkpointLeaves(stateHashes: readonly string[]): Uint8Array[] {
  return stateHashes.map((h, k) => checkpointLeaf(k, h));
}

/** Hex Merkle root over H + 1 state hashes: a receipt's `checkpointsRoot`. */
export function checkpointsRootOf(stateHashes: readonly string[]): string {
  return toHex(merkleRoot(checkpointLeaves(stateHashes)));
}

/** Merkle path of state `step` among `stateHashes`. */
export function checkpointPath(stateHashes: readonly string[], step: number): Uint8Array[] {
  return merklePath(checkpointLeaves(stateHashes), step);
}

/** True when `stateHash` is leaf `step` of a tree of `leafCount` leaves with root `root`. */
export function verifyCheckpointPath(
  root: string,
  leafCount: number,
  step: number,
  stateHash: string,
  path: readonly Uint8Array[],
): boolean {
  const r = rootFromPath(checkpointLeaf(step, stateHash), step, leafCount, path);
  return r !== null && toHex(r) === root;
}

/** Merkle leaf of shard sample `index`. */
export function shardLeaf(index: number, bytes: Uint8Array): Uint8Array {
  const buf = new Uint8Array(5 + bytes.length);
  buf[0] = SHARD_LEAF_DOMAIN;
  new DataView(buf.buffer).setUint32(1, index);
  buf.set(bytes, 5);
  return sha256(buf);
}

/** The committed view of a shard: its sample count, leaves and root for `sampleBytes`. */
export interface ShardCommitment {
  /** Number of samples (leaves). */
  size: number;
  /** Leaf hashes, sample order. */
  leaves: Uint8Array[];
  /** Hex Merkle root: a receipt's `shardRoot`. */
  root: string;
  /** All tree levels, leaves first (paths without rehashing the shard; see {@link shardPath}). */
  levels?: Uint8Array[][];
}

/** Levels of the `proof/merkle.ts` tree (node `H(0x01 ‖ l ‖ r)`, an odd last node carried up). */
function merkleLevels(leaves: readonly Uint8Array[]): Uint8Array[][] {
  const out: Uint8Array[][] = [leaves.slice()];
  let level = out[0];
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) {
      if (i + 1 >= level.length) {
        next.push(level[i]);
        continue;
      }
      const buf = new Uint8Array(65);
      buf[0] = 0x01;
      buf.set(level[i], 1);
      buf.set(level[i + 1], 33);
      next.push(sha256(buf));
    }
    out.push(next);
    level = next;
  }
  return out;
}

/** Merkle path of shard sample `index` (from the commitment's cached levels). */
export function shardPath(commitment: ShardCommitment, index: number): Uint8Array[] {
  commitment.levels ??= merkleLevels(commitment.leaves);
  if (!Number.isInteger(index) || index < 0 || index >= commitment.size) {
    throw new RangeError(`sample ${index} out of range`);
  }
  const path: Uint8Array[] = [];
  let i = index;
  for (let l = 0; l < commitment.levels.length - 1; l++) {
    const sibling = i ^ 1;
    if (sibling < commitment.levels[l].length) path.push(commitment.levels[l][sibling]);
    i >>= 1;
  }
  return path;
}

/** Commit to a shard cut into `sampleBytes`-long samples (what the trainer registers). */
export function commitShard(shard: TextShard, sampleBytes: number): ShardCommitment {
  const size = sampleCount(shard, sampleBytes);
  const leaves = Array.from(
    { length: size },
    (_, i) => shardLeaf(i, sampleAt(shard, sampleBytes, i).bytes),
  );
  const levels = merkleLevels(leaves);
  const root = size === 0 ? toHex(merkleRoot(leaves)) : toHex(levels[levels.length - 1][0]);
  return { size, leaves, root, levels };
}

/** True when `bytes` is sample `index` of the committed shard. */
export function verifyShardPath(
  root: string,
  size: number,
  index: number,
  bytes: Uint8Array,
  path: readonly Uint8Array[],
): boolean {
  const r = rootFromPath(shardLeaf(index, bytes), index, size, path);
  return r !== null && toHex(r) === root;
}

/** How far a re-run state is from the claimed one, per part: the worst tensor of each. */
export interface StateDistance {
  /** Largest relative L2 distance over the weight tensors. */
  weights: number;
  /** Largest over the first moments. */
  m: number;
  /** Largest over the second moments. */
  v: number;
  /** The tensor and part where the largest of the three was found. */
  worst: string;
}

/**
 * Relative L2 distance per tensor, `‖claimed − expected‖ / max(‖expected‖, floor)`, worst
 * tensor of each part. `floor` keeps an all-zero expected tensor (a moment of a parameter
 * whose gradient is exactly zero) from dividing by zero.
 */
export function stateDistance(
  claimed: TrainingState,
  expected: TrainingState,
  floor = 1e-30,
): StateDistance {
  const out: StateDistance = { weights: 0, m: 0, v: 0, worst: "" };
  let worst = -1;
  for (const part of ["weights", "m", "v"] as const) {
    for (const [name, e] of expected[part]) {
      const c = claimed[part].get(name);
      let d: number;
      if (!c || c.data.length !== e.data.length) d = Infinity;
      else {
        let num = 0;
        let den = 0;
        for (let i = 0; i < e.data.length; i++) {
          const x = c.data[i] - e.data[i];
          num += x * x;
          den += e.data[i] * e.data[i];
        }
        d = Math.sqrt(num) / Math.max(Math.sqrt(den), floor);
        if (Number.isNaN(d)) d = Infinity;
      }
      if (d > out[part]) out[part] = d;
      if (d > worst) {
        worst = d;
        out.worst = `${part}:${name}`;
      }
    }
  }
  return out;
}
