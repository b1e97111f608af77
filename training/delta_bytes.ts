/**
 * The size of a round's delta: what every honest receipt of a round on `arch` signs as its
 * `deltaBytes`, whatever the values (`int8_delta.ts`: a byte a parameter, a float32 scale a row,
 * a header a tensor). An auditor refuses a receipt that claims another size before it fetches
 * anything (`round_audit.ts`), and the ledgers read it as the signed measure of a step's
 * parameters (`proof/_ledger_training.ts`).
 *
 * @example
 * ```ts
 * import { gptDeltaBytes } from "./delta_bytes.ts";
 * gptDeltaBytes({ numLayers: 1, hiddenSize: 32, numHeads: 2, contextLength: 64 }) > 0; // true
 * ```
 *
 * @module
 */
import type { GptArchitecture } from "../inference/model_builder.ts";
import { gptWeightShapes } from "./gpt_weights.ts";
import { int8DeltaBytes } from "./int8_delta.ts";

/** Bytes of the encoded int8 delta of a model of `arch`. */
export function gptDeltaBytes(arch: GptArchitecture): number {
  return int8DeltaBytes(gptWeightShapes(arch).map(([name, shape]) => ({ name, shape })));
}
