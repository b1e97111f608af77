/**
 * The training wire messages: a DiLoCo round between nodes (issue #16). One schema per type,
 * here; the roles that move them are `training/round_coordinator.ts` (runs rounds),
 * `training/trainer_service.ts` (trains on data that never leaves it) and
 * `training/training_validator.ts` (challenges receipts, checks and spreads fraud proofs).
 *
 * ```
 * training (trainers, coordinators and ledger-keeping nodes serve it)
 *   training.join        { shardSize, shardRoot }       → training.joined { round, model, file }
 *   training.round       { round, startModel, startFile, startUpdate?, arch, steps,
 *                          dataSeed, hyper, deadline }   → training.report { receipt, delta }
 *   training.challenge   { challenge }                  → training.openings { size, parts, sha256 }
 *   training.opening_part { challengeId, index }        → training.part { bytes }
 *   training.receipt     { receipt, terms }               one-way (gossip)
 *   training.fraud_proof { proof, arch, startFile? }      one-way (gossip)
 *   training.outcome     { round, startModel, startFile?, model, file, arch, accepted,
 *                          reports, excluded, heldOutLoss?, coordinator, sig } one-way (gossip)
 * ```
 *
 * A trainer joins every peer that speaks the protocol; only a coordinator accepts
 * (`not_coordinator` from the others). The trainer's data never leaves it: the join carries the
 * shard's size and its Merkle root, the report an int8 pseudo-gradient and a signed receipt.
 * A round's reply is its report, so a trainer that leaves mid-round fails its own request and
 * the coordinator's deadline (the request's timeout) ends the wait for the rest. A challenged
 * trainer answers with its step openings sealed to the validator — megabytes of training
 * states, fetched in 512 KiB parts — or refuses, or stays silent past the challenge's
 * deadline: then the signed challenge itself convicts it (`opening_missing`).
 *
 * A round after the first names its start model's outer update (`startUpdate`: the model before
 * it and the storage file of the int8 update, `training/outer_step.ts`), so a trainer that holds
 * the previous model downloads a quarter of the weights' float32 bytes, not the whole model; it
 * checks what it rebuilds against `startModel` and downloads `startFile` when that fails.
 *
 * An outcome carries what makes it checkable: the signed receipt and the storage file of each
 * delta that went in, in the order they were averaged, so any node can redo the outer step and
 * compare the model CID (`training/round_audit.ts`) before it serves or passes on the model.
 * Its coordinator signs it (`training/signed_outcome.ts`): a node audits only the outcomes of a
 * coordinator staked in its ledger, charged to that coordinator, whoever relayed them.
 *
 * Receipts, fraud proofs and outcomes are gossip, like `validation.fraud_proof`: a node passes
 * what is new to it to every other peer once, never back, and each checks before it acts.
 * Nothing here carries a per-message signature: the connection's handshake authenticates the
 * peer; what a third party must check (receipts, challenges, fraud proofs, outcomes) is signed
 * inside.
 *
 * @module
 */
import { z } from "zod";
import { defineMessage, type MessageDefinition } from "./message_registry.ts";
import { defineProtocol, type Protocol } from "./connection_protocols.ts";
import { isCid } from "./cid.ts";
import type { GptArchitecture } from "../inference/model_builder.ts";
import { gptWeightShapes } from "../training/gpt_weights.ts";
import { int8DeltaBytes } from "../training/int8_delta.ts";
import type { LocalHyperParams } from "../training/hyper_params.ts";
import {
  LocalHyperParamsSchema,
  type TrainingReceipt,
  TrainingReceiptSchema,
} from "../training/training_receipt.ts";
import { type TrainingChallenge, TrainingChallengeSchema } from "../training/training_challenge.ts";
import {
  type TrainingFraudProof,
  TrainingFraudProofSchema,
} from "../training/training_fraud_proof.ts";

const HEX64 = /^[0-9a-f]{64}$/;
/**
 * Largest encoded pseudo-gradient in a report: 960 KiB, under the connection's 1 MiB frame with
 * room for the receipt. int8 is one byte a parameter, so this bounds a trained model at about
 * 950 k parameters (the built-in `tiny` has 150 k); a larger model needs the delta by CID.
 */
export const MAX_REPORT_DELTA_BYTES = 960 * 1024;
/**
 * Most parameters of an architecture on the wire: a round's report carries its delta inline at
 * one byte a parameter (plus scales), so no larger model can be trained over this protocol. Each
 * field's own bound allowed 52 billion parameters together, and an outcome from an unknown start
 * model made a node build the genesis model of the architecture it named. The schema checks the
 * encoded delta itself against {@link MAX_REPORT_DELTA_BYTES}, which is a little tighter (its
 * row scales and tensor headers).
 */
