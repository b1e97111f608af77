/**
 * The error type of the training subsystem.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";

/** A training input or artefact that does not fit (shapes, receipts, deltas). */
export class TrainingError extends VeriflowError {
  /**
   * Create the error.
   * @param code Stable code (`weights_mismatch`, `bad_delta`, `bad_receipt`, ...).
   * @param message Human-readable detail.
   */
  constructor(code: string, message: string) {
    super(code, message);
  }
}
