/**
 * The router counts its own jobs in flight against a worker's free stake when it ranks the
 * worker backed (`network/_worker_routing.ts`, `worker_choice.ts` rule 3; stop 80): read from its
 * ledger alone, a burst of jobs all went to the idle worker whose stake backs one, and every
 * other was refused there `insufficient_stake` (a round trip each, or a 503 with nobody else).
 * A job's hold goes at its end (`worker_job_ended`) or when it is sent elsewhere.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkActorOptions, NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import type { PeerEntry } from "../../network/_peer_entry.ts";
import { WorkerRouting } from "../../network/_worker_routing.ts";
import type { WorkerCandidate } from "../../network/worker_choice.ts";
import { jobStakeLock } from "../../network/_job_stake_lock.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";
import { StallingPort } from "../inference/_stalling_port.ts";
import { job, script, served } from "./_scripted_workers.ts";
import { Recorder, Workers } from "./_router_doubles.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { Connection as Conn } from "../../protocols/connection.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { serveInference } from "../../inference/serve_inference.ts";

const LOCK = jobStakeLock(job("lock"), 200);

/** A peer entry of worker `key`, open and serving the model, running `running` of 4 slots. */
function entry(key: string, running: number): PeerEntry {
  const connection = {
    isClosed: false,
    supports: () => true,
    pendingRequestsOf: () => 0,
  } as unknown as Connection;
  return {
    connection,
    info: { key, models: [served.cid], convicted: false },
    models: [],
    hello: { load: { running, queued: 0, slots: 4, queueLimit: 0 } },
  } as unknown as PeerEntry;
}

/**
 * A router's routing over two workers: `one`, idle, whose free stake backs one job's lock, and
 * `many`, busier, whose stake backs ten.
 */
function routing(): {
  r: WorkerRouting;
  pick: (...args: Parameters<WorkerRouting["worker"]>) => string | undefined;
} {
  const one = entry("one", 0);
  const many = entry("many", 2);
  const peers = new Map([["one", [one]], ["many", [many]]]);
  const standing = new Map<string, WorkerCandidate["standing"]>([
    ["one", { stake: LOCK, locked: 0, balance: 0 }],
    ["many", { stake: 10 * LOCK, locked: 0, balance: 0 }],
  ]);
  const r = new WorkerRouting({
    options: { identity: Identity.generate() } as NetworkActorOptions,
    peers,
    standing,
    holders: () => [],
    services: () => undefined,
  });
  const keys = new Map([[one.connection, "one"], [many.connection, "many"]]);
  const pick = (...args: Parameters<WorkerRouting["worker"]>) => {
    const connection = r.worker(...args);
    return connection && keys.get(connection);
  };
  return { r, pick };
}

Deno.test("three jobs at once: the idle worker whose stake backs one gets one, the others go to the worker whose stake backs them, not to be refused insufficient_stake", () => {
  const { pick } = routing();
  const picks = ["a", "b", "c"].map((id) => pick(served.cid, [], undefined, LOCK, id));
  assert.deepEqual(picks, ["one", "many", "many"]);
});

Deno.test("a job's hold on its worker's stake goes at its end, and when it is looked up again (refused there, sent elsewhere)", () => {
  const { r, pick } = routing();
  assert.equal(pick(served.cid, [], undefined, LOCK, "a"), "one");
  assert.equal(pick(served.cid, [], undefined, LOCK, "b"), "many");
  r.jobEnded("a");
  assert.equal(pick(served.cid, [], undefined, LOCK, "c"), "one");
  // "c" refused at "one": its next lookup excludes it, and its hold there goes.
  assert.equal(pick(served.cid, ["one"], undefined, LOCK, "c"), "many");
  assert.equal(pick(served.cid, [], undefined, LOCK, "d"), "one");
});

/** A NetworkActor double that keeps every message the router's port sends it. */
class MessageRecordingWorkers extends Workers {
  readonly messages: NetworkMessage[] = [];
  override receive(message: NetworkMessage): unknown {
    this.messages.push(message);
    return super.receive(message);
  }
}

Deno.test("the router's port names the job in each worker lookup and tells its end, so its lock is held only while it runs", async () => {
  const system = new ActorSystem({ name: "stake-held" });
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Conn.open(a, { identity: Identity.generate(), protocols }),
    Conn.open(b, { identity: Identity.generate(), protocols }),
  ]);
  serveInference(atWorker, new StallingPort(served, script));
  const workers = new MessageRecordingWorkers([toWorker], [served]);
  try {
    const network = await system.spawn<NetworkMessage>({
      name: "r/network",
      factory: () => workers,
    });
    const validator = await system.spawn({ name: "r/validator", factory: () => new Recorder() });
    const port = new NetworkInferencePort(network, validator, Identity.generate(), {
      countPromptTokens: () => 200,
    });
    const handle = await port.submit(job("held"));
    for await (const _ of handle.tokens) { /* drain */ }
    await handle.done;
    const id = (workers.messages.find((m) => m.type === "worker") as { job?: string })?.job;
    assert.ok(id !== undefined, "the lookup named no job");
    await eventually(() => workers.messages.some((m) => m.type === "worker_job_ended"));
    const ended = workers.messages.find((m) => m.type === "worker_job_ended") as { job: string };
    assert.equal(ended?.job, id);
  } finally {
    await toWorker.close();
    await atWorker.close();
    await system.shutdown();
  }
});