export const MAX_WIRE_MODEL_PARAMETERS = MAX_REPORT_DELTA_BYTES;
/**
 * Most trainer keys an outcome lists (accepted, and excluded): a coordinator asks at most this
 * many trainers a round (`round_coordinator.ts`).
 */
export const MAX_OUTCOME_TRAINERS = 256;

const cid = z.string().max(128).refine(isCid, "expected a CID");
const hexKey = z.string().regex(HEX64);

/**
 * Bytes of a report's delta for `arch` (`int8_delta.ts`: a byte a parameter, a float32 scale a
 * row, a header a tensor), whatever its values.
 */
function gptDeltaBytes(arch: GptArchitecture): number {
  return int8DeltaBytes(gptWeightShapes(arch).map(([name, shape]) => ({ name, shape })));
}

/**
 * Zod schema of a GPT architecture on the wire, bounded by what a report can carry (its delta
 * within {@link MAX_REPORT_DELTA_BYTES}, so at most {@link MAX_WIRE_MODEL_PARAMETERS}
 * parameters): a peer cannot make a node build a huge model, and a round of it can be reported.
 */
export const ArchitectureSchema: z.ZodType<GptArchitecture> = z.object({
  numLayers: z.number().int().min(1).max(64),
  hiddenSize: z.number().int().min(1).max(8192),
  numHeads: z.number().int().min(1).max(128),
  contextLength: z.number().int().min(2).max(65_536),
}).refine((a) => a.hiddenSize % a.numHeads === 0, "hiddenSize must be a multiple of numHeads")
  .refine(
    (a) => gptDeltaBytes(a) <= MAX_REPORT_DELTA_BYTES,
    `its delta would take more than the ${MAX_REPORT_DELTA_BYTES} bytes a report carries`,
  );

/** Body of `training.joined`: where the network's training stands. */
export interface JoinedBody {
  /** The round under way or next (0 before the first). */
  round: number;
  /** CID of the current model (what a late joiner downloads). */
  model: string;
  /** Storage file id of the current model's `model.onnx`. */
  file: string;
}

/** Reply to `training.join`. */
export const JoinedMessage: MessageDefinition<JoinedBody> = defineMessage(
  "training.joined",
  z.object({ round: z.number().int().nonnegative(), model: cid, file: cid }),
);

/** Body of `training.join`. */
export interface JoinBody {
  /** Samples in the trainer's shard (the data stays with it). */
  shardSize: number;
  /** Hex Merkle root of the shard's samples: what its receipts must commit to. */
  shardRoot: string;
}

/** A trainer offers its work to a coordinator. */
export const JoinMessage: MessageDefinition<JoinBody, JoinedBody> = defineMessage(
  "training.join",
  z.object({
    shardSize: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    shardRoot: z.string().regex(HEX64),
  }),
  { reply: JoinedMessage },
);

/** Body of `training.report`: a trainer's work for one round. */
export interface ReportBody {
  /** The signed training receipt. */
  receipt: TrainingReceipt;
  /** The encoded int8 pseudo-gradient (`training/int8_delta.ts`). */
  delta: Uint8Array;
}

/** Reply to `training.round`. */
export const ReportMessage: MessageDefinition<ReportBody> = defineMessage(
  "training.report",
  z.object({
    receipt: TrainingReceiptSchema,
    delta: z.instanceof(Uint8Array).refine((b) => b.length <= MAX_REPORT_DELTA_BYTES, {
      message: `delta over ${MAX_REPORT_DELTA_BYTES} bytes`,
    }),
  }),
);

/** Body of `training.round`: one round as a coordinator announces it to one trainer. */
export interface RoundBody {
  /** Round number. */
  round: number;
  /** CID of the start model. */
  startModel: string;
  /** Storage file id of its `model.onnx` (a trainer without it downloads it). */
  startFile: string;
  /** Its outer update from the previous round's model (a trainer holding that one fetches it). */
  startUpdate?: { from: string; file: string };
  /** The model's architecture. */
  arch: GptArchitecture;
  /** Local steps H. */
  steps: number;
  /** Seed of this trainer's batch draws (one per trainer and round). */
  dataSeed: number;
  /** Inner hyper-parameters. */
  hyper: LocalHyperParams;
  /** When the coordinator stops waiting (ms since the epoch). */
  deadline: number;
}

/**
 * The most local steps (H) a trainer takes in one round by default
 * (`TrainerServiceOptions.maxRoundSteps`), and so the most a node's coordinator asks for
 * (`training.coordinator.steps`): 20 times the default H of 50, a few minutes of training for
 * the built-in models on two cores. Rounds run one after another at a trainer, and one of the
 * 100,000 steps the wire allows would hold every other coordinator's for hours.
 */
