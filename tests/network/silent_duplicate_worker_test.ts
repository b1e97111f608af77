/**
 * A worker that refuses a job `duplicate_job` and then never answers the router's request for its
 * receipt (`inference.get_receipt`) costs the router one wait of
 * {@link CANCELLED_RECEIPT_TIMEOUT_MS}, not one per job (stop 78 left open): while its receipt is
 * awaited it is asked last, so other jobs go to another worker first; once it was silent, its
 * next `duplicate_job` is its failure at once, with no second wait. The router's clock of the
 * request is the hostile connection's, fired by hand.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { DuplicateJobError } from "../../actors/inference_errors.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import {
  CANCELLED_RECEIPT_TIMEOUT_MS,
  NetworkInferencePort,
} from "../../network/network_inference_port.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { Connection } from "../../protocols/connection.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  INFERENCE_PROTOCOL,
  ReceiptRequestMessage,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import { jobId } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { FakeTimers, tracker } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { spawnHonestInference } from "./_honest_inference.ts";
import { clientJob, connectWorker } from "./_proving_worker.ts";
import { Recorder, Workers } from "./_router_doubles.ts";

/** {@link Workers} that also hands out a worker's open connection by key (`connection_to`). */
class WorkersByKey extends Workers {
  override receive(message: NetworkMessage): unknown {
    if (message.type !== "connection_to") return super.receive(message);
    return this.connections.find((c) => !c.isClosed && bytesEqual(c.peerKey!, message.key));
  }
}

/**
 * A worker that refuses every job `duplicate_job` and never answers a receipt request (until
 * `release`), on a connection whose router side runs on `timers`; `asks` counts the requests.
 */
async function silentDuplicateWorker(router: Identity, worker: Identity, timers: FakeTimers) {
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: router, protocols, timers }),
    Connection.open(b, { identity: worker, protocols }),
  ]);
  const state = { asks: 0, release: () => {} };
  const never = new Promise<void>((resolve) => state.release = resolve);
  atWorker.handle(SubmitMessage, (body) => {
    throw new DuplicateJobError(jobId(body.job), "finished");
  });
  atWorker.handle(ReceiptRequestMessage, async () => {
    state.asks++;
    await never;
    return { receipt: null };
  });
  return { toWorker, atWorker, state };
}

/** Read `handle`'s tokens to the end; its summary. */
async function finish(handle: Awaited<ReturnType<NetworkInferencePort["submit"]>>) {
  for await (const _ of handle.tokens) { /* the client reads every token */ }
  return await handle.done;
}

Deno.test("a worker silent on the receipt request after its duplicate_job holds one job once: jobs sent meanwhile go to another worker, and its next duplicate_job fails it at once", async () => {
  const system = new ActorSystem({ name: "silent-dup-router" });
  const honestSystem = new ActorSystem({ name: "silent-dup-honest" });
  const router = Identity.generate();
  const [hostile, honest] = [Identity.generate(), Identity.generate()];
  const timers = new FakeTimers();
  const h = await silentDuplicateWorker(router, hostile, timers);
  try {
    const { local } = await spawnHonestInference(honestSystem, honest);
    const b = await connectWorker(router, honest, local, honestSystem);
    // The hostile worker first in line, as the one whose hellos claim the most room.
    const workers = new WorkersByKey([h.toWorker, b.toWorker]);
    const network = await system.spawn<NetworkMessage>({
      name: "router/network",
      factory: () => workers,
    });
    const validator = await system.spawn<ValidatorMessage>({
      name: "router/validator",
      factory: () => new Recorder(),
    });
    const port = new NetworkInferencePort(network, validator, router, { tokensPerEvent: 1 });
    const hostileKey = toHex(hostile.publicKey);

    // Job 1 reaches the hostile worker first; its receipt is asked for, and never comes.
    const first = port.submit(clientJob("silent-dup-1"));
    await eventually(() => h.state.asks === 1, "the hostile worker asked for its receipt");

    // Job 2, sent while that answer is awaited, goes to the honest worker: no timer has fired.
    const second = port.submit(clientJob("silent-dup-2"));
    await eventually(tracker(second), "job 2 to start while job 1's receipt is awaited");
    assert.equal((await finish(await second)).worker, toHex(honest.publicKey));
    assert.equal(h.state.asks, 1, "job 2 waited on the hostile worker's receipt too");

    // The wait for job 1's receipt runs out: job 1 goes on to the honest worker.
    timers.fireFor(CANCELLED_RECEIPT_TIMEOUT_MS);
    assert.equal((await finish(await first)).worker, toHex(honest.publicKey));
    assert.ok(workers.avoided.has(hostileKey), "the silent worker was not kept off the model");

    // Its time off the model over (the network actor's cooldown), and no other worker left: its
    // next duplicate_job is its failure at once, with no second receipt request and no timer.
    workers.avoided.clear();
    await b.toWorker.close();
    await b.atWorker.close();
    const refused = port.submit(clientJob("silent-dup-3")).then(
      () => assert.fail("job 3 ran"),
      (error: unknown) => error,
    );
    await eventually(tracker(refused), "job 3 to be refused with no receipt request");
    const third = await refused;
    assert.ok(third instanceof VeriflowError, String(third));
    assert.equal(third.code, "worker_failed", third.message);
    assert.equal(h.state.asks, 1, "the silent worker was asked for a receipt again");
  } finally {
    h.state.release();
    await h.toWorker.close();
    await h.atWorker.close();
    await system.shutdown();
    await honestSystem.shutdown();
  }
});
