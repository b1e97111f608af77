/**
 * Review s52 of the router's choice of a job's first worker (`NetworkInferencePort`): what a
 * worker says before its `start` when it turns a job away. A refusal "about the job itself"
 * (bad parameters, a prompt too long for the model, ...) went to the client at once, and so did
 * any code the router did not know as a refusal: one hostile worker, picked first for the room
 * its hellos claim, turned away every client's job with an error of its choosing (a 400, or a
 * 401 "invalid API key" to a client whose key was good), was never asked last nor kept off the
 * model for it, and an honest worker with room stood by.
 *
 * Workers are in-memory connections (`_hostile_worker_fixture.ts`); the hostile one answers
 * every `inference.submit` with an error frame of the code a test gives.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { SubmitMessage } from "../../protocols/inference_messages.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import {
  Honest,
  honestWorker,
  jobFor,
  linked,
  routerPort,
  type TestWorker,
  TOKENS,
} from "./_hostile_worker_fixture.ts";
import { Workers } from "./_router_doubles.ts";

/** A worker that refuses every job before its start with an error frame of `code`. */
function refuser(code: string): Promise<TestWorker> {
  return linked((atWorker, submissions) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      throw new VeriflowError(code, `refused (${code})`);
    });
  });
}

/** A router whose network picks `first`, then an honest worker (or a second refuser). */
async function setup(first: TestWorker, second?: TestWorker) {
  const system = new ActorSystem({ name: "review-s52-claims" });
  const honestPort = new Honest();
  const other = second ?? await honestWorker(honestPort);
  const workers = new Workers([first.toWorker, other.toWorker]);
  const port = await routerPort(system, workers);
  /** Run one job to its end: how many tokens the client got, or the code it was refused with. */
  const run = async (nonce: string) => {
    let handle;
    try {
      handle = await port.submit(jobFor(nonce));
    } catch (error) {
      return { refused: (error as VeriflowError).code };
    }
    let got = 0;
    for await (const _ of handle.tokens) got++;
    return { got, finishReason: (await handle.done).finishReason };
  };
  const close = async () => {
    await first.close();
    await other.close();
    await system.shutdown();
  };
  return { run, honestPort, workers, close };
}

const RAN = { got: TOKENS, finishReason: "length" };

for (const code of ["context_length_exceeded", "invalid_generation_params", "wrong_model_kind"]) {
  Deno.test(`s52: a worker that calls every job bad before its start (${code}) does not end the client's job while another starts it; the claim proven false, it is kept off the model`, async () => {
    const hostile = await refuser(code);
    const t = await setup(hostile);
    try {
      assert.deepEqual(await t.run("a"), RAN, "the job ran on the honest worker");
      assert.equal(t.honestPort.resumes.length, 1);
      assert.ok(t.workers.avoided.has(hostile.key), "the false claimant was kept off the model");
      assert.deepEqual(await t.run("b"), RAN);
      assert.equal(hostile.submissions.length, 1, "the claimant was asked first again");
    } finally {
      await t.close();
    }
  });
}

for (const code of ["invalid_api_key", "no_such_code", "job_cancelled"]) {
  Deno.test(`s52: a worker's refusal before its start with a code that is neither about the job nor a known refusal (${code}) is its own: the job runs on the next worker, and it is kept off the model`, async () => {
    const hostile = await refuser(code);
    const t = await setup(hostile);
    try {
      assert.deepEqual(await t.run("a"), RAN, `the client was told ${code}`);
      assert.ok(t.workers.avoided.has(hostile.key), "the worker was kept off the model");
      assert.deepEqual(await t.run("b"), RAN);
      assert.equal(hostile.submissions.length, 1, "it was asked first again");
    } finally {
      await t.close();
    }
  });
}

Deno.test("s52: a job every worker calls bad (context_length_exceeded) is refused with that code, and no worker is kept off the model for it", async () => {
  const a = await refuser("context_length_exceeded");
  const b = await refuser("context_length_exceeded");
  const t = await setup(a, b);
  try {
    assert.deepEqual(await t.run("a"), { refused: "context_length_exceeded" });
    assert.equal(a.submissions.length + b.submissions.length, 2, "each asked once");
    assert.deepEqual([...t.workers.avoided], [], "a true claim costs its worker nothing");
  } finally {
    await t.close();
  }
});
