/**
 * A retry (same nonce) of a job this router ran and then forgot (its assigned-jobs memory lost the
 * id: past the keep window, a lost or garbage file, no data dir) reaches the honest worker that
 * ran it, which answers `duplicate_job` truthfully. Its receipt for the job, asked for and checked,
 * shows the job ran: the job is ended for the client as a duplicate, the worker is not kept off
 * the model, and no other worker runs it again (review s78 vfinal, F1: the rerun's second
 * assignment voided the first receipt, and neither worker was paid).
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { eventually } from "../_helpers/wait.ts";
import { ledgerReads, START } from "../actors/_validator_fixture.ts";
import { spawnHonestInference } from "./_honest_inference.ts";
import { clientJob, connectWorker, spawnRouter } from "./_proving_worker.ts";
import { Workers } from "./_router_doubles.ts";
import { WORKER_STAKE } from "./_assigned_job_router.ts";

/**
 * {@link Workers} that also hands out the open connection to a worker by key (`connection_to`), as
 * the NetworkActor does: the port asks a worker for its receipt on it.
 */
class WorkersByKey extends Workers {
  override receive(message: NetworkMessage): unknown {
    if (message.type !== "connection_to") return super.receive(message);
    return this.connections.find((c) => !c.isClosed && bytesEqual(c.peerKey!, message.key));
  }
}

/** Tokens the job asks for: a few, so it runs fast. */
const MAX_TOKENS = 4;

/** `port`'s run of the client's job `nonce`: its summary, or the refusal at submission. */
async function runJob(port: NetworkInferencePort, nonce: string) {
  const handle = await port.submit(clientJob(nonce, MAX_TOKENS)).catch((error: unknown) => error);
  if (!("tokens" in (handle as object))) return { refusal: handle };
  const started = handle as Awaited<ReturnType<NetworkInferencePort["submit"]>>;
  for await (const _ of started.tokens) { /* read all */ }
  const summary = await started.done;
  return {
    worker: summary.worker,
    error: summary.error,
    receipt: summary.receipt as Receipt | undefined,
  };
}

Deno.test("a retry of a job the router forgot: the honest worker's duplicate_job with its receipt ends the client's job, its first receipt is paid, and no other worker runs it", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const sysR = new ActorSystem({ name: "forgotten-dup-router" });
  const sysW = new ActorSystem({ name: "forgotten-dup-w" });
  const sysX = new ActorSystem({ name: "forgotten-dup-x" });
  const [router, w, x] = [Identity.generate(), Identity.generate(), Identity.generate()];
  const conns = [];
  try {
    const { local: wLocal } = await spawnHonestInference(sysW, w);
    const { local: xLocal } = await spawnHonestInference(sysX, x);
    const wc = await connectWorker(router, w, wLocal, sysW);
    const xc = await connectWorker(router, x, xLocal, sysX);
    conns.push(wc, xc);
    const workers = new WorkersByKey([wc.toWorker, xc.toWorker]); // W first in line
    const R = await spawnRouter(sysR, dir, clock, router, workers);
    for (const k of [w, x]) {
      await R.validator.ask({ type: "deposit", key: k.publicKey, amount: WORKER_STAKE });
    }
    const first = await runJob(
      new NetworkInferencePort(R.networkRef, R.validator, router, { tokensPerEvent: 1 }),
      "forgotten",
    );
    assert.equal(first.worker, toHex(w.publicKey));
    assert.ok(first.receipt, "the first run has its receipt");
    // The same router identity with an empty memory of assigned jobs: it forgot the job.
    const retry = await runJob(
      new NetworkInferencePort(R.networkRef, R.validator, router, { tokensPerEvent: 1 }),
      "forgotten",
    );
    assert.ok(retry.refusal instanceof VeriflowError, `refused, not run: ${Deno.inspect(retry)}`);
    assert.equal(retry.refusal.code, "duplicate_job");
    assert.match(retry.refusal.message, /already ran/);
    assert.ok(!workers.avoided.has(toHex(w.publicKey)), "the honest worker was kept off the model");

    const reads = ledgerReads(() => R.validator, clock);
    const id = receiptId(first.receipt!);
    await eventually(async () => (await reads.record(id))?.requester !== undefined, "recorded");
    await reads.closeWindow();
    const record = await reads.record(id);
    assert.equal(record?.status, "final");
    assert.ok((record?.credit ?? 0) > 0, `the first receipt earns: ${Deno.inspect(record)}`);
    assert.equal((await reads.account(w.publicKey)).balance, record!.credit);
    // X ran nothing: nothing recorded for it, nothing locked, nothing paid.
    assert.deepEqual(await reads.account(x.publicKey), {
      balance: 0,
      stake: WORKER_STAKE,
      locked: 0,
    });
  } finally {
    for (const c of conns) {
      await c.toWorker.close();
      await c.atWorker.close();
    }
    for (const s of [sysR, sysW, sysX]) await s.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
