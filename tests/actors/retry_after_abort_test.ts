/**
 * A node's own client whose request is aborted mid-stream (the edge aborts the job when an HTTP
 * client's connection goes) can submit the same job again on that node (review s77 F3: the abort
 * signed a `cancelled` receipt, and the node refused the job again as `duplicate_job` for good).
 * A node's own client carries no assignment, so such a receipt could earn nothing: none is
 * signed. Only a peer's explicit cancel of a job another node can assign signs one
 * (`cancel_receipt_test.ts`).
 *
 * @module
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage, submitJob } from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { loadTinyModel, params, StaticModels } from "../server/_fixtures.ts";

/** Tokens the client reads before its request is aborted. */
const READ = 3;
/** Tokens of the job: more than are read, so it is mid-stream when aborted. */
const MAX_TOKENS = 50;

/** A node with a prover on the tiny model. */
async function node(name: string) {
  const model = await loadTinyModel();
  const system = new ActorSystem({ name });
  const prover = await system.spawn<ProverMessage>({
    name: "prover",
    factory: () => new ProverActor({ identity: Identity.generate() }),
  });
  const inference = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () =>
      new InferenceActor({ models: new StaticModels([model]), prover: proverHook(prover) }),
  });
  return { model, system, inference };
}

for (const names of ["no requester", "another node as requester"] as const) {
  Deno.test(`a node's own client's job aborted after ${READ} tokens (${names}) signs no receipt and can be submitted again`, async () => {
    const { model, system, inference } = await node("retry-after-abort");
    try {
      const job: TextJob = {
        kind: "text",
        model: model.info.cid,
        prompt: "Hello there",
        params: params({ maxTokens: MAX_TOKENS, temperature: 0.8, seed: 7, stop: [] }),
        nonce: "retry-after-abort",
      };
      // Even a job that names a requester: the node's own client's abort is no peer's cancel.
      if (names === "another node as requester") {
        job.requester = toHex(Identity.generate().publicKey);
      }
      const abort = new AbortController();
      const first = await submitJob(inference, job, { signal: abort.signal });
      const reader = first.tokens.getReader();
      for (let i = 0; i < READ; i++) assert(!(await reader.read()).done);
      abort.abort(); // what the edge does when the client's connection goes
      const ended = await first.done;
      assertEquals(ended.finishReason, "cancelled");
      assertEquals(ended.receipt, undefined, "the abort signed a receipt");
      const retry = await submitJob(inference, job);
      let tokens = 0;
      for await (const _ of retry.tokens) tokens++;
      const done = await retry.done;
      assertEquals(tokens, MAX_TOKENS);
      assert(done.receipt !== undefined, "the retry's finished run has its receipt");
    } finally {
      await system.shutdown();
    }
  });
}

Deno.test("a node's own client that cancels its stream after tokens (any reason but a peer's cancel) signs no receipt, and the job runs again", async () => {
  const { model, system, inference } = await node("retry-after-stream-cancel");
  try {
    const job: TextJob = {
      kind: "text",
      model: model.info.cid,
      prompt: "Hello there",
      params: params({ maxTokens: MAX_TOKENS, temperature: 0.8, seed: 7, stop: [] }),
      nonce: "retry-after-stream-cancel",
      requester: toHex(Identity.generate().publicKey),
    };
    const first = await submitJob(inference, job);
    const reader = first.tokens.getReader();
    for (let i = 0; i < READ; i++) assert(!(await reader.read()).done);
    await reader.cancel(new Error("the HTTP client went away"));
    assertEquals((await first.done).receipt, undefined, "the cancel signed a receipt");
    const retry = await submitJob(inference, job);
    for await (const _ of retry.tokens) { /* drained */ }
    assert((await retry.done).receipt !== undefined);
  } finally {
    await system.shutdown();
  }
});
