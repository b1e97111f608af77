/**
 * The node's software version: `deno.json`'s, so there is one place to change it. Sent in
 * peer hellos and shown by `/healthz`-style reports.
 *
 * @module
 */
import manifest from "../deno.json" with { type: "json" };
import { VeriflowError } from "../protocols/errors.ts";
import { HELLO_VERSION_PATTERN } from "../protocols/peer_hello.ts";

/** This build's version (`deno.json` `version`). */
export const VERIFLOW_VERSION: string = manifest.version;

/**
 * This build's version breaks the hello's grammar ({@link HELLO_VERSION_PATTERN}): every peer
 * would refuse each of its hellos, so no peer would know its roles, models or load, while jobs
 * still reached it (review s77 vstr F3). Said at start, not found later in silence.
 */
export class InvalidVersionError extends VeriflowError {
  /** @param version The version `deno.json` states. */
  constructor(version: string) {
    super(
      "invalid_version",
      `this build's version ${JSON.stringify(version)} (deno.json "version") is not one peers ` +
        `take in a hello: 1 to 32 of 0-9 A-Z a-z . + - (semver-like, such as 0.1.0 or ` +
        `0.1.0-dev+3f9a2c1); change it in deno.json`,
    );
  }
}

/**
 * Check that `version` (default this build's) fits the hello's grammar.
 *
 * @example
 * ```ts
 * import { checkVersion } from "./version.ts";
 * checkVersion("0.1.0"); // fits: returns it
 * ```
 *
 * @param version The version to check.
 * @returns `version`.
 * @throws {InvalidVersionError} When it does not fit.
 */
export function checkVersion(version: string = VERIFLOW_VERSION): string {
  if (!HELLO_VERSION_PATTERN.test(version)) throw new InvalidVersionError(version);
  return version;
}
