/**
 * The root of Veriflow's typed errors.
 *
 * Every error that can cross a boundary (the wire, an actor's mailbox, the HTTP API) extends
 * {@link VeriflowError} and carries a stable `code` string, so logs, the wire and tests all name
 * the same thing. Codes are lower_snake_case and never change once published.
 *
 * @module
 */

/**
 * Base class of all typed Veriflow errors.
 *
 * @example
 * ```ts
 * import { VeriflowError } from "./errors.ts";
 *
 * class QuotaExceededError extends VeriflowError {
 *   constructor(need: number) {
 *     super("quota_exceeded", `storage quota exceeded by ${need} bytes`);
 *   }
 * }
 * const error = new QuotaExceededError(42);
 * console.log(error.code, error instanceof VeriflowError); // quota_exceeded true
 * ```
 */
export class VeriflowError extends Error {
  /** Stable, machine-readable error code (for example `frame_too_large`). */
  readonly code: string;

  /**
   * Create a typed error.
   *
   * @param code Stable machine-readable code.
   * @param message Human-readable explanation.
   * @param options Standard error options (`cause`).
   */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}
