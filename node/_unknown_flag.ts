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
 * about positionals; any other refusal as parseArgs words it.
 */
export function flagProblem(error: unknown, flags: readonly string[]): string {
  const unknown = (error as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION"
    ? /^Unknown option '([^']+)'/.exec((error as Error).message)?.[1]
    : undefined;
  if (unknown === undefined) return (error as Error).message;
  return unknownFlagMessage(unknown, flags.map((flag) => `--${flag}`));
}
