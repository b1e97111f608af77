/**
 * A job whose worker's connection dropped mid-stream, with no other worker to take it over, fails
 * for the client; once the worker is back, the client's retry of the same job (same nonce: the
 * same job id through the same router) runs there (review s77 F3: the worker had signed a
 * `cancelled` receipt over the tokens it sent when its connection closed, and refused the retry
 * as `duplicate_job` for good). A lost connection signs nothing: only a peer's explicit cancel of
 * a job another node can assign does (`actors/inference_job.ts`).
 *
 * @module
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { TextJob } from "../../protocols/job.ts";
import { params } from "../server/_fixtures.ts";
import { toHex } from "../../protocols/hash.ts";
import { spawnRouter, Workers } from "./_router_doubles.ts";
import { actorWorker } from "./_actor_worker.ts";

/** Tokens the client reads before the worker's connection drops. */
const READ = 3;
/** Tokens of the job: many more than are read, so it is mid-stream when the connection drops. */
const MAX_TOKENS = 200;

/** The text of `stream`, and the code it failed with, if it did. */
async function readAll(stream: ReadableStream<{ text: string }>) {
  let text = "";
  let failed: string | undefined;
  try {
    for await (const token of stream) text += token.text;
  } catch (error) {
    failed = (error as { code?: string }).code ?? String(error);
  }
  return { text, failed };
}

Deno.test("a client's retry of a job whose worker's connection dropped mid-stream runs on that worker once it is back (no duplicate_job), and the lost run kept no receipt", async () => {
  const worker = await actorWorker("retry-after-drop-worker");
  const system = new ActorSystem({ name: "retry-after-drop-router" });
  try {
    const workers = new Workers([worker.link.to], [worker.model.info]);
    const router = await spawnRouter(system, workers, { tokensPerEvent: 1 });
    const job: TextJob = {
      kind: "text",
      model: worker.model.info.cid,
      prompt: "Hello there",
      params: params({ maxTokens: MAX_TOKENS, temperature: 0.8, seed: 7, stop: [] }),
      nonce: "retry-after-drop",
    };
    const first = await router.port.submit(job);
    const reader = first.tokens.getReader();
    for (let i = 0; i < READ; i++) assert(!(await reader.read()).done);
    // The worker's connection drops (a network blip); nobody else serves the model.
    await worker.link.at.close();
    reader.releaseLock();
    const lost = await readAll(first.tokens);
    assert(lost.failed !== undefined, "the job went on after its worker's connection dropped");
    const lostEnd = await first.done;
    assert(lostEnd.finishReason !== "stop" && lostEnd.finishReason !== "length");
    // The worker is back on a new connection; the client retries the same request.
    const again = await worker.connect();
    workers.connections.splice(0, workers.connections.length, again.to);
    const retry = await router.port.submit(job);
    // The lost run signed nothing (it had ended before the retry was taken: a running job is
    // refused): the worker kept no receipt for the job's requester to fetch. Read before the
    // retry's end, whose receipt the worker keeps too (review s78 vfinal, F1).
    const requester = toHex(worker.link.at.peerKey!);
    assertEquals(worker.unsent.get(requester, first.jobId), undefined);
    const got = await readAll(retry.tokens);
    const done = await retry.done;
    assertEquals(got.failed, undefined, "the client's retry of the job was refused");
    assertEquals(done.error?.code, undefined);
    assertEquals(done.usage.completionTokens, MAX_TOKENS);
    assert(done.receipt !== undefined, "the retry's finished run has its receipt");
  } finally {
    await system.shutdown();
    await worker.close();
  }
});
