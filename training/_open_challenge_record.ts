/**
 * What a TrainingValidator keeps on disk of a challenge while it is open
 * (`_training_challenge_run.ts`), so that a stop cutting it off does not leave the trainer unpaid
 * for work nobody checked: the signed challenge itself and everything its check needs (the report
 * with its delta, the round's terms, the architecture, the start file, the shard the trainer joined
 * with). Kept by receipt id beside the validator's own fraud proofs and endings (`ownProofsDir`),
 * whose own record of the receipt replaces it when the challenge ends (an ending or a proof, each
 * removed once the ledger has it), so the ValidatorActor leaves the receipt `challenged` at its own
 * start, as it does for a kept proof (`trainingProofsResumed`), and the training validator's start
 * (`_challenge_resume.ts`) asks the trainer again.
 *
 * Asked again, the trainer gets the same signed challenge, never a new one: a trainer answers one
 * challenge per validator and receipt and gives the same one the same answer
 * (`_challenge_admission.ts`), so a fresh challenge would be refused and its refusal read as
 * silence. The deadline therefore stays the one signed; a trainer asked again is judged on what it
 * answers, and on its silence only when the re-ask left it at least the shortest window a checker
 * takes (`TrainingChallengeRun.resume`: the stop may have come before it was ever asked).
 *
 * What is read back is untrusted (a damaged file, an older shape): {@link openChallengeOf} takes
 * only a challenge this validator signed, of a signed receipt, with the fields the check needs.
 * Not part of the public API.
 *
 * @module
 */
import type { GptArchitecture } from "../inference/model_builder.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import {
  ArchitectureSchema,
  RoundTermsSchema,
  type TrainingReceiptBody,
} from "../protocols/training_messages.ts";
import { challengeFitsReceipt, type TrainingChallenge } from "./training_challenge.ts";
import { type TrainingReceipt, verifyTrainingReceipt } from "./training_receipt.ts";

/** The open challenge as kept: the signed challenge and what its check needs. */
export interface OpenChallenge {
  /** The signed challenge the trainer was (or was about to be) asked. */
  challenge: TrainingChallenge;
  /** The trainer's report: its signed receipt and the delta it sent. */
  report: { receipt: TrainingReceipt; delta: Uint8Array };
  /** The round's terms. */
  terms: TrainingReceiptBody["terms"];
  /** Architecture. */
  arch: GptArchitecture;
  /** Storage file id of the start model. */
  startFile?: string;
  /** Samples in the trainer's shard, as it joined. */
  shardSize: number;
  /** Its shard root, as it joined. */
  shardRoot?: string;
}

/** The record kept on disk: tagged, so that it is told apart from a kept proof or ending. */
export interface OpenChallengeRecord {
  /** The open challenge. */
  open: OpenChallenge;
}

/** The record to keep for `open`. */
export function openChallengeRecord(open: OpenChallenge): OpenChallengeRecord {
  const { challenge, report, terms, arch, startFile, shardSize, shardRoot } = open;
  return {
    open: {
      challenge,
      report: { receipt: report.receipt, delta: report.delta },
      terms: { round: terms.round, startModel: terms.startModel, steps: terms.steps },
      arch,
      ...(startFile === undefined ? {} : { startFile }),
      shardSize,
      ...(shardRoot === undefined ? {} : { shardRoot }),
    },
  };
}

/**
 * The open challenge kept as `value` (what the validator's folder held for a receipt), or
 * undefined when `value` is not one (a proof, an ending, a damaged or forged file) or its
 * challenge is not signed by `validator` (this node's key: the trainer seals its answer to the
 * key that signed the challenge, so another key's could be neither read nor proved from here, as
 * a kept proof of another key is not resumed). Never throws.
 */
export function openChallengeOf(
  value: unknown,
  validator: Uint8Array,
): OpenChallenge | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const open = (value as Partial<OpenChallengeRecord>).open;
  if (typeof open !== "object" || open === null) return undefined;
  const { challenge, report, terms, arch, startFile, shardSize, shardRoot } = open;
  try {
    if (!(report?.delta instanceof Uint8Array)) return undefined;
    if (!verifyTrainingReceipt(report.receipt).ok) return undefined;
    if (!challengeFitsReceipt(challenge, report.receipt)) return undefined;
    if (!bytesEqual(challenge.validator, validator)) return undefined;
    if (!RoundTermsSchema.safeParse(terms).success) return undefined;
    if (!ArchitectureSchema.safeParse(arch).success) return undefined;
    if (!Number.isSafeInteger(shardSize)) return undefined;
    if (startFile !== undefined && typeof startFile !== "string") return undefined;
    if (shardRoot !== undefined && typeof shardRoot !== "string") return undefined;
  } catch {
    return undefined;
  }
  return open;
}
