/**
 * A worker without a model: an {@link InferencePort} that answers every job with the same
 * scripted tokens and a receipt its identity really signs, bound to the job exactly as a
 * prover's would be (job id, model, keyed input hash, parameters, output hash, token count).
 *
 * The simulation measures the protocol, not inference, so nothing is computed: the commitment
 * root is a hash of the output rather than a Merkle root over fingerprints. Every requester
 * check passes (signature, job binding, output hash), and every ledger records the receipt; a
 * validator without the model concludes nothing about it (`inconclusive`), as it would about a
 * real receipt for a model it does not hold.
 *
 * @example
 * ```ts
 * import { Identity } from "../../protocols/identity.ts";
 * import { ScriptedInferencePort } from "./scripted_inference_port.ts";
 * const port = new ScriptedInferencePort(Identity.generate());
 * const [model] = await port.models();
 * const handle = await port.submit({
 *   kind: "text", model: model.cid, prompt: "hi", nonce: "1",
 *   params: { maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
 * });
 * await Array.fromAsync(handle.tokens); // t0 … t3
 * (await handle.done).receipt; // signed by the port's identity
 * ```
 *
 * @module
 */
import type { Identity } from "../../protocols/identity.ts";
import { cidOf, DAG_CBOR_CODEC } from "../../protocols/cid.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { sha256Hex } from "../../protocols/hash.ts";
import { inputHashOf, signReceipt, textOutputHash } from "../../protocols/receipt.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type InferenceStats,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";

/**
 * The one model a scripted worker lists: a CID of a fixed label, never loaded by anyone. A
 * dag-cbor one, as a text model's id is: a router does not believe a text model listed under a
 * raw CID, a tensor model's (`network/model_listing.ts`).
 */
export const SCRIPTED_MODEL: ServedModelInfo = Object.freeze({
  cid: cidOf(new TextEncoder().encode("veriflow/simulation/scripted-model/v1"), DAG_CBOR_CODEC),
  name: "simulated",
  kind: "text",
  contextLength: 2048,
});

/** Positions per commitment leaf a receipt states (the prover's default). */
const COMMITMENT_CHUNK = 16;

/** Answers jobs with scripted tokens and a signed receipt; see the module doc. */
export class ScriptedInferencePort implements InferencePort {
  readonly #identity: Identity;
  readonly #stats = emptyInferenceStats();

  /** @param identity The worker's key: it signs every receipt. */
  constructor(identity: Identity) {
    this.#identity = identity;
  }

  /** Stream `maxTokens` tokens (`t0 `, `t1 `, …), then the receipt. */
  submit(job: TextJob): Promise<InferenceHandle> {
    const started = Date.now();
    const texts = Array.from({ length: job.params.maxTokens }, (_, i) => `t${i} `);
    const output = texts.join("");
    const receipt = signReceipt({
      v: 1,
      kind: "text",
      jobId: jobId(job),
      model: job.model,
      inputHash: inputHashOf(job),
      params: job.params,
      outputHash: textOutputHash(output),
      commitment: {
        scheme: "vf-fp1",
        root: sha256Hex(new TextEncoder().encode(output)),
        chunkSize: COMMITMENT_CHUNK,
        tokenBytes: 2,
      },
      tokenCount: texts.length,
      timings: { startedAt: started, firstTokenMs: 0, totalMs: 0 },
    }, this.#identity);
    this.#stats.jobsStarted++;
    const done = Promise.withResolvers<JobSummary>();
    const summary = (finishReason: JobSummary["finishReason"], completionTokens: number) => ({
      jobId: receipt.jobId,
      finishReason,
      usage: { promptTokens: job.prompt.length, completionTokens },
      timings: { queueMs: 0, ttftMs: 0, totalMs: Date.now() - started, tokensPerS: 0 },
    });
    let index = 0;
    let stream: ReadableStreamDefaultController<StreamedToken> | undefined;
    const cancel = () => {
      this.#stats.jobsCancelled++;
      done.resolve(summary("cancelled", index));
    };
    const tokens = new ReadableStream<StreamedToken>({
      start: (controller) => {
        stream = controller;
      },
      pull: (controller) => {
        const last = index === texts.length - 1;
        controller.enqueue({
          index,
          tokenId: index,
          text: texts[index],
          ...(last ? { finishReason: "length" as const } : {}),
        });
        index++;
        if (!last) return;
        controller.close();
        this.#stats.jobsFinished++;
        this.#stats.tokensGenerated += texts.length;
        done.resolve({ ...summary("length", texts.length), receipt });
      },
      cancel,
    }, { highWaterMark: 0 });
    return Promise.resolve({
      jobId: receipt.jobId,
      model: SCRIPTED_MODEL,
      promptTokens: job.prompt.length,
      tokens,
      done: done.promise,
      cancel: () => {
        if (index >= texts.length) return; // already ended
        stream?.error(new Error("cancelled"));
        cancel();
        index = texts.length;
      },
    });
  }

  /** The one scripted model. */
  models(): Promise<readonly ServedModelInfo[]> {
    return Promise.resolve([SCRIPTED_MODEL]);
  }

  /** Jobs answered. */
  stats(): Promise<InferenceStats> {
    return Promise.resolve({ ...this.#stats });
  }
}
