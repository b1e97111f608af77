/**
 * A training round's model that the node retires (`node/_round_model_retirement.ts` unregisters it)
 * leaves no lane behind in the InferenceActor (`actors/inference_actor.ts`): each model a job named
 * kept its queue, its seats (counted in the node's `slots`) and a capacity listener for the node's
 * life, one more per round. A lane goes once its model is no longer listed by the source and no job
 * of it runs or waits; a job still running on a retired model keeps its lane until it ends.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import {
  InferenceActor,
  type InferenceMessage,
  type InferenceStats,
  submitJob,
  type TextJobHandle,
} from "../../actors/inference_actor.ts";
import type { GenerativeModel, ModelSource } from "../../actors/inference_models.ts";
import type { TextJob } from "../../protocols/job.ts";
import { UnknownModelError } from "../../inference/errors.ts";
import { params, ScriptedModel } from "../server/_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";

/** Jobs a lane runs at once (the scripted models report no batch seats): a lane's `slots`. */
const CONCURRENCY = 2;

/** A scripted round model that counts its capacity listeners, as a `TextModel` takes them. */
class RoundModel extends ScriptedModel {
  listening = 0;
  onCapacityChange(_listener: () => void): () => void {
    this.listening++;
    return () => void this.listening--;
  }
}

/** The node's models as the registry lists them: a round's model can be unregistered. */
class RetiringModels implements ModelSource {
  readonly #served = new Map<string, GenerativeModel>();
  add(model: GenerativeModel): void {
    this.#served.set(model.info.cid, model);
  }
  unregister(cid: string): void {
    this.#served.delete(cid);
  }
  get(cid: string): Promise<GenerativeModel | undefined> {
    return Promise.resolve(this.#served.get(cid));
  }
  list(): { cid: string }[] {
    return [...this.#served.keys()].map((cid) => ({ cid }));
  }
}

let nonce = 0;
function job(model: string): TextJob {
  return {
    kind: "text",
    model,
    prompt: "x",
    params: params({ maxTokens: 2 }),
    nonce: `n${++nonce}`,
  };
}

async function drain(handle: TextJobHandle): Promise<void> {
  for await (const _ of handle.tokens) { /* read to the end */ }
  await handle.done;
}

async function withActor(
  body: (ref: ActorRef<InferenceMessage>, models: RetiringModels) => Promise<void>,
): Promise<void> {
  const system = new ActorSystem({ name: "retired-lanes-test" });
  const models = new RetiringModels();
  const ref = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () => new InferenceActor({ models, concurrency: CONCURRENCY }),
  });
  try {
    await body(ref, models);
  } finally {
    await system.shutdown();
  }
}

/** The lanes the actor keeps, counted by their seats in the stats of every lane. */
async function lanes(ref: ActorRef<InferenceMessage>): Promise<number> {
  const stats = await ref.ask<InferenceStats>({ type: "stats" });
  return stats.slots / CONCURRENCY;
}

Deno.test("a retired round model's lane is dropped with its capacity listener: lanes stay one per served model, not one per round", async () => {
  await withActor(async (ref, models) => {
    const rounds = [0, 1, 2, 3].map((i) => new RoundModel({ name: `round${i}` }));
    for (const model of rounds) {
      models.add(model);
      await drain(await submitJob(ref, job(model.info.cid)));
    }
    assert.equal(await lanes(ref), 4, "one lane per model a job named");
    // The retirement unregisters the older rounds' models (the newest two stay).
    models.unregister(rounds[0].info.cid);
    models.unregister(rounds[1].info.cid);
    assert.equal(await lanes(ref), 2, "the retired models' lanes are gone");
    assert.deepEqual(rounds.map((m) => m.listening), [0, 0, 1, 1], "their listeners stopped");
    await assert.rejects(
      submitJob(ref, job(rounds[0].info.cid)),
      UnknownModelError,
      "a retired model's job is refused",
    );
    assert.equal(await lanes(ref), 2, "and makes no lane");
  });
});

Deno.test("a job still running on a retired round model keeps its lane until it ends", async () => {
  await withActor(async (ref, models) => {
    const old = new RoundModel({ name: "old", gated: true });
    const current = new RoundModel({ name: "current" });
    models.add(old);
    models.add(current);
    const running = await submitJob(ref, job(old.info.cid));
    await drain(await submitJob(ref, job(current.info.cid)));
    models.unregister(old.info.cid);
    assert.equal(await lanes(ref), 2, "its job runs: the lane stays");
    assert.equal(old.listening, 1);
    old.release(1e6);
    await drain(running);
    // The lane goes when the job's end reaches the actor (its `job_ended`, after `done`).
    await eventually(async () => (await lanes(ref)) === 1, "the lane dropped once the job ended");
    assert.equal(old.listening, 0);
  });
});
