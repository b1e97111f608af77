/**
 * The node's software version: `deno.json`'s, so there is one place to change it. Sent in
 * peer hellos and shown by `/healthz`-style reports.
 *
 * @module
 */
import manifest from "../deno.json" with { type: "json" };

/** This build's version (`deno.json` `version`). */
export const VERIFLOW_VERSION: string = manifest.version;