export const MAX_ROUND_STEPS = 1000;

/** A coordinator's round; the reply is the trainer's report. */
export const RoundMessage: MessageDefinition<RoundBody, ReportBody> = defineMessage(
  "training.round",
  z.object({
    round: z.number().int().nonnegative(),
    startModel: cid,
    startFile: cid,
    startUpdate: z.object({ from: cid, file: cid }).optional(),
    arch: ArchitectureSchema,
    steps: z.number().int().min(1).max(100_000),
    dataSeed: z.number().int().refine(Number.isSafeInteger),
    hyper: LocalHyperParamsSchema,
    deadline: z.number().int().nonnegative(),
  }),
  { reply: ReportMessage },
);

/**
 * Largest piece of a sealed answer in one `training.part`: 512 KiB, well inside the 1 MiB
 * frame. An answer opens whole training states (weights and both AdamW moments, before and
 * after each challenged step): megabytes even for small models, so it moves in pieces.
 */
export const MAX_OPENING_PART_BYTES = 512 * 1024;
/** Largest sealed answer accepted (bounds what a validator downloads for one challenge). */
export const MAX_OPENINGS_BYTES = 256 * 1024 * 1024;

/** Body of `training.openings`: the sealed answer is ready, to be fetched in parts. */
export interface OpeningsBody {
  /** Bytes of the answer (canonical CBOR of the `SealedStepOpenings`). */
  size: number;
  /** Number of parts ({@link MAX_OPENING_PART_BYTES} each, the last one shorter). */
  parts: number;
  /** Hex SHA-256 of the whole answer. */
  sha256: string;
}

/** Reply to `training.challenge`. */
export const OpeningsMessage: MessageDefinition<OpeningsBody> = defineMessage(
  "training.openings",
  z.object({
    size: z.number().int().min(1).max(MAX_OPENINGS_BYTES),
    parts: z.number().int().min(1).max(Math.ceil(MAX_OPENINGS_BYTES / MAX_OPENING_PART_BYTES)),
    sha256: z.string().regex(HEX64),
  }),
);

/** Body of `training.challenge`. */
export interface ChallengeBody {
  /** The validator's signed challenge (which receipt, which steps). */
  challenge: TrainingChallenge;
}

/**
 * A validator asks a trainer to open sampled steps of one of its receipts; the answer's
 * `SealedStepOpenings` (sealed to the validator) is then fetched with `training.opening_part`.
 */
export const ChallengeMessage: MessageDefinition<ChallengeBody, OpeningsBody> = defineMessage(
  "training.challenge",
  z.object({ challenge: TrainingChallengeSchema }),
  { reply: OpeningsMessage },
);

/** Body of `training.part`. */
export interface PartBody {
  /** The piece. */
  bytes: Uint8Array;
}

/** Reply to `training.opening_part`. */
export const PartMessage: MessageDefinition<PartBody> = defineMessage(
  "training.part",
  z.object({
    bytes: z.instanceof(Uint8Array).refine((b) => b.length <= MAX_OPENING_PART_BYTES, {
      message: `part over ${MAX_OPENING_PART_BYTES} bytes`,
    }),
  }),
);

/** Body of `training.opening_part`. */
export interface OpeningPartBody {
  /** Hex id of the challenge answered. */
  challengeId: string;
  /** Which part, from 0. */
  index: number;
}

/** One piece of a sealed answer (ciphertext: only the challenging validator can open it). */
export const OpeningPartMessage: MessageDefinition<OpeningPartBody, PartBody> = defineMessage(
  "training.opening_part",
  z.object({
    challengeId: z.string().regex(HEX64),
    index: z.number().int().nonnegative(),
  }),
  { reply: PartMessage },
);

/** The round a receipt is recorded against (as the coordinator announced it). */
export interface RoundTerms {
  /** Round number. */
  round: number;
  /** CID of its start model. */
  startModel: string;
  /** Local steps H it asked for. */
  steps: number;
}

/** The wire schema of {@link RoundTerms}. */
export const RoundTermsSchema: z.ZodType<RoundTerms> = z.object({
  round: z.number().int().nonnegative(),
  startModel: cid,
  steps: z.number().int().min(1).max(100_000),
});

/** Body of `training.receipt`. */
export interface TrainingReceiptBody {
  /** The trainer's signed receipt. */
  receipt: TrainingReceipt;
  /** The round's terms. */
  terms: RoundTerms;
}

