/**
 * The router counts its own jobs in flight against a worker's free stake when it ranks the
 * worker backed (`network/_worker_routing.ts`, `worker_choice.ts` rule 3; stop 80): read from its
 * ledger alone, a burst of jobs all went to the idle worker whose stake backs one, and every
 * other was refused there `insufficient_stake` (a round trip each, or a 503 with nobody else).
 * A job's hold goes at its end (`worker_job_ended`) or when it is sent elsewhere.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";
import { StallingPort } from "../inference/_stalling_port.ts";
import { job, script, served } from "./_scripted_workers.ts";
import { spawnRouter, Workers } from "./_router_doubles.ts";
import { LOCK, oneAndMany as routing } from "./_stake_routing.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { Connection as Conn } from "../../protocols/connection.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { serveInference } from "../../inference/serve_inference.ts";

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
    const { port } = await spawnRouter(system, workers, { countPromptTokens: () => 200 });
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
