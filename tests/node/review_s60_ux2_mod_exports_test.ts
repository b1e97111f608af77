/**
 * What docs/API.md's sampling table names is importable from `mod.ts` (review stop 60, `ux2`):
 * `MIN_SAMPLING_TEMPERATURE`, the temperature below which a job is greedy.
 */
import assert from "node:assert/strict";
import * as veriflow from "../../mod.ts";
import { MIN_SAMPLING_TEMPERATURE } from "../../protocols/job.ts";

Deno.test("mod.ts exports MIN_SAMPLING_TEMPERATURE, the value the sampler uses", () => {
  assert.equal(
    (veriflow as Record<string, unknown>).MIN_SAMPLING_TEMPERATURE,
    MIN_SAMPLING_TEMPERATURE,
  );
});
