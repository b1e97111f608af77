/**
 * What the storage commands (`storage_commands.ts`, `exchange_commands.ts`) share: argument
 * parsing with a usage text, and one mapping from failures to exit codes — 0 done, 1 a storage
 * failure (`error [code]: message`), 2 a usage error.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { VeriflowError } from "../protocols/errors.ts";

/** A bad command line: its message is the usage text or what is wrong; exit code 2. */
export class UsageError extends VeriflowError {
  /** @param message What is wrong, or the usage text. */
  constructor(message: string) {
    super("usage", message);
  }
}

/** Parsed arguments: option values and positionals. */
export type ParsedArgs = { values: Record<string, unknown>; positionals: string[] };

/**
 * Parse `args` against `options`; on `--help`/`-h` (when `options` has no `help` of its own) or
 * a bad argument, print `text` and answer the exit code instead.
 */
export function parseCommand(
  args: string[],
  options: Record<string, { type: "string" | "boolean"; short?: string }>,
  text: string,
): ParsedArgs | number {
  if (!("help" in options) && (args.includes("--help") || args.includes("-h"))) {
    return usage(text, 0);
  }
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true }) as ParsedArgs;
  } catch (error) {
    console.error((error as Error).message);
    return usage(text, 2);
  }
}

/** Print `text` (stdout for help, stderr otherwise) and answer `code`. */
export function usage(text: string, code: number): number {
  (code === 0 ? console.log : console.error)(text);
  return code;
}

/** Run a command's body and turn its failure into an exit code and one line on stderr. */
export async function reportErrors(body: () => Promise<void>): Promise<number> {
  try {
    await body();
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(error.message);
      return 2;
    }
    if (error instanceof VeriflowError) {
      console.error(`error [${error.code}]: ${error.message}`);
      return 1;
    }
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) {
      console.error(`error: ${(error as Error).message}`);
      return 1;
    }
    throw error;
  }
}

/**
 * Write `stream` to `output`: stdout for `-` or none, else a file written beside the target and
 * renamed over it at the end. A command that fails midway (a corrupt chunk, a wrong key, an
 * expired link) leaves no half-written file that looks complete, and an existing file is
 * replaced whole, never overwritten in place with its old tail left behind.
 */
export async function writeOutput(
  stream: ReadableStream<Uint8Array>,
  output: string | undefined,
): Promise<void> {
  if (output === undefined || output === "-") {
    await stream.pipeTo(Deno.stdout.writable, { preventClose: true });
    return;
  }
  const temp = `${output}.${crypto.randomUUID()}.part`;
  try {
    const file = await Deno.open(temp, { write: true, createNew: true });
    await stream.pipeTo(file.writable);
    await Deno.rename(temp, output);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}
