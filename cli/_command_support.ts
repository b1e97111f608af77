/**
 * What the storage commands (`put_command.ts`, `get_command.ts`, `ls_command.ts`, `gc_command.ts`,
 * `exchange_commands.ts`) share: argument parsing with a usage text, and one mapping from failures
 * to exit codes — 0 done (also when the reader of stdout stopped reading: `get CID | head -c 10`),
 * 1 a storage failure (`error [code]: message`) or one the OS reported (`error: message; what to
 * do`, naming the path, even for the errors Deno has no class for, such as a read-only file
 * system), 2 a usage error, 130 interrupted (Ctrl-C while writing a file: the partial copy is
 * removed).
 *
 * @module
 */
import { listenForStopSignals } from "../node/stop_signals.ts";
import { notWholeNumber, parseWholeNumber } from "../node/number_flags.ts";
import { flagProblem } from "../node/_unknown_flag.ts";
import {
  EXIT_USAGE,
  isConfigRefusal,
  operandProblem,
  usageErrorText,
} from "../node/usage_error_text.ts";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { VeriflowError } from "../protocols/errors.ts";
import { OWNER_FILE_MODE } from "../protocols/owner_only.ts";
import { formatBytes } from "../storage/progress_bar.ts";

/**
 * A bad command line: its message says what is wrong; exit code 2, the message on an `error:`
 * line with where to read the command's usage (see {@link reportErrors}).
 */
export class UsageError extends VeriflowError {
  /** @param message What is wrong. */
  constructor(message: string) {
    super("usage", message);
  }
}

/** A command stopped by a stop signal (Ctrl-C, SIGTERM, SIGHUP); exit code 130. */
export class InterruptedError extends VeriflowError {
  /** @param message What was left undone. */
  constructor(message: string) {
    super("interrupted", message);
  }
}

/** Calls `listener` on each stop signal; returns a function that stops listening. */
export type OnStopSignal = (listener: () => void) => () => void;

/**
 * The process's stop signals, SIGINT (Ctrl-C), SIGTERM and SIGHUP (a closed terminal or SSH
 * session; SIGINT and SIGBREAK on Windows), as `cli.ts start` listens for them
 * (`listenForStopSignals` in node/stop_signals.ts). While a listener is registered, the signal no
 * longer kills the process: the command cleans up and exits 130 itself.
 */
export const processStopSignals: OnStopSignal = listenForStopSignals;

/** What a command takes from the process besides its arguments; tests substitute their own. */
export interface CommandIo {
  /** Stop signals (default {@link processStopSignals}). */
  onStopSignal?: OnStopSignal;
}

/** Exit code after a stop signal: 128 + SIGINT, as shells report. */
export const EXIT_INTERRUPTED = 130;

/** Whether `error` is one of Deno's file-system and I/O errors (`Deno.errors.*`). */
export function isDenoError(error: unknown): error is Error {
  return Object.values(Deno.errors).some((type) => error instanceof type);
}

/**
 * Whether `error` is a failure the OS reported: one of `Deno.errors.*`, or a plain `Error` whose
 * message carries `(os error N)` — what Deno throws for the errors it has no class for (EROFS,
 * EIO, EDQUOT, ...), which would otherwise escape as a stack trace.
 */
export function isOsError(error: unknown): error is Error {
  return isDenoError(error) || (error instanceof Error && OS_ERROR.test(error.message));
}

/** How Deno's messages name an OS error: "Read-only file system (os error 30): open 'x'". */
const OS_ERROR = /\(os error \d+\)/;

/** What to do about an OS error, by its POSIX name (Deno sets `code` on the errors it throws). */
const OS_ERROR_HINTS: Record<string, string> = {
  EROFS: "give a --data DIR (or -o FILE) on a writable file system, or remount it read-write",
  EACCES: "check that this user may write there (--data DIR, -o FILE)",
  EPERM: "check that this user may write there (--data DIR, -o FILE)",
  ENOSPC: "the disk is full: free space (`cli.ts gc` removes what nothing references)",
  EDQUOT: "this user's disk quota is used up: free space or raise the quota",
  EIO: "the disk reported an I/O error: check it (dmesg) before trusting what is on it",
};

