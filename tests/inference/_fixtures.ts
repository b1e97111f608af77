/**
 * Shared fixtures of the inference tests: each test file builds the tiny model once into its
 * own temp dir (fast, < 0.1 s) and loads it with one intra-op thread to stay light on a shared
 * machine.
 *
 * @module
 */
import { buildGptModel, type BuildGptModelOptions } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import { DEFAULT_GENERATION_PARAMS, type GenerationParams } from "../../protocols/job.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import type { ProverHook } from "../../actors/inference_models.ts";
import type { Identity } from "../../protocols/identity.ts";
import { proveJob } from "../../proof/prover.ts";

/** Build a tiny model in a fresh temp dir and load it. */
export async function tinyModel(
  options: Partial<BuildGptModelOptions> = {},
): Promise<{ model: TextModel; dir: string; cleanup: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-model-test-" });
  await buildGptModel({ size: "tiny", seed: 0, ...options, outDir: dir });
  const model = await TextModel.load(dir, { intraOpThreads: 1 });
  return {
    model,
    dir,
    cleanup: async () => {
      await model.dispose();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Generation params: the defaults overridden by `p`. */
export function params(p: Partial<GenerationParams> = {}): GenerationParams {
  return { ...DEFAULT_GENERATION_PARAMS, ...p };
}

/** Read a whole token stream. */
export async function collect(stream: ReadableStream<TokenChunk>): Promise<TokenChunk[]> {
  const chunks: TokenChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

/**
 * A prover hook that signs with `identity` on a stopped clock: ed25519 signatures are
 * deterministic, so two runs of one job get byte-identical receipts exactly when their tokens
 * and fingerprints are identical.
 */
export function stoppedClockProver(identity: Identity): ProverHook {
  return async (job, _jobId, chunks) =>
    (await proveJob(job, chunks, identity, { now: () => 0 })).receipt;
}
