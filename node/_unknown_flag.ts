/**
 * How the node's commands name a flag they do not take (`start`, `ledger`, `keygen`). Not part
 * of the public API.
 *
 * @module
 */
import { nearestName } from "./nearest_name.ts";
import { notDecimalNumber, type NumberRange } from "./number_flags.ts";

/**
 * `unknown flag --dat (did you mean --data?)`: the flag, with the nearest of `known` (each
 * written `--name`) when one is near.
 */
export function unknownFlagMessage(flag: string, known: readonly string[]): string {
  const near = nearestName(flag, known);
  return `unknown flag ${flag}${near === undefined ? "" : ` (did you mean ${near}?)`}`;
}

/**
 * What parseArgs refused, said as `start` says it (`start` checks its tokens itself): an unknown
 * flag with the one it is near (`--dat` → `did you mean --data?`), rather than parseArgs' advice
 * about positionals; a flag given no value as `--data needs a value`; a flag given a value led by
 * `-` (`--port -1`) in one line ({@link ledByDash}); any other refusal as parseArgs words it.
 *
 * @param args The arguments parsed, when the caller has them: they give the value led by `-`.
 * @param ranges The number flags (by name, without `--`) with a range of their own, named when
 *   such a flag is given a negative number ({@link NumberRange}).
 */
export function flagProblem(
  error: unknown,
  flags: readonly string[],
  args?: readonly string[],
  ranges: Readonly<Record<string, NumberRange | undefined>> = {},
): string {
  const { code, message } = error as { code?: string; message: string };
  const unknown = code === "ERR_PARSE_ARGS_UNKNOWN_OPTION"
    ? /^Unknown option '([^']+)'/.exec(message)?.[1]
    : undefined;
  if (unknown !== undefined) return unknownFlagMessage(unknown, flags.map((flag) => `--${flag}`));
  // parseArgs' three lines (`Option '--port' argument is ambiguous.` / `Did you forget …` / `To
  // specify …`) for `--port -1`: the operator meant -1, and is told what `--port=-1` is told.
  const ambiguous = code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE"
    ? /^Option '(-[^ ']+)' argument is ambiguous/.exec(message)?.[1]
    : undefined;
  if (ambiguous !== undefined) return ledByDash(ambiguous, args, ranges);
  // parseArgs' `Option '-o, --output <value>' argument missing`, said shorter: `-o/--output`.
  const valueless = code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE"
    ? /^Option '(?:(-\w), )?(--[^ ']+) <value>' argument missing/.exec(message)
    : null;
  if (valueless === null) return message;
  const [, short, long] = valueless;
  return `${short === undefined ? "" : `${short}/`}${long} needs a value`;
}

/** A negative number in plain decimal notation (`-1`, `-0.5`): a sign on a number setting. */
const NEGATIVE_NUMBER = /^-(\d+(\.\d*)?|\.\d+)$/;

/**
 * One line for `flag` given, as a separate argument, a value led by `-` (which parseArgs takes
 * for a flag): a negative number is refused as `--flag=-1` is (`must not be negative (0 or
 * more)`, or its own range from `ranges`); any other value, or one the caller did not pass in
 * `args`, is shown how to write it.
 */
function ledByDash(
  flag: string,
  args: readonly string[] | undefined,
  ranges: Readonly<Record<string, NumberRange | undefined>>,
): string {
  const at = args?.lastIndexOf(flag) ?? -1;
  const value = at >= 0 ? args?.[at + 1] : undefined;
  if (value !== undefined && NEGATIVE_NUMBER.test(value)) {
    return notDecimalNumber(flag, value, ranges[flag.replace(/^-+/, "")]);
  }
  const shown = value ?? "-VALUE";
  return `${flag} ${shown}: a value led by - reads as a flag; write ${flag}=${shown} if you mean it`;
}
