/**
 * Training fraud proofs: a validator's signed evidence that a trainer's training receipt does
 * not hold, checkable by any node that has the round's start model.
 *
 * A proof carries the trainer's signed receipt and the validator's signed challenge, and by
 * reason:
 * - `start_mismatch`, `delta_mismatch`, `step_mismatch`, `loss_mismatch`: the one offending
 *   opened step, unsealed (states k and k + 1, the batch). Every value in it is bound to the
 *   trainer's signature by Merkle paths to the receipt's `checkpointsRoot` and `shardRoot`, and
 *   the batch indices are a function of the receipt's seed, so the validator cannot make them
 *   up; the checker re-runs the step itself. **The proof reveals that step's batch bytes** (a
 *   cheater's data becomes public; an honest trainer's never does, as its proofs don't exist).
 *   `delta_mismatch` also carries the delta (it hashes to the receipt's `deltaHash`).
 * - `opening_mismatch`: the whole plaintext the trainer sealed, with the trainer's signature
 *   over its hash, which does not open the trainer's own commitments. Checked without a
 *   model.
 * - `opening_missing`: only the challenge; confirmed when the proof was issued after the
 *   challenge's deadline. This one rests on the validator's word that nothing (usable) came:
 *   non-delivery cannot be proven to a third party; the challenge's signature makes the
 *   accusation attributable.
 *
 * @module
 */
import { z } from "zod";
import type { GptArchitecture } from "../inference/model_builder.ts";
import { encodeCanonical } from "../protocols/cbor.ts";
import { sha256Hex, toHex } from "../protocols/hash.ts";
import { type Identity, verifySignature } from "../protocols/identity.ts";
import { gptModelId, type GptWeights } from "./gpt_weights.ts";
import { type StepOpening, StepOpeningSchema, verifyOpeningSignature } from "./step_opening.ts";
import {
  CHECKER_SLACK,
  type StepClaimReason,
  verifyOpeningsPlaintext,
  verifyStepOpening,
} from "./step_verify.ts";
import type { TrainingBackend } from "./tf_backend.ts";
import { IN_PROCESS_STEP_RERUN, type StepRerun } from "./step_rerun.ts";
import {
  challengeFitsReceipt,
  DEFAULT_OPENING_DEADLINE_MS,
  type TrainingChallenge,
  trainingChallengeId,
  TrainingChallengeSchema,
} from "./training_challenge.ts";
import {
  type TrainingReceipt,
  trainingReceiptId,
  TrainingReceiptSchema,
  verifyTrainingReceipt,
} from "./training_receipt.ts";

/** Version of the training fraud-proof format. */
export const TRAINING_FRAUD_PROOF_VERSION = 1;
const TRAINING_FRAUD_DOMAIN = "veriflow/training-fraud-proof/v1";

/** What a training fraud proof claims. */
export type TrainingFraudReason = StepClaimReason | "opening_mismatch" | "opening_missing";

/** All reasons, for schemas and messages. */
export const TRAINING_FRAUD_REASONS: readonly TrainingFraudReason[] = [
  "start_mismatch",
  "delta_mismatch",
  "step_mismatch",
  "loss_mismatch",
  "opening_mismatch",
  "opening_missing",
];

/** The trainer's signed plaintext answer (for `opening_mismatch`). */
export interface SignedOpeningsPlaintext {
  /** The plaintext bytes it sealed. */
  plaintext: Uint8Array;
  /** The trainer's signature over `(receiptId, challengeId, sha256(plaintext))`. */
  sig: Uint8Array;
}

/** A signed training fraud proof. */
export interface TrainingFraudProof {
  /** Format version. */
  v: number;
  /** What is claimed. */
  reason: TrainingFraudReason;
  /** The trainer's signed receipt. */
  receipt: TrainingReceipt;
  /** The validator's signed challenge of it. */
  challenge: TrainingChallenge;
  /** The offending step, unsealed (step claims). */
  opening?: StepOpening;
  /** The trainer's signed plaintext (`opening_mismatch`). */
  answer?: SignedOpeningsPlaintext;
  /** The encoded delta (`delta_mismatch`). */
  delta?: Uint8Array;
  /** Unix ms of issue. */
  issuedAt: number;
  /** The validator's public key (the challenge's validator). */
  validator: Uint8Array;
  /** The validator's signature over {@link trainingFraudProofSigningBytes}. */
  sig: Uint8Array;
}