/** The default hint for an OS error Deno has no class for. */
const OS_ERROR_HINT = "check that the data directory (--data) and the paths given are on a " +
  "writable, working file system";

/** `error`'s message with what to do about it, for an OS error (see {@link isOsError}). */
function osErrorLine(error: Error): string {
  const code = (error as { code?: unknown }).code;
  const hint = (typeof code === "string" ? OS_ERROR_HINTS[code] : undefined) ??
    (isDenoError(error) ? undefined : OS_ERROR_HINT);
  return hint === undefined ? error.message : `${error.message}; ${hint}`;
}

/**
 * `error` of a put that failed after storing `stored` (its `PendingPut.stored`), with
 * what that leaves behind and how to free it: those objects stay until a GC takes them, and a
 * GC keeps them for its grace period unless told otherwise. Nothing to add when it stored none.
 * Its message is completed in place, as {@link writeOutput} names its file.
 */
export function failedPut(error: unknown, stored: { objects: number; bytes: number }): unknown {
  if (stored.objects === 0 || !(error instanceof Error)) return error;
  error.message += `; the ${stored.objects} objects (${formatBytes(stored.bytes)}) this put ` +
    `stored before it stay on disk until a GC removes them: \`cli.ts gc --grace-ms 0\` now if no ` +
    `other put is running, or \`cli.ts gc\` once they are older than its grace period (10 min)`;
  return error;
}

/** Parsed arguments: option values and positionals. */
export type ParsedArgs = { values: Record<string, unknown>; positionals: string[] };

/**
 * Parse `args` against `options`; on `--help`/`-h` (when `options` has no `help` of its own)
 * print `text` and answer 0; on a bad argument, print what is wrong as an `error:` line, then
 * `text`, and answer 2.
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
    // `--privat` is told `did you mean --private?`, as `start` tells `--prot`.
    console.error(
      usageErrorText(flagProblem(error, [...Object.keys(options), "help"], args), text),
    );
    return EXIT_USAGE;
  }
}

/**
 * When `positionals` are not exactly the operands `names` (each with what it is for), print what
 * is wrong as an `error:` line, then `text`, and answer 2; `undefined` when they are.
 */
export function wrongOperands(
  positionals: readonly string[],
  names: readonly (readonly [name: string, what: string])[],
  text: string,
): number | undefined {
  const problem = operandProblem(positionals, names);
  if (problem === undefined) return undefined;
  console.error(usageErrorText(problem, text));
  return EXIT_USAGE;
}

/**
 * The value of number flag `name` (`--quota`, `--grace-ms`), read as `start` reads its numbers:
 * decimal digits only. `Number()` would take `""` (an unset shell variable) as 0, a grace period
 * that collects what a put is still recording, and `0x10` or `1e3` as numbers nobody wrote.
 *
 * @throws {UsageError} naming the flag, when `text` is not a whole number.
 */
export function wholeNumberFlag(name: string, text: unknown): number | undefined {
  if (text === undefined) return undefined;
  const value = parseWholeNumber(String(text));
  if (value === undefined) throw new UsageError(notWholeNumber(name, String(text)));
  return value;
}

