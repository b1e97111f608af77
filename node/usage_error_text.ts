/**
 * How every `cli.ts` command says its command line is wrong: one `error: …` line saying what is
 * wrong, then the command's usage (or where to read it), on stderr, and exit code 2. Work that
 * failed says `error: …` too, and exits 1 (`cli.ts`'s usage lists the codes).
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";

/** Exit code for a bad command, flag or configuration. */
export const EXIT_USAGE = 2;

/**
 * Whether `error` refuses a setting or `--data` (`invalid_config`: a `ConfigError`, or
 * `commandDataDir` refusing `~/vf`): a bad invocation, answered {@link EXIT_USAGE} in every
 * command as in `start`, not a failure of the work (exit 1).
 *
 * @example
 * ```ts
 * import { isConfigRefusal } from "./usage_error_text.ts";
 * isConfigRefusal(new Error("disk full")); // false
 * ```
 */
export function isConfigRefusal(error: unknown): error is VeriflowError {
  return error instanceof VeriflowError && error.code === "invalid_config";
}

/**
 * `error: PROBLEM`, a blank line, then `usage`: what a command prints on stderr before it exits
 * {@link EXIT_USAGE}. `usage` is the command's usage text, or a line saying where to read it
 * (`see cli.ts start --help`) when the text is too long to bury the error under.
 *
 * @example
 * ```ts
 * import { usageErrorText } from "./usage_error_text.ts";
 * usageErrorText("missing CID: the file to read", "Usage: cli.ts get CID");
 * // "error: missing CID: the file to read\n\nUsage: cli.ts get CID"
 * ```
 */
export function usageErrorText(problem: string, usage: string): string {
  return `error: ${problem}\n\n${usage}`;
}

/**
 * What is wrong with `positionals` when a command takes exactly the operands `names` (`["CID"]`,
 * each with what it is for), or `undefined` when there is one of each: `missing CID (the file to
 * read)`, or `unexpected argument b (takes CID)`.
 */
export function operandProblem(
  positionals: readonly string[],
  names: readonly (readonly [name: string, what: string])[],
): string | undefined {
  if (positionals.length < names.length) {
    const [name, what] = names[positionals.length];
    return `missing ${name} (${what})`;
  }
  if (positionals.length > names.length) {
    const extra = positionals.slice(names.length).map((arg) => JSON.stringify(arg)).join(" ");
    const takes = names.length === 0 ? "no arguments" : names.map(([name]) => name).join(" ");
    return `unexpected argument${positionals.length - names.length === 1 ? "" : "s"} ${extra} ` +
      `(takes ${takes})`;
  }
  return undefined;
}
