/**
 * Step openings: the trainer's answer to a training challenge.
 *
 * For each challenged step k the trainer reveals state k and state k + 1 (canonical bytes,
 * `training_state.ts`) with their Merkle paths to the receipt's `checkpointsRoot`, and the
 * step's batch: each sample's index in its shard, its bytes and its Merkle path to the
 * receipt's `shardRoot`. The plaintext (canonical CBOR of {@link StepOpenings}) is sealed to
 * the challenging validator's key exactly as a private inference prompt is
 * (`proof/private_input.ts`), under a context that binds the receipt id and the challenge id,
 * so peers that carry it see ciphertext only and it cannot be moved to another challenge.
 *
 * The trainer also signs `(receiptId, challengeId, SHA-256 of the plaintext)`: if the
 * plaintext does not open its own commitments, the validator can show the plaintext and that
 * signature to anyone (`opening_mismatch`) — which reveals that step's batch bytes.
 *
 * The trainer keeps a {@link TrainingTrace}: every state's hash, the full state every
 * `keepEvery` steps, its shard. A state it did not keep is recomputed forward from the nearest
 * kept one with the same step function on the same backend, which is bit-exact (measured; see
 * `docs/TRAINING.md`) — the recomputed state's hash must match the committed one.
 *
 * @module
 */
import { z } from "zod";
import type { GptArchitecture } from "../inference/model_builder.ts";
import { encodeCanonical } from "../protocols/cbor.ts";
import { sha256Hex, toHex } from "../protocols/hash.ts";
import { type Identity, verifySignature } from "../protocols/identity.ts";
import {
  openInput,
  SEALED_INPUT_VERSION,
  type SealedInput,
  sealInput,
} from "../proof/private_input.ts";
import { batchIndices, sampleAt, type TextShard } from "./brown_corpus.ts";
import { loadTrainingEngine } from "./training_engine.ts";
import type { LocalHyperParams } from "./hyper_params.ts";
import type { TrainingBackend } from "./tf_backend.ts";
import {
  type TrainingChallenge,
  trainingChallengeId,
  verifyTrainingChallenge,
} from "./training_challenge.ts";
import { TrainingError } from "./training_error.ts";
import { type TrainingReceipt, trainingReceiptId } from "./training_receipt.ts";
import {
  checkpointPath,
  encodeTrainingState,
  type ShardCommitment,
  shardPath,
  type TrainingState,
  trainingStateHash,
} from "./training_state.ts";

/** Version of the opening formats. */
export const STEP_OPENING_VERSION = 1;
const OPENING_SIG_DOMAIN = "veriflow/training-opening/v1";
const HEX64 = /^[0-9a-f]{64}$/;
/** Default spacing of the full states a trainer keeps (recompute ≤ 15 steps to open one). */
export const DEFAULT_KEEP_EVERY = 16;

/** One batch sample, opened against the shard commitment. */
export interface OpenedSample {
  /** Its index in the committed shard. */
  index: number;
  /** Its bytes (`hyper.sampleBytes` long). */
  bytes: Uint8Array;
  /** Merkle path to `shardRoot`. */
  path: Uint8Array[];
}

/** One opened step k. */
export interface StepOpening {
  /** The step k (0-based; it turns state k into state k + 1). */
  step: number;
  /** Canonical bytes of state k. */
  before: Uint8Array;
  /** Merkle path of state k to `checkpointsRoot`. */
  beforePath: Uint8Array[];
  /** Canonical bytes of state k + 1. */
  after: Uint8Array;
  /** Merkle path of state k + 1. */
  afterPath: Uint8Array[];
  /** The step's batch, in batch order. */
  samples: OpenedSample[];
}

/** The plaintext of a sealed answer. */
export interface StepOpenings {
  /** Format version. */
  v: number;
  /** Hex id of the receipt. */
  receiptId: string;
  /** Hex id of the challenge answered. */
  challengeId: string;
  /** One opening per challenged step, in the challenge's order. */
  steps: StepOpening[];
}

/** The sealed answer to a challenge, as it crosses the wire. */
export interface SealedStepOpenings {
  /** Format version. */
  v: number;
  /** Hex id of the receipt. */
  receiptId: string;
  /** Hex id of the challenge answered. */
  challengeId: string;
  /** Hex SHA-256 of the plaintext (canonical CBOR of {@link StepOpenings}). */
  openingsHash: string;
  /** The plaintext sealed to the validator. */
  box: SealedInput;
  /** The trainer's public key. */
  trainer: Uint8Array;
  /** The trainer's signature over {@link openingSigningBytes}. */
  sig: Uint8Array;
}

const bytesOf = (len?: number) =>
  len === undefined
    ? z.instanceof(Uint8Array)
    : z.instanceof(Uint8Array).refine((b) => b.length === len, {
      message: `expected ${len} bytes`,
    });