/** `1 file`, `2 files`: a count and its noun, in the plural unless it is one. */
export function countOf(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/** Print `text` (stdout for help, stderr otherwise) and answer `code`. */
export function usage(text: string, code: number): number {
  (code === 0 ? console.log : console.error)(text);
  return code;
}

/**
 * Run a command's body and turn its failure into an exit code and one line on stderr. A
 * {@link UsageError}'s line (a flag's value the body refused: `--range 5-1`) ends with where to
 * read the usage of `command` (`put`), when given: kept to one line, as every other failure is.
 */
export async function reportErrors(
  body: () => Promise<void>,
  command?: string,
): Promise<number> {
  try {
    await body();
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      const hint = command === undefined ? "" : ` (see cli.ts ${command} --help)`;
      console.error(`error: ${error.message}${hint}`);
      return EXIT_USAGE;
    }
    if (error instanceof InterruptedError) {
      console.error(`interrupted: ${error.message}`);
      return EXIT_INTERRUPTED;
    }
    if (error instanceof VeriflowError) {
      console.error(`error [${error.code}]: ${error.message}`);
      // A refused --data (`~/vf`, `commandDataDir`) is a bad invocation: 2, as `start` says it.
      return isConfigRefusal(error) ? EXIT_USAGE : 1;
    }
    // Whoever reads stdout stopped reading (`| head`): they chose to, nothing failed.
    if (error instanceof Deno.errors.BrokenPipe) return 0;
    // Deno's messages name the path: "Not a directory (os error 20): open 'x/y'".
    if (isOsError(error)) {
      console.error(`error: ${osErrorLine(error)}`);
      return 1;
    }
    throw error;
  }
}

/**
 * Write `stream` to `output`: stdout for `-` or none, else a file written beside the target and
 * renamed over it at the end. A command that fails midway (a corrupt chunk, a wrong key, an
 * expired link) or is stopped (Ctrl-C, SIGTERM, SIGHUP: then {@link InterruptedError}) leaves no
 * half-written file that looks complete and no temporary file, and an existing file is replaced
 * whole, never overwritten in place with its old tail left behind. On stdout, a reader that
 * stops reading (`| head -c 10`) ends the write quietly.
 *
 * The file keeps the mode an existing one had (the temporary file took the default, 0644 under
 * the usual umask, so an owner-only file was replaced by one everyone could read); with
 * `options.private` (a private file's plaintext) a new one is 0600, and so is the temporary
 * file while it is written.
 *
 * @throws {Deno.errors.IsADirectory} `output` is a directory.
 * @throws {InterruptedError} a stop signal came before the file was complete.
 */
export async function writeOutput(
  stream: ReadableStream<Uint8Array>,
  output: string | undefined,
  io: CommandIo = {},
  options?: { private?: boolean },
): Promise<void> {
  if (output === undefined || output === "-") {
    try {
      await stream.pipeTo(Deno.stdout.writable, { preventClose: true });
    } catch (error) {
      if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
    }
    return;
  }
  if (output.endsWith("/") || await isDirectory(output)) {
    await stream.cancel();
    throw new Deno.errors.IsADirectory(
      `-o ${output} names a directory: give the file to write, like ${
        output.replace(/\/+$/, "")
      }/NAME`,
    );
  }
  // Named apart from `output`, not after it: its name plus a suffix could pass the 255 bytes a
  // file name may have although `output`'s does not.
  const temp = join(dirname(output), `.veriflow-${crypto.randomUUID()}.part`);
  const interrupt = new AbortController();
  const stopListening = (io.onStopSignal ?? processStopSignals)(() =>
    interrupt.abort(new InterruptedError(`${output} was not written (its partial copy is removed)`))
  );
  try {
    interrupt.signal.throwIfAborted();
    const existing = await modeOf(output);
    const ownerOnly = options?.private === true || existing !== undefined;
    const file = await Deno.open(temp, {
      write: true,
      createNew: true,
      ...(ownerOnly ? { mode: OWNER_FILE_MODE } : {}),
    });
    await stream.pipeTo(file.writable, { signal: interrupt.signal });
    interrupt.signal.throwIfAborted();
    if (existing !== undefined) await Deno.chmod(temp, existing);
    await Deno.rename(temp, output);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    if (interrupt.signal.aborted) throw interrupt.signal.reason;
    // Deno's message names the temporary file; say which file the command was writing.
    if (isOsError(error)) error.message = `cannot write ${output}: ${error.message}`;
    throw error;
  } finally {
    stopListening();
  }
}

/** The permission bits of the file at `path`; `undefined` when none is there (or no modes). */
async function modeOf(path: string): Promise<number | undefined> {
  if (Deno.build.os === "windows") return undefined;
  try {
    const mode = (await Deno.stat(path)).mode;
    return mode === null ? undefined : mode & 0o7777;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false; // not there (yet): it is a file to write
  }
}
