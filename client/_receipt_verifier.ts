/**
 * The receipt check (`verifyReceipt`, `protocols/receipt.ts`) for a program that streams with the
 * client and runs with `--allow-net` alone, as `cli.ts infer` does: the check's CBOR encoder
 * (cbor-x) reads an environment variable as it loads, so it is loaded only where the process may
 * read that variable, and never made to ask for it (on a terminal Deno would stop and prompt; in a
 * pipe it would throw). Not part of the public API: a program of its own imports
 * `@veriflow/node/receipt`.
 *
 * @module
 */
import type { ReceiptCheck } from "../protocols/receipt.ts";

/** The environment variable the check's CBOR encoder reads as it loads. */
export const RECEIPT_CHECK_ENV_VARIABLE = "CBOR_NATIVE_ACCELERATION_DISABLED";

/** Checks a receipt as it came (JSON form) against the text it should sign. */
export type ReceiptVerifier = (receipt: unknown, output: string) => ReceiptCheck;

/**
 * The receipt check, or undefined when the process may not read
 * {@link RECEIPT_CHECK_ENV_VARIABLE} (run without `--allow-env`): then the receipt is not checked
 * here, and the caller says so.
 *
 * @example
 * ```ts ignore
 * const verify = await loadReceiptVerifier();
 * console.log(verify === undefined ? "not checked" : verify(done.receipt, text));
 * ```
 */
export async function loadReceiptVerifier(): Promise<ReceiptVerifier | undefined> {
  const allowed = Deno.permissions.querySync({ name: "env", variable: RECEIPT_CHECK_ENV_VARIABLE });
  if (allowed.state !== "granted") return undefined;
  const { verifyReceipt } = await import("../protocols/receipt.ts");
  return (receipt, output) => verifyReceipt(receipt, { output });
}