/** A proof before signing. */
export type UnsignedTrainingFraudProof = Omit<TrainingFraudProof, "sig" | "validator">;

const bytes = z.instanceof(Uint8Array);

/** Zod schema of a training fraud proof on the wire. */
export const TrainingFraudProofSchema: z.ZodType<TrainingFraudProof> = z.object({
  v: z.literal(TRAINING_FRAUD_PROOF_VERSION),
  reason: z.enum(TRAINING_FRAUD_REASONS as [TrainingFraudReason, ...TrainingFraudReason[]]),
  receipt: TrainingReceiptSchema,
  challenge: TrainingChallengeSchema,
  opening: StepOpeningSchema.optional(),
  answer: z.object({ plaintext: bytes, sig: bytes.refine((b) => b.length === 64) }).optional(),
  delta: bytes.optional(),
  issuedAt: z.number().int().nonnegative(),
  validator: bytes.refine((b) => b.length === 32),
  sig: bytes.refine((b) => b.length === 64),
}) as unknown as z.ZodType<TrainingFraudProof>;

/** The bytes a training fraud proof's signature covers. */
export function trainingFraudProofSigningBytes(proof: Omit<TrainingFraudProof, "sig">): Uint8Array {
  const { sig: _sig, ...unsigned } = proof as TrainingFraudProof;
  return encodeCanonical({ domain: TRAINING_FRAUD_DOMAIN, proof: unsigned });
}

/** Hex hash of a proof (of its signing bytes): how verdicts and the ledger name it. */
export function trainingFraudProofHash(proof: Omit<TrainingFraudProof, "sig">): string {
  return sha256Hex(trainingFraudProofSigningBytes(proof));
}

/** Sign a proof as the validator `identity`. */
export function signTrainingFraudProof(
  unsigned: UnsignedTrainingFraudProof,
  identity: Identity,
): TrainingFraudProof {
  const body = { ...unsigned, validator: identity.publicKey };
  return { ...body, sig: identity.sign(trainingFraudProofSigningBytes(body)) };
}

/** What the independent checker needs. */
export interface CheckTrainingFraudProofOptions {
  /** Architecture of the round's model. */
  arch: GptArchitecture;
  /**
   * The round's start weights, or a loader of them by model CID (called only for the claims
   * that need them: `start_mismatch`, `delta_mismatch`). Checked against the receipt's start
   * model CID when used.
   */
  startWeights: GptWeights | ((modelCid: string) => Promise<GptWeights>);
  /** Backend of the re-run; default wasm. */
  backend?: TrainingBackend;
  /**
   * Where the disputed step is re-run (`step_rerun.ts`); default this thread. A node's validator
   * gives its worker (a step's re-run held the node's event loop for seconds).
   */
  rerun?: StepRerun;
  /** Clock (unix ms), only to refuse proofs issued in the future. */
  now?: () => number;
  /**
   * The shortest answer window (challenge deadline − issue) an `opening_missing` proof may rest
   * on, ms; default {@link DEFAULT_OPENING_DEADLINE_MS}, a checking node's own window. A
   * challenge with a shorter one proves nothing about the trainer: its challenger could sign
   * one with no window at all and its proof at once, the trainer never asked.
   */
  minOpeningWindowMs?: number;
}

/** The checker's answer. */
export interface TrainingFraudCheckResult {
  /** True when the proof holds: the trainer cheated (or, `opening_missing`, did not answer). */
  confirmed: boolean;
  /** `confirmed`, or why not (`bad_signature`, `not_reproduced`, `opening_valid`, ...). */
  reason: string;
  /** Hex hash of the proof ("" when malformed). */
  proofHash: string;
}

