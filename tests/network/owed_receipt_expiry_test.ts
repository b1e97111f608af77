/**
 * A job whose worker's receipt is owed (every token delivered, its `end` event lost with the
 * connection: `network/_lost_ends.ts`) is refused as "still owed" only while the router keeps that
 * lost end, and is not written to the assigned-jobs file until its receipt is assigned (review
 * s78 vassign, F6). Before, the router wrote it as assigned when the end was lost: a receipt that
 * never came kept the job refused for good, across restarts, saying a receipt was assigned, and
 * nobody was paid. Now, once the lost end is given up, the client's retry runs and its worker is
 * paid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { LOST_END_KEEP_MS, NetworkInferencePort } from "../../network/network_inference_port.ts";
import { ASSIGNED_JOBS_FILE } from "../../network/_assigned_job_file.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { ledgerReads, START } from "../actors/_validator_fixture.ts";
import {
  clientJob,
  connectWorker,
  OneWorker,
  ProvingWorkerPort,
  spawnRouter,
} from "./_proving_worker.ts";
import { WORKER_STAKE } from "./_assigned_job_router.ts";

/** Bytes of the assigned-jobs file's header (`_assigned_job_file.ts`): a file with no record. */
const HEADER_BYTES = 8;

Deno.test("a retry of a job whose receipt is owed is refused as still owed; never written as assigned; once the owe is given up the retry runs and its worker is paid", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/${ASSIGNED_JOBS_FILE}`;
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: "owed-expiry-router" });
  const workerSystem = new ActorSystem({ name: "owed-expiry-workers" });
  const router = Identity.generate();
  const [owing, other] = [Identity.generate(), Identity.generate()];
  const network = new OneWorker();
  try {
    const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, network);
    for (const w of [owing, other]) {
      await validator.ask({ type: "deposit", key: w.publicKey, amount: WORKER_STAKE });
    }
    const timers = new ManualTimers();
    const options = { tokensPerEvent: 1, timers, assignedJobsFile: file };
    const port = new NetworkInferencePort(networkRef, validator, router, options);
    const reads = ledgerReads(() => validator, clock);
    const owingPort = new ProvingWorkerPort(owing, { held: true });
    const otherPort = new ProvingWorkerPort(other);
    const job = clientJob("owed-expiry");

    const first = await connectWorker(router, owing, owingPort, workerSystem);
    network.connection = first.toWorker;
    const handle = await port.submit(job);
    for await (const _ of handle.tokens) { /* the client reads every token */ }
    await first.toWorker.close();
    await first.atWorker.close();
    owingPort.release.resolve();
    assert.equal((await handle.done).receipt, undefined, "the end event was not lost");

    const second = await connectWorker(router, other, otherPort, workerSystem);
    network.connection = second.toWorker;
    // Owed: refused, saying so.
    await assert.rejects(() => port.submit(job), (error: unknown) => {
      assert.ok(error instanceof VeriflowError, String(error));
      assert.equal(error.code, "duplicate_job");
      assert.match(error.message, /receipt is still owed/);
      return true;
    });
    // The owing worker never comes back: the lost-end store gives the job up.
    await timers.advance(LOST_END_KEEP_MS + 1);
    // Never written as assigned: the file holds its header alone.
    assert.equal((await Deno.stat(file)).size, HEADER_BYTES, "the owed job was written");
    const retry = await port.submit(job);
    for await (const _ of retry.tokens) { /* the client reads every token */ }
    const done = await retry.done;
    assert.equal(done.error, undefined, JSON.stringify(done.error));
    const receipt = done.receipt as Receipt | undefined;
    assert.ok(receipt !== undefined, "the retry ended without a receipt");
    await eventually(
      async () => (await reads.record(receiptId(receipt)))?.requester !== undefined,
      "the retry's receipt to be recorded assigned",
      { timeoutMs: 3_000 },
    );
    await reads.closeWindow();
    const credit = (await reads.record(receiptId(receipt)))!.credit;
    assert.ok(credit > 0, "the retry's receipt earned nothing");
    assert.equal((await reads.account(other.publicKey)).balance, credit);
    assert.equal((await reads.account(owing.publicKey)).balance, 0);
    // Assigned now, and kept so: a restarted router refuses the next retry as assigned.
    const restarted = new NetworkInferencePort(networkRef, validator, router, {
      ...options,
      timers: new ManualTimers(),
    });
    await assert.rejects(() => restarted.submit(job), /its receipt was assigned/);
    await second.toWorker.close();
    await second.atWorker.close();
  } finally {
    await routerSystem.shutdown();
    await workerSystem.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
