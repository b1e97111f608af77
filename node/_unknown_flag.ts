/**
 * How the node's commands name a flag they do not take (`start`, `ledger`). Not part of the
 * public API.
 *
 * @module
 */
import { nearestName } from "./config.ts";

/**
 * `unknown flag --dat (did you mean --data?)`: the flag, with the nearest of `known` (each
 * written `--name`) when one is near.
 */
export function unknownFlagMessage(flag: string, known: readonly string[]): string {
  const near = nearestName(flag, known);
  return `unknown flag ${flag}${near === undefined ? "" : ` (did you mean ${near}?)`}`;
}