const path = z.array(bytesOf(32)).max(64);

/** Zod schema of a sealed input (`proof/private_input.ts`). */
export const SealedInputSchema: z.ZodType<SealedInput> = z.object({
  v: z.literal(SEALED_INPUT_VERSION),
  recipient: bytesOf(32),
  ephemeral: bytesOf(32),
  nonce: bytesOf(24),
  ciphertext: bytesOf(),
}) as unknown as z.ZodType<SealedInput>;

/** Zod schema of one opened step. */
export const StepOpeningSchema: z.ZodType<StepOpening> = z.object({
  step: z.number().int().nonnegative(),
  before: bytesOf(),
  beforePath: path,
  after: bytesOf(),
  afterPath: path,
  samples: z.array(z.object({
    index: z.number().int().nonnegative(),
    bytes: bytesOf(),
    path,
  })).max(4096),
}) as unknown as z.ZodType<StepOpening>;

/** Zod schema of the plaintext. */
export const StepOpeningsSchema: z.ZodType<StepOpenings> = z.object({
  v: z.literal(STEP_OPENING_VERSION),
  receiptId: z.string().regex(HEX64),
  challengeId: z.string().regex(HEX64),
  steps: z.array(StepOpeningSchema).max(1024),
}) as unknown as z.ZodType<StepOpenings>;

/** Zod schema of a sealed answer on the wire. */
export const SealedStepOpeningsSchema: z.ZodType<SealedStepOpenings> = z.object({
  v: z.literal(STEP_OPENING_VERSION),
  receiptId: z.string().regex(HEX64),
  challengeId: z.string().regex(HEX64),
  openingsHash: z.string().regex(HEX64),
  box: SealedInputSchema,
  trainer: bytesOf(32),
  sig: bytesOf(64),
}) as unknown as z.ZodType<SealedStepOpenings>;

/** The challenge does not belong to this trace's receipt (or is not validly signed). */
export class ChallengeMismatchError extends TrainingError {
  /**
   * Create the error.
   * @param message Human-readable detail.
   */
  constructor(message: string) {
    super("challenge_mismatch", message);
  }
}

/** What a trainer keeps after a round to answer challenges (private: holds its shard). */
export interface TrainingTrace {
  /** The signed receipt. */
  receipt: TrainingReceipt;
  /** The trainer's key (it signs its answers). */
  identity: Identity;
  /** Architecture. */
  arch: GptArchitecture;
  /** Hyper-parameters used. */
  hyper: LocalHyperParams;
  /** The shard trained on. */
  shard: TextShard;
  /** Its commitment (leaves for the Merkle paths). */
  shardCommitment: ShardCommitment;
  /** Hex hashes of states 0 … H. */
  stateHashes: string[];
  /** Full states kept, by step (always state 0 and state H). */
  kept: Map<number, TrainingState>;
  /** Backend the states were computed on (recomputation uses it, to be bit-exact). */
  backend: TrainingBackend;
}

/** The sealing context of an answer: binds it to one receipt and one challenge. */
export function openingContext(receiptId: string, challengeId: string): Uint8Array {
  return new TextEncoder().encode(`${OPENING_SIG_DOMAIN}\n${receiptId}\n${challengeId}`);
}

/** The bytes the trainer signs for an answer. */
export function openingSigningBytes(
  receiptId: string,
  challengeId: string,
  openingsHash: string,
): Uint8Array {
  return encodeCanonical({ domain: OPENING_SIG_DOMAIN, receiptId, challengeId, openingsHash });
}

/** The sample indices of step `step`. */
function stepIndices(trace: TrainingTrace, step: number): number[] {
  const { hyper, receipt, shardCommitment } = trace;
  return batchIndices(receipt.dataSeed, step, hyper.batchSize, shardCommitment.size);
}

/** The batch bytes of step `step`. */
function batchBytes(trace: TrainingTrace, step: number): Uint8Array[] {
  return stepIndices(trace, step).map((i) =>
    sampleAt(trace.shard, trace.hyper.sampleBytes, i).bytes
  );
}

/** The samples of step `step` with their shard indices and paths. */
function openBatch(trace: TrainingTrace, step: number): OpenedSample[] {
  return stepIndices(trace, step).map((index) => ({
    index,
    bytes: sampleAt(trace.shard, trace.hyper.sampleBytes, index).bytes.slice(),
    path: shardPath(trace.shardCommitment, index),
  }));
}

/**
 * States a trainer recomputed while opening one receipt's challenges, kept for the next
 * challenge of that receipt: each validator that audits a round challenges its trainers on its
 * own coin, so a receipt draws several challenges at once, and each re-ran its steps from the
 * nearest kept state on its own (8 challenges of `tiny` at H = 64: 382 steps, 95 s, the last
 * ones past their 60 s deadline: `opening_missing`, found by review s45). With this, every step
 * of a receipt is re-run at most once while its states fit in `maxStates`.
 */
