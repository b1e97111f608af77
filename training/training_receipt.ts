/**
 * Training receipts: what a trainer signs at the end of its local steps in a round.
 *
 * A receipt binds the work to its inputs and its output without revealing the data: the start
 * model's CID, a Merkle root over the ids of the samples used (in step order, so a validator
 * can later ask for any step's batch with inclusion proofs), the seed of the batch draws, the
 * number of steps H and the hyper-parameters, the loss of every step, and the SHA-256 of the
 * encoded int8 pseudo-gradient. Version 2 adds what proof of training work opens: the Merkle
 * root of the H + 1 training states (`checkpointsRoot`) and the commitment to the trainer's
 * shard (`shardRoot`, `shardSize`); see `docs/TRAINING.md`. The signature covers the canonical CBOR of every field but
 * `sig`, under its own domain string, so it cannot be replayed as any other signed object.
 *
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "../protocols/cbor.ts";
import { sha256, sha256Hex, toHex } from "../protocols/hash.ts";
import { type Identity, verifySignature } from "../protocols/identity.ts";
import { merkleRoot } from "../proof/merkle.ts";
import type { LocalHyperParams } from "./hyper_params.ts";

/** Version of the training receipt format. */
export const TRAINING_RECEIPT_VERSION = 2;
const TRAINING_RECEIPT_DOMAIN = "veriflow/training-receipt/v2";
/** Domain byte of a sample leaf (as `proof/commitment.ts`'s leaves: 0x00; nodes are 0x01). */
const SAMPLE_LEAF_DOMAIN = 0x00;
const HEX64 = /^[0-9a-f]{64}$/;
/** Bound on H: a receipt is small and its loss trace has one entry per step. */
export const MAX_RECEIPT_STEPS = 100_000;

/** A signed training receipt. */
export interface TrainingReceipt {
  /** Format version. */
  v: number;
  /** Round number the work belongs to. */
  round: number;
  /** Id of the start model (`gpt_weights.ts` `gptModelId`). */
  startModel: string;
  /** Local steps H. */
  steps: number;
  /** Seed of the batch draws. */
  dataSeed: number;
  /** Inner hyper-parameters. */
  hyper: LocalHyperParams;
  /** Hex Merkle root over the sample ids used, step by step ({@link sampleLeaf}). */
  samplesRoot: string;
  /** Number of samples (H · batch size). */
  sampleCount: number;
  /**
   * Hex Merkle root over the hashes of the H + 1 training states (state 0 = start weights
   * with zero moments … state H), `training/training_state.ts`: what a challenge opens.
   */
  checkpointsRoot: string;
  /**
   * Hex Merkle root over the trainer's shard cut into `hyper.sampleBytes` samples
   * (`commitShard`): a commitment to its private data, registered when it joins the round.
   */
  shardRoot: string;
  /** Number of samples in the committed shard (the batch draws are indices below it). */
  shardSize: number;
  /** Training loss of each step (nats per byte). */
  losses: number[];
  /** Hex SHA-256 of the encoded int8 pseudo-gradient. */
  deltaHash: string;
  /** Size of the encoded pseudo-gradient in bytes. */
  deltaBytes: number;
  /** The trainer's ed25519 public key. */
  trainer: Uint8Array;
  /** ed25519 signature over {@link trainingReceiptSigningBytes}. */
  sig: Uint8Array;
}

/** A receipt before signing. */
export type UnsignedTrainingReceipt = Omit<TrainingReceipt, "sig">;

const bytes = (len: number) =>
  z.instanceof(Uint8Array).refine((b) => b.length === len, { message: `expected ${len} bytes` });

/** Inner hyper-parameters as a receipt and a round announcement carry them (one schema). */
export const LocalHyperParamsSchema: z.ZodType<LocalHyperParams> = z.object({
  learningRate: z.number().positive().finite(),
  beta1: z.number().min(0).lt(1),
  beta2: z.number().min(0).lt(1),
  epsilon: z.number().positive().finite(),
  weightDecay: z.number().min(0).finite(),
  batchSize: z.number().int().min(1).max(4096),
  sampleBytes: z.number().int().min(2).max(1 << 16),
});

