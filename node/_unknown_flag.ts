/**
 * How the node's commands name a flag they do not take (`start`, `ledger`, `keygen`). Not part
 * of the public API.
 *
 * @module
 */
import { nearestName } from "./nearest_name.ts";

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
 * about positionals; a flag given no value as `--data needs a value`; any other refusal as
 * parseArgs words it.
 */
export function flagProblem(error: unknown, flags: readonly string[]): string {
  const { code, message } = error as { code?: string; message: string };
  const unknown = code === "ERR_PARSE_ARGS_UNKNOWN_OPTION"
    ? /^Unknown option '([^']+)'/.exec(message)?.[1]
    : undefined;
  if (unknown !== undefined) return unknownFlagMessage(unknown, flags.map((flag) => `--${flag}`));
  // parseArgs' `Option '-o, --output <value>' argument missing`, said shorter: `-o/--output`.
  const valueless = code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE"
    ? /^Option '(?:(-\w), )?(--[^ ']+) <value>' argument missing/.exec(message)
    : null;
  if (valueless === null) return message;
  const [, short, long] = valueless;
  return `${short === undefined ? "" : `${short}/`}${long} needs a value`;
}