/**
 * Check a training fraud proof as any node: confirmed only when the validator's signature, the
 * trainer's receipt, the challenge (of this receipt, by this validator) and the claim itself
 * all hold; anything else refutes it (a false accusation, attributable to the validator).
 * Never throws on the proof's account; rejects only when `rerun` does (its worker failed or
 * stopped: `step_rerun_failed`, `step_rerun_stopped`), which decides nothing.
 */
export async function checkTrainingFraudProof(
  value: unknown,
  options: CheckTrainingFraudProofOptions,
): Promise<TrainingFraudCheckResult> {
  let proofHash = "";
  const done = (confirmed: boolean, reason: string) => ({ confirmed, reason, proofHash });
  const parsed = TrainingFraudProofSchema.safeParse(value);
  if (!parsed.success) return done(false, "malformed");
  const proof = parsed.data;
  proofHash = trainingFraudProofHash(proof);
  if (!verifySignature(proof.validator, trainingFraudProofSigningBytes(proof), proof.sig)) {
    return done(false, "bad_signature");
  }
  const rc = verifyTrainingReceipt(proof.receipt);
  if (!rc.ok) return done(false, `receipt_${rc.reason}`);
  const { receipt, challenge } = proof;
  if (!challengeFitsReceipt(challenge, receipt)) return done(false, "challenge_mismatch");
  if (toHex(challenge.validator) !== toHex(proof.validator)) return done(false, "not_challenger");
  if (options.now && proof.issuedAt > options.now() + 60_000) {
    return done(false, "issued_in_future");
  }

  switch (proof.reason) {
    case "opening_missing": {
      const minWindow = options.minOpeningWindowMs ?? DEFAULT_OPENING_DEADLINE_MS;
      if (challenge.deadline - challenge.issuedAt < minWindow) {
        return done(false, "window_too_short");
      }
      return proof.issuedAt >= challenge.deadline
        ? done(true, "confirmed")
        : done(false, "before_deadline");
    }
    case "opening_mismatch": {
      if (!proof.answer) return done(false, "malformed");
      const signed = verifyOpeningSignature(
        receipt.trainer,
        trainingReceiptId(receipt),
        trainingChallengeId(challenge),
        sha256Hex(proof.answer.plaintext),
        proof.answer.sig,
      );
      if (!signed) return done(false, "answer_not_signed");
      const r = verifyOpeningsPlaintext(receipt, challenge, proof.answer.plaintext, options.arch);
      return r.ok ? done(false, "opening_valid") : done(true, "confirmed");
    }
    default: {
      if (!proof.opening) return done(false, "malformed");
      if (!challenge.steps.includes(proof.opening.step)) return done(false, "step_not_challenged");
      const s = verifyStepOpening(receipt, proof.opening, options.arch);
      if (!s.ok) return done(false, "opening_invalid");
      let startWeights: GptWeights = new Map();
      if (proof.reason === "start_mismatch" || proof.reason === "delta_mismatch") {
        try {
          startWeights = typeof options.startWeights === "function"
            ? await options.startWeights(receipt.startModel)
            : options.startWeights;
          const cid = gptModelId(options.arch, startWeights);
          if (cid !== receipt.startModel) return done(false, "start_model_unavailable");
        } catch {
          return done(false, "start_model_unavailable");
        }
      }
      if (proof.reason === "delta_mismatch") {
        const d = proof.delta;
        if (!d || d.length !== receipt.deltaBytes || sha256Hex(d) !== receipt.deltaHash) {
          return done(false, "delta_not_signed");
        }
      }
      const r = await (options.rerun ?? IN_PROCESS_STEP_RERUN).check(receipt, s.verified, {
        arch: options.arch,
        startWeights,
        delta: proof.delta,
        backend: options.backend,
        slack: CHECKER_SLACK,
      }, proof.reason);
      return r.ok ? done(false, "not_reproduced") : done(true, "confirmed");
    }
  }
}