/** Zod schema of a training receipt on the wire. */
export const TrainingReceiptSchema: z.ZodType<TrainingReceipt> = z.object({
  v: z.literal(TRAINING_RECEIPT_VERSION),
  round: z.number().int().nonnegative(),
  startModel: z.string().min(1).max(128),
  steps: z.number().int().min(1).max(MAX_RECEIPT_STEPS),
  dataSeed: z.number().int().refine(Number.isSafeInteger),
  hyper: LocalHyperParamsSchema,
  samplesRoot: z.string().regex(HEX64),
  sampleCount: z.number().int().nonnegative(),
  checkpointsRoot: z.string().regex(HEX64),
  shardRoot: z.string().regex(HEX64),
  shardSize: z.number().int().min(1).max(2 ** 32 - 1),
  losses: z.array(z.number().finite()).max(MAX_RECEIPT_STEPS),
  deltaHash: z.string().regex(HEX64),
  deltaBytes: z.number().int().nonnegative(),
  trainer: bytes(32),
  sig: bytes(64),
}).refine((r) => r.losses.length === r.steps, { message: "one loss per step" })
  .refine((r) => r.sampleCount === r.steps * r.hyper.batchSize, {
    message: "sampleCount must be steps × batchSize",
  }) as unknown as z.ZodType<TrainingReceipt>;

/** The Merkle leaf of the sample at position `index` of the run: `H(0x00 ‖ u32 index ‖ id)`. */
export function sampleLeaf(index: number, id: string): Uint8Array {
  const idBytes = new TextEncoder().encode(id);
  const buf = new Uint8Array(5 + idBytes.length);
  buf[0] = SAMPLE_LEAF_DOMAIN;
  new DataView(buf.buffer).setUint32(1, index);
  buf.set(idBytes, 5);
  return sha256(buf);
}

/** Hex Merkle root over sample ids in the order used. */
export function samplesRootOf(ids: readonly string[]): string {
  return toHex(merkleRoot(ids.map((id, i) => sampleLeaf(i, id))));
}

/** The bytes a training receipt's signature covers. */
export function trainingReceiptSigningBytes(
  receipt: UnsignedTrainingReceipt | TrainingReceipt,
): Uint8Array {
  const { sig: _sig, ...unsigned } = receipt as TrainingReceipt;
  return encodeCanonical({ domain: TRAINING_RECEIPT_DOMAIN, receipt: unsigned });
}

/** Hex id of a receipt (SHA-256 of its signed bytes). */
export function trainingReceiptId(receipt: UnsignedTrainingReceipt | TrainingReceipt): string {
  return sha256Hex(trainingReceiptSigningBytes(receipt));
}

/** Sign a receipt as `identity` (its public key becomes `trainer`). */
export function signTrainingReceipt(
  unsigned: Omit<UnsignedTrainingReceipt, "trainer">,
  identity: Identity,
): TrainingReceipt {
  const body: UnsignedTrainingReceipt = { ...unsigned, trainer: identity.publicKey };
  return { ...body, sig: identity.sign(trainingReceiptSigningBytes(body)) };
}

/** Why a training receipt was refused. */
export type TrainingReceiptFailure =
  | "malformed"
  | "bad_signature"
  | "model_mismatch"
  | "delta_mismatch";

/** Result of {@link verifyTrainingReceipt}. */
export type TrainingReceiptCheck =
  | { ok: true; receipt: TrainingReceipt }
  | { ok: false; reason: TrainingReceiptFailure; message: string };

/** What to check a receipt against, beyond its own signature. */
export interface VerifyTrainingReceiptOptions {
  /** The round's start model CID. */
  startModel?: string;
  /** The encoded pseudo-gradient that came with the receipt. */
  delta?: Uint8Array;
}

/**
 * Check a training receipt: schema, signature, and when given, that it is for the round's
 * start model and that the delta received is the one it signs. Never throws.
 */
export function verifyTrainingReceipt(
  value: unknown,
  options: VerifyTrainingReceiptOptions = {},
): TrainingReceiptCheck {
  const fail = (reason: TrainingReceiptFailure, message: string): TrainingReceiptCheck => ({
    ok: false,
    reason,
    message,
  });
  const parsed = TrainingReceiptSchema.safeParse(value);
  if (!parsed.success) return fail("malformed", parsed.error.message);
  const receipt = parsed.data;
  if (!verifySignature(receipt.trainer, trainingReceiptSigningBytes(receipt), receipt.sig)) {
    return fail("bad_signature", "training receipt signature does not verify");
  }
  if (options.startModel !== undefined && options.startModel !== receipt.startModel) {
    return fail("model_mismatch", "receipt starts from another model");
  }
  if (options.delta !== undefined) {
    if (
      options.delta.length !== receipt.deltaBytes || sha256Hex(options.delta) !== receipt.deltaHash
    ) {
      return fail("delta_mismatch", "delta does not match the receipt's hash");
    }
  }
  return { ok: true, receipt };
}
