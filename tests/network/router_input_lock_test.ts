/**
 * A router without a job's model prices an input job's prompt by the model's window as its
 * workers list it, not by the whole 256 KiB input room (review s79 vmoney F5: it priced the job
 * 206 times the worker's own lock, so a worker with ample stake ranked "not backed" and an
 * unstaked idle stranger got the job). With no window listed it keeps the byte bound.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { jobStakeLock } from "../../network/_job_stake_lock.ts";
import { chooseWorker, type WorkerCandidate } from "../../network/worker_choice.ts";
import { Identity } from "../../protocols/identity.ts";
import { DEFAULT_GENERATION_PARAMS, type TextJob } from "../../protocols/job.ts";
import { MAX_JOB_INPUT_BYTES, promptTokenBound } from "../../protocols/prompt_token_bound.ts";
import { MODEL } from "./_router_fixture.ts";
import { INFO } from "./_router_fixture.ts";
import { Recorder, Workers } from "./_router_doubles.ts";

const CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
/** The built-in tiny model's window, as its workers list it. */
const WINDOW = 256;

const inputJob = (nonce: string): TextJob => ({
  kind: "text",
  model: MODEL,
  prompt: "summarize",
  params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: 64 },
  nonce,
  input: CID,
});

Deno.test("with the model's window listed, the router's lock for an input job is the worker's own (window less one), and the staked busy worker ranks before an idle unstaked stranger", () => {
  const job = inputJob("n");
  const workerLock = jobStakeLock(job, { atMost: WINDOW - 1 }); // the worker's own count
  const routerLock = jobStakeLock(job, undefined, undefined, WINDOW);
  assert.equal(routerLock, workerLock);
  const staked: WorkerCandidate = {
    key: "aa",
    models: [MODEL],
    convicted: false,
    load: { running: 2, queued: 0, slots: 4, queueLimit: 8 },
    inFlight: 0,
    standing: { stake: 100 * workerLock, locked: 0, balance: 0 },
  };
  const stranger: WorkerCandidate = {
    key: "bb",
    models: [MODEL],
    convicted: false,
    load: { running: 0, queued: 0, slots: 4, queueLimit: 8 },
    inFlight: 0,
  };
  assert.equal(chooseWorker([staked, stranger], { model: MODEL, lock: routerLock })?.key, "aa");
  // No window known: the byte bound, as before.
  const bytes = promptTokenBound(job.prompt, MAX_JOB_INPUT_BYTES);
  assert.equal(
    jobStakeLock(job, undefined),
    jobStakeLock(job, bytes),
  );
});

/** A NetworkActor double with no worker that keeps each lookup's lock. */
class LockRecordingWorkers extends Workers {
  readonly locks: (number | undefined)[] = [];
  override receive(message: NetworkMessage): unknown {
    if (message.type === "worker") this.locks.push(message.lock);
    return super.receive(message);
  }
}

Deno.test("a router without the model looks a worker up for an input job with the lock its workers' listed window gives, not the input room's", async () => {
  const system = new ActorSystem({ name: "router-input-lock" });
  try {
    const workers = new LockRecordingWorkers([], [{ ...INFO, contextLength: WINDOW }]);
    const network = await system.spawn<NetworkMessage>({
      name: "r/network",
      factory: () => workers,
    });
    const validator = await system.spawn({ name: "r/validator", factory: () => new Recorder() });
    const port = new NetworkInferencePort(network, validator, Identity.generate());
    const job = inputJob("lookup");
    const error = await port.submit(job).then(() => undefined, (e) => e);
    assert.equal(error?.code, "no_worker");
    // The router adds itself as the job's requester: priced the same (the prompt is unchanged).
    assert.deepEqual(workers.locks, [jobStakeLock(job, { atMost: WINDOW - 1 })]);
  } finally {
    await system.shutdown();
  }
});
