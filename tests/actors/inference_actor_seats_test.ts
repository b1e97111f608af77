/**
 * The InferenceActor over a real model with fewer batch seats than its `concurrency`
 * (`actors/inference_actor.ts` on `inference/text_model.ts`): a model whose batch seats one
 * sequence (`maxBatch` 1, as a graph without `attention_mask` or `position_ids` always does)
 * under the default concurrency of 4. A job started beyond the seats had its prompt read and its
 * first token sent, then stood still for the whole of another job's generation (the batcher keeps
 * a seat with the sequence holding it), long enough for a requester's stall timeout to give it up.
 * Jobs beyond the seats now wait in the actor's queue, before their first token, told their place.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  InferenceActor,
  type InferenceMessage,
  submitJob,
  type TextJobHandle,
} from "../../actors/inference_actor.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import { DEFAULT_GENERATION_PARAMS, type TextJob } from "../../protocols/job.ts";
import { StaticModels } from "../server/_fixtures.ts";

const dir = await Deno.makeTempDir({ prefix: "veriflow-seats-" });
await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
Deno.test.afterAll(() => Deno.remove(dir, { recursive: true }));

const TOKENS = 24;

for (const worker of [false, true]) {
  Deno.test(`with one batch seat and concurrency 4, no job's stream stands still mid-way for another's: the others wait before their first token (${worker ? "one model worker" : "in-thread"})`, async () => {
    const model = await TextModel.load(dir, {
      intraOpThreads: 1,
      maxBatch: 1,
      worker,
      workerCount: 1,
    });
    const system = new ActorSystem({ name: "seats" });
    try {
      assert.equal(model.batchCapacity, 1);
      const ref = await system.spawn<InferenceMessage>({
        name: "inference",
        factory: () => new InferenceActor({ models: new StaticModels([model]), concurrency: 4 }),
      });
      const jobs: TextJob[] = ["Hello", "The quick", "1 2 3"].map((prompt, i) => ({
        kind: "text",
        model: model.info.cid,
        prompt,
        params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: TOKENS, temperature: 0, stop: [] },
        nonce: `seats-${worker}-${i}`,
      }));
      const places: number[][] = jobs.map(() => []);
      const handles: TextJobHandle[] = [];
      for (const [i, job] of jobs.entries()) {
        handles.push(await submitJob(ref, job, { onQueued: (p) => places[i].push(p) }));
      }
      // Every token as it reaches its reader, in one order for all the jobs.
      const order: number[] = [];
      await Promise.all(handles.map(async (handle, i) => {
        for await (const chunk of handle.tokens as AsyncIterable<StreamedToken>) {
          assert.ok(chunk.tokenId >= 0);
          order.push(i);
        }
      }));
      assert.equal(order.length, jobs.length * TOKENS);
      // The longest a job stood still once streaming: the others' tokens between two of its own.
      const longestStill = jobs.map((_, i) => {
        let longest = 0;
        let last = -1;
        for (const [at, job] of order.entries()) {
          if (job !== i) continue;
          if (last >= 0) longest = Math.max(longest, at - last - 1);
          last = at;
        }
        return longest;
      });
      assert.deepEqual(
        longestStill,
        [0, 0, 0],
        `others' tokens inside each stream: ${longestStill}`,
      );
      // The two beyond the seat were told their places, then started (0) in the order they came.
      assert.deepEqual(places, [[], [1, 0], [2, 1, 0]]);
    } finally {
      await system.shutdown();
      await model.dispose();
    }
  });
}
