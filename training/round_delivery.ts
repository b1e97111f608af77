/**
 * What a finished round still owes the network: the credit of the receipts whose deltas went
 * into its model (in this node's ledger) and its outcome (to every node, which audit it and
 * credit the same receipts). The RoundCoordinator saves it with the finished round, before
 * either goes out, and sends both again after a restart until they are out: a finished round is
 * paid and announced once a restart has come, never paid here and silent elsewhere.
 *
 * Sending it twice is harmless, which is what makes it safe to send again: a ledger credits a
 * receipt once (by its id; a repeat of a credited receipt changes nothing), and a validator
 * takes a round's outcome once per model.
 *
 * In the state file it is one hex string, the CBOR of the delivery: the receipts and the outcome
 * carry bytes (keys, signatures) that JSON does not, and they are checked against their wire
 * schemas when read back.
 *
 * @module
 */
import { z } from "zod";
import { decodeCbor, encodeCbor } from "../protocols/cbor.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import {
  type OutcomeBody,
  OutcomeMessage,
  type RoundTerms,
  RoundTermsSchema,
} from "../protocols/training_messages.ts";
import { type TrainingReceipt, TrainingReceiptSchema } from "./training_receipt.ts";
import { TrainingError } from "./training_error.ts";

/** A finished round's credit and outcome, not yet known to be out. */
export interface RoundDelivery {
  /** The round, as its receipts were recorded against it. */
  terms: RoundTerms;
  /** The receipts whose deltas went into its model: credited in this node's ledger. */
  credit: TrainingReceipt[];
  /** Its outcome, gossiped to every node. */
  outcome: OutcomeBody;
}

const DeliverySchema = z.object({
  terms: RoundTermsSchema,
  credit: z.array(TrainingReceiptSchema),
  outcome: z.unknown(),
});

/**
 * `delivery` as saved in the state file (hex of its CBOR).
 * @example
 * ```ts ignore
 * const text = encodeRoundDelivery(delivery);
 * decodeRoundDelivery(text).terms.round === delivery.terms.round; // true
 * ```
 */
export function encodeRoundDelivery(delivery: RoundDelivery): string {
  return toHex(encodeCbor(delivery));
}

/**
 * {@link encodeRoundDelivery}'s text back, checked against the wire schemas.
 * @throws {TrainingError} `bad_round_delivery` when it is not a delivery.
 */
export function decodeRoundDelivery(text: string): RoundDelivery {
  let value: unknown;
  try {
    value = decodeCbor(fromHex(text));
  } catch (error) {
    throw new TrainingError("bad_round_delivery", `not CBOR: ${(error as Error).message}`);
  }
  const parsed = DeliverySchema.safeParse(value);
  if (!parsed.success) {
    throw new TrainingError("bad_round_delivery", parsed.error.issues[0]?.message ?? "malformed");
  }
  const outcome = OutcomeMessage.schema.safeParse(parsed.data.outcome);
  if (!outcome.success) throw new TrainingError("bad_round_delivery", "its outcome is malformed");
  if (outcome.data.round !== parsed.data.terms.round) {
    throw new TrainingError("bad_round_delivery", "its outcome is for another round");
  }
  return { terms: parsed.data.terms, credit: parsed.data.credit, outcome: outcome.data };
}