export class OpenedStates {
  readonly #states = new Map<number, TrainingState>();
  readonly #max: number;

  /**
   * An empty keep.
   * @param maxStates How many recomputed states are kept at most (the rest are recomputed).
   */
  constructor(maxStates: number) {
    this.#max = maxStates;
  }

  /** State `k`, if kept here. */
  get(k: number): TrainingState | undefined {
    return this.#states.get(k);
  }

  /** The latest state kept here at or before `k`. */
  nearest(k: number): { k: number; state: TrainingState } | undefined {
    let best: { k: number; state: TrainingState } | undefined;
    for (const [at, state] of this.#states) {
      if (at <= k && (best === undefined || at > best.k)) best = { k: at, state };
    }
    return best;
  }

  /** Keep state `k` (checked against its committed hash), while there is room. */
  add(k: number, state: TrainingState): void {
    if (this.#states.size < this.#max) this.#states.set(k, state);
  }
}

/**
 * State `k` of the trace: kept, or recomputed from the nearest kept state before it (or from
 * `near`, a state the caller already holds, or one in `opened`, when that is closer). The
 * result's hash must equal the committed one (else `trace_diverged`). States recomputed on the
 * way are added to `opened`.
 */
export async function traceState(
  trace: TrainingTrace,
  k: number,
  near?: { k: number; state: TrainingState },
  opened?: OpenedStates,
): Promise<TrainingState> {
  const kept = trace.kept.get(k) ?? opened?.get(k);
  if (kept) return kept;
  let from = k;
  while (from > 0 && !trace.kept.has(from)) from--;
  let state = trace.kept.get(from);
  for (const candidate of [near, opened?.nearest(k)]) {
    if (candidate && candidate.k <= k && (state === undefined || candidate.k > from)) {
      from = candidate.k;
      state = candidate.state;
    }
  }
  if (!state) throw new TrainingError("trace_diverged", `no kept state at or before ${k}`);
  for (let s = from; s < k; s++) {
    const samples = batchBytes(trace, s);
    const { runTrainingStep } = await loadTrainingEngine();
    state = (await runTrainingStep(trace.arch, trace.hyper, state, samples, s, trace.backend))
      .state;
    if (opened && s + 1 < k) {
      if (trainingStateHash(trace.arch, state) !== trace.stateHashes[s + 1]) {
        throw new TrainingError("trace_diverged", `recomputed state ${s + 1} differs`);
      }
      opened.add(s + 1, state);
    }
  }
  if (trainingStateHash(trace.arch, state) !== trace.stateHashes[k]) {
    throw new TrainingError(
      "trace_diverged",
      `recomputed state ${k} differs from the committed one`,
    );
  }
  opened?.add(k, state);
  return state;
}

/**
 * The plaintext openings of the challenged steps from a trace (no sealing). Steps are opened
 * in ascending order, each recomputed from the nearest kept state, the previous step's end or a
 * state in `opened` (another challenge of this receipt recomputed it), whichever is closest:
 * at most `keepEvery` steps of recomputation per opened step, and with `opened` each step of
 * the receipt re-run at most once over all its challenges.
 */
export async function buildStepOpenings(
  trace: TrainingTrace,
  challenge: TrainingChallenge,
  opened?: OpenedStates,
): Promise<StepOpenings> {
  const steps: StepOpening[] = [];
  let last: { k: number; state: TrainingState } | undefined;
  for (const k of challenge.steps) {
    const before = last?.k === k ? last.state : await traceState(trace, k, last, opened);
    // State k + 1: kept, or one step from state k.
    let after = trace.kept.get(k + 1) ?? opened?.get(k + 1);
    if (!after) {
      const samples = batchBytes(trace, k);
      const { runTrainingStep } = await loadTrainingEngine();
      after = (await runTrainingStep(trace.arch, trace.hyper, before, samples, k, trace.backend))
        .state;
      if (trainingStateHash(trace.arch, after) !== trace.stateHashes[k + 1]) {
        throw new TrainingError("trace_diverged", `recomputed state ${k + 1} differs`);
      }
      opened?.add(k + 1, after);
    }
    last = { k: k + 1, state: after };
    steps.push({
      step: k,
      before: encodeTrainingState(trace.arch, before),
      beforePath: checkpointPath(trace.stateHashes, k),
      after: encodeTrainingState(trace.arch, after),
      afterPath: checkpointPath(trace.stateHashes, k + 1),
      samples: openBatch(trace, k),
    });
  }
  return {
    v: STEP_OPENING_VERSION,
    receiptId: challenge.receiptId,
    challengeId: trainingChallengeId(challenge),
    steps,
  };
}

/** Seal plaintext openings to the challenge's validator and sign them as `identity`. */
export function sealStepOpenings(
  openings: StepOpenings,
  challenge: TrainingChallenge,
  identity: Identity,
): SealedStepOpenings {
  return sealOpeningBytes(encodeCanonical(openings), challenge, identity);
}

/** Seal already-encoded plaintext bytes (tests use it to send garbage). */
export function sealOpeningBytes(
  plaintext: Uint8Array,
  challenge: TrainingChallenge,
  identity: Identity,
): SealedStepOpenings {
  const challengeId = trainingChallengeId(challenge);
  const openingsHash = sha256Hex(plaintext);
  return {
    v: STEP_OPENING_VERSION,
    receiptId: challenge.receiptId,
    challengeId,
    openingsHash,
    box: sealInput(
      plaintext,
      challenge.validator,
      openingContext(challenge.receiptId, challengeId),
    ),
    trainer: identity.publicKey,
    sig: identity.sign(openingSigningBytes(challenge.receiptId, challengeId, openingsHash)),
  };
}

/**
 * The trainer's answer to `challenge`: the challenged steps opened from `trace`, sealed to the
 * validator and signed.
 *
 * `opened`: the states recomputed for earlier challenges of this receipt (see
 * {@link OpenedStates}).
 *
 * @throws {ChallengeMismatchError} when the challenge is not validly signed, not for this
 * trace's receipt, or names steps the receipt does not have.
 */
export async function openChallengedSteps(
  trace: TrainingTrace,
  challenge: TrainingChallenge,
  opened?: OpenedStates,
): Promise<SealedStepOpenings> {
  if (!verifyTrainingChallenge(challenge)) {
    throw new ChallengeMismatchError("challenge is malformed or not signed by its validator");
  }
  if (challenge.receiptId !== trainingReceiptId(trace.receipt)) {
    throw new ChallengeMismatchError("challenge is for another receipt");
  }
  if (challenge.steps.some((s) => s >= trace.receipt.steps)) {
    throw new ChallengeMismatchError("challenge names steps beyond H");
  }
  return sealStepOpenings(
    await buildStepOpenings(trace, challenge, opened),
    challenge,
    trace.identity,
  );
}

/** Result of {@link unsealStepOpenings}. */
export type UnsealResult =
  /** The trainer's signed plaintext (not yet parsed). */
  | { ok: true; plaintext: Uint8Array }
  /** Not an answer from this trainer to this challenge (forged, misrouted, malformed). */
  | { ok: false; reason: "opening_unsigned" }
  /** Signed by the trainer but cannot be opened or does not hash to what it signed. */
  | { ok: false; reason: "opening_unopenable" };

/**
 * Validator side: check the answer is the trainer's, for this challenge, and open it.
 * Never throws.
 */
export function unsealStepOpenings(
  sealed: unknown,
  challenge: TrainingChallenge,
  receipt: TrainingReceipt,
  validator: Identity,
): UnsealResult {
  const s = trainersAnswer(sealed, challenge, receipt);
  if (s === undefined) return { ok: false, reason: "opening_unsigned" };
  const challengeId = s.challengeId;
  try {
    const plaintext = openInput(s.box, validator, openingContext(s.receiptId, challengeId));
    if (sha256Hex(plaintext) !== s.openingsHash) return { ok: false, reason: "opening_unopenable" };
    return { ok: true, plaintext };
  } catch {
    return { ok: false, reason: "opening_unopenable" };
  }
}

/**
 * `sealed` when it is the receipt's trainer's signed answer to `challenge` (its box not opened),
 * else undefined: what {@link unsealStepOpenings} checks first, and a validator checks before it
 * weighs an answer's size (`step_check.ts`). Never throws.
 */
export function trainersAnswer(
  sealed: unknown,
  challenge: TrainingChallenge,
  receipt: TrainingReceipt,
): SealedStepOpenings | undefined {
  const parsed = SealedStepOpeningsSchema.safeParse(sealed);
  if (!parsed.success) return undefined;
  const s = parsed.data;
  const signed = s.receiptId === challenge.receiptId &&
    s.challengeId === trainingChallengeId(challenge) &&
    toHex(s.trainer) === toHex(receipt.trainer) &&
    verifyOpeningSignature(receipt.trainer, s.receiptId, s.challengeId, s.openingsHash, s.sig);
  return signed ? s : undefined;
}

/** True when `sig` is `trainer`'s signature on an answer with these ids and hash. */
export function verifyOpeningSignature(
  trainer: Uint8Array,
  receiptId: string,
  challengeId: string,
  openingsHash: string,
  sig: Uint8Array,
): boolean {
  return verifySignature(trainer, openingSigningBytes(receiptId, challengeId, openingsHash), sig);
}
