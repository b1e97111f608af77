/**
 * A worker's `duplicate_job` refusal of a job that this router's own memory says is neither
 * assigned, running nor owed here (`network/_assigned_jobs.ts`) is that worker's failure: the next
 * worker is asked, and the refusing one is kept off the model (review s78 vassign, F1). Before, it
 * went to the client at once: a worker that answered `duplicate_job` to every job failed each job
 * it was picked for, and the honest worker behind it ran none and was paid nothing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { DuplicateJobError } from "../../actors/inference_errors.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { ledgerReads, START } from "../actors/_validator_fixture.ts";
import { spawnHonestInference } from "./_honest_inference.ts";
import { clientJob, connectWorker, spawnRouter } from "./_proving_worker.ts";
import { Workers } from "./_router_doubles.ts";
import { WORKER_STAKE } from "./_assigned_job_router.ts";

/** Jobs the client sends: more than one, so a worker kept off after the first is seen. */
const JOBS = 3;

/** `local` answering every submission `duplicate_job`, as a worker that never ran the job. */
function refusingDuplicates(local: InferencePort): InferencePort {
  return new Proxy(local, {
    get(target, prop) {
      if (prop === "submit") {
        return (job: Parameters<InferencePort["submit"]>[0]) =>
          Promise.reject(new DuplicateJobError(jobId(job), "finished"));
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("a worker's duplicate_job refusal of a job this router holds nowhere is its own failure: the next worker runs the job and is paid, the refusing worker is kept off the model", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "dup-refusal-router" });
  const hostileSystem = new ActorSystem({ name: "dup-refusal-hostile" });
  const honestSystem = new ActorSystem({ name: "dup-refusal-honest" });
  const router = Identity.generate();
  const [hostile, honest] = [Identity.generate(), Identity.generate()];
  try {
    const { local: hostileLocal } = await spawnHonestInference(hostileSystem, hostile);
    const { local: honestLocal } = await spawnHonestInference(honestSystem, honest);
    const h = await connectWorker(router, hostile, refusingDuplicates(hostileLocal), hostileSystem);
    const b = await connectWorker(router, honest, honestLocal, honestSystem);
    // The hostile worker first in line, as the one whose hellos claim the most room.
    const workers = new Workers([h.toWorker, b.toWorker]);
    const { networkRef, validator } = await spawnRouter(system, dir, clock, router, workers);
    for (const w of [hostile, honest]) {
      await validator.ask({ type: "deposit", key: w.publicKey, amount: WORKER_STAKE });
    }
    const port = new NetworkInferencePort(networkRef, validator, router, { tokensPerEvent: 1 });
    const reads = ledgerReads(() => validator, clock);
    const receipts: Receipt[] = [];
    for (let i = 0; i < JOBS; i++) {
      const handle = await port.submit(clientJob(`dup-refusal-${i}`, 4));
      for await (const _ of handle.tokens) { /* the client reads every token */ }
      const summary = await handle.done;
      assert.equal(summary.error, undefined, JSON.stringify(summary.error));
      assert.equal(summary.worker, toHex(honest.publicKey), "not run by the honest worker");
      const receipt = summary.receipt as Receipt | undefined;
      assert.ok(receipt !== undefined, "the job ended without a receipt");
      receipts.push(receipt);
    }
    assert.ok(
      workers.avoided.has(toHex(hostile.publicKey)),
      "the refusing worker was not kept off",
    );
    assert.equal((await honestLocal.stats()).jobsStarted, JOBS);

    for (const receipt of receipts) {
      await eventually(
        async () => (await reads.record(receiptId(receipt)))?.requester !== undefined,
        "each receipt to be recorded assigned",
        { timeoutMs: 3_000 },
      );
    }
    await reads.closeWindow();
    let credits = 0;
    for (const receipt of receipts) credits += (await reads.record(receiptId(receipt)))!.credit;
    assert.ok(credits > 0);
    assert.equal((await reads.account(honest.publicKey)).balance, credits);
    assert.equal((await reads.account(hostile.publicKey)).balance, 0);
    await h.toWorker.close();
    await h.atWorker.close();
    await b.toWorker.close();
    await b.atWorker.close();
  } finally {
    await system.shutdown();
    await hostileSystem.shutdown();
    await honestSystem.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