/** A training receipt, spread to every ledger (recorded pending, locking the trainer's stake). */
export const TrainingReceiptMessage: MessageDefinition<TrainingReceiptBody> = defineMessage(
  "training.receipt",
  z.object({
    receipt: TrainingReceiptSchema,
    terms: RoundTermsSchema,
  }),
);

/** Body of `training.fraud_proof`. */
export interface TrainingFraudProofBody {
  /** The validator's signed proof. */
  proof: TrainingFraudProof;
  /** Architecture of the receipt's start model (to re-run the step). */
  arch: GptArchitecture;
  /** Storage file id of the start model, for a node that does not hold it. */
  startFile?: string;
}

/** A training fraud proof, spread to every ledger; each checks it before it slashes. */
export const TrainingFraudProofMessage: MessageDefinition<TrainingFraudProofBody> = defineMessage(
  "training.fraud_proof",
  z.object({
    proof: TrainingFraudProofSchema,
    arch: ArchitectureSchema,
    startFile: cid.optional(),
  }),
);

/** One delta that went into a round's model: its trainer's receipt and where its bytes are. */
export interface OutcomeReport {
  /** The trainer's signed receipt (its `deltaHash` names the bytes). */
  receipt: TrainingReceipt;
  /** Storage file id of the encoded int8 delta. */
  deltaFile: string;
}

/** Body of `training.outcome`: how a round ended. */
export interface OutcomeBody {
  /** Round number. */
  round: number;
  /** Its start model's CID. */
  startModel: string;
  /** Storage file id of the start model's `model.onnx` (to fetch it for the audit). */
  startFile?: string;
  /** CID of the model the round produced. */
  model: string;
  /** Storage file id of its `model.onnx`. */
  file: string;
  /** Its architecture. */
  arch: GptArchitecture;
  /** Hex keys of the trainers whose deltas went into it, in the order they were averaged. */
  accepted: string[];
  /** Their receipts and delta files, in the same order. */
  reports: OutcomeReport[];
  /** Hex keys of the trainers whose deltas were dropped (convicted, faulted, refused). */
  excluded: string[];
  /** Held-out loss of the new model (nats per byte), as the coordinator measured it. */
  heldOutLoss?: number;
  /**
   * The coordinator's public key: it signs the outcome (`training/signed_outcome.ts`), and a
   * node audits only the outcomes of a coordinator staked in its ledger.
   */
  coordinator?: Uint8Array;
  /** The coordinator's signature over the rest (`outcomeSigningBytes`). */
  sig?: Uint8Array;
}

/** A round's result, spread to every node: nodes that serve models fetch and serve the new one. */
export const OutcomeMessage: MessageDefinition<OutcomeBody> = defineMessage(
  "training.outcome",
  z.object({
    round: z.number().int().nonnegative(),
    startModel: cid,
    startFile: cid.optional(),
    model: cid,
    file: cid,
    arch: ArchitectureSchema,
    accepted: z.array(hexKey).max(MAX_OUTCOME_TRAINERS),
    reports: z.array(z.object({ receipt: TrainingReceiptSchema, deltaFile: cid }))
      .max(MAX_OUTCOME_TRAINERS),
    excluded: z.array(hexKey).max(MAX_OUTCOME_TRAINERS),
    heldOutLoss: z.number().finite().optional(),
    // Optional on the wire so that a node can say why it refuses an unsigned outcome
    // (`outcome_unsigned`) instead of dropping it as malformed.
    coordinator: z.instanceof(Uint8Array).refine((b) => b.length === 32).optional(),
    sig: z.instanceof(Uint8Array).refine((b) => b.length === 64).optional(),
  }).refine((b) => new Set(b.accepted).size === b.accepted.length, "a trainer accepted twice"),
);

/** The messages of the training protocol (requests and one-way). */
export const TRAINING_PROTOCOL_MESSAGES = [
  JoinMessage,
  RoundMessage,
  ChallengeMessage,
  OpeningPartMessage,
  TrainingReceiptMessage,
  TrainingFraudProofMessage,
  OutcomeMessage,
] as const;

/**
 * Rounds, reports, challenges and their gossip. Offered by a node that trains, coordinates or
 * keeps a ledger; a node offering none of these is never sent training gossip.
 */
export const TRAINING_PROTOCOL: Protocol = defineProtocol(
  "training",
  1,
  TRAINING_PROTOCOL_MESSAGES,
);

/** A training gossip message and its body, as the NetworkActor spreads it. */
export type TrainingGossip =
  | { kind: "receipt"; body: TrainingReceiptBody }
  | { kind: "fraud_proof"; body: TrainingFraudProofBody }
  | { kind: "outcome"; body: OutcomeBody };
