/**
 * The router's stake holds are per run of a job (review s80 vlate F1; `network/_worker_routing.ts`,
 * `network/network_inference_port.ts`): each submission of a job, a client's retry of it too, is a
 * run of its own, and its lookups, releases and end name it. A late lookup of a cancelled run (its
 * failover still asking when its client cancelled), reaching the routing after the client's retry
 * of the same job started, held the old run's pick and dropped the retry's hold: the worker
 * running the retry, its stake locked by it, was sent the next job as backed, to refuse it
 * `insufficient_stake`. Now it holds nothing and leaves the retry's hold alone.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { job, served } from "./_scripted_workers.ts";
import { spawnRouter, Workers } from "./_router_doubles.ts";
import { LOCK, stakeRouting } from "./_stake_routing.ts";

/**
 * Routing over `one` (idle) and `two` (busier), each with free stake for exactly one job's lock:
 * a worker held by a job is backed for no other, so where a pick goes says what is held.
 */
function routing() {
  const { r, pick } = stakeRouting([
    { key: "one", running: 0, stake: LOCK },
    { key: "two", running: 2, stake: LOCK },
  ]);
  /**
   * Nothing is held: the idle `one` backs a first job, and `two` the second (a hold left on
   * either sends a job elsewhere: to `two` first, or both to the less loaded `one`, unbacked).
   */
  const nothingHeld = () => {
    assert.deepEqual(
      [pick(served.cid, [], undefined, LOCK, "x"), pick(served.cid, [], undefined, LOCK, "y")],
      ["one", "two"],
      "no stake is held",
    );
  };
  return { r, pick, nothingHeld };
}

Deno.test("vlate F1: a late lookup of a job's cancelled run, after the client's retry of the job started, holds nothing and leaves the retry's hold; once the retry ends nothing is held", () => {
  const { r, pick, nothingHeld } = routing();
  // Run 1 of J started on "one"; "one" is lost, and its failover's lookup holds "two"...
  assert.equal(pick(served.cid, [], undefined, LOCK, "J", false, 1), "one");
  assert.equal(pick(served.cid, ["one"], undefined, LOCK, "J", false, 1), "two");
  // ..."two" refuses it, and the client cancels before the failover's next lookup: run 1 ends.
  r.jobEnded("J", 1);
  // The client's retry of J (same nonce: it ended unassigned) is run 2; it holds "one".
  assert.equal(pick(served.cid, [], undefined, LOCK, "J", false, 2), "one");
  // Run 1's next lookup (excluding "one", which run 1 lost) reaches the routing only now.
  assert.equal(pick(served.cid, ["one"], undefined, LOCK, "J", false, 1), "two");
  // Its worker is too late (run 1 ended): cancelled and released (`failover.ts` `#tooLate`).
  r.released("J", "two", 1);
  // "one" runs J's retry and its stake backs one job: the next job goes to "two", which it
  // backs, not to "one", to be refused `insufficient_stake` there.
  assert.equal(pick(served.cid, [], undefined, LOCK, "c"), "two", "J's retry still holds one");
  r.jobEnded("c");
  // The retry ends: its hold goes, and the old run left none.
  r.jobEnded("J", 2);
  nothingHeld();
});

Deno.test("a lookup of a job's run that a later run superseded holds nothing, and its release leaves the later run's hold, even where the earlier run's end was not heard", () => {
  const { r, pick, nothingHeld } = routing();
  assert.equal(pick(served.cid, [], undefined, LOCK, "J", false, 1), "one");
  // Run 2 starts (run 1's end never reached the routing): its lookup takes the job's holds over.
  assert.equal(pick(served.cid, ["one"], undefined, LOCK, "J", false, 2), "two");
  // Run 1's lookup, late: it holds nothing, and moves nothing of run 2's.
  assert.equal(pick(served.cid, ["two"], undefined, LOCK, "J", false, 1), "one");
  r.released("J", "two", 1);
  r.jobEnded("J", 1);
  assert.equal(pick(served.cid, [], undefined, LOCK, "c"), "one", "run 2 holds two; one is free");
  assert.equal(
    pick(served.cid, [], undefined, LOCK, "d"),
    "one",
    "two still held by run 2 (d is backed nowhere: the less loaded one)",
  );
  r.jobEnded("c");
  r.jobEnded("d");
  r.jobEnded("J", 2);
  nothingHeld();
});

/** A NetworkActor double that keeps every message, answering the port's `connecting` too. */
class RecordingWorkers extends Workers {
  readonly messages: NetworkMessage[] = [];
  override receive(message: NetworkMessage): unknown {
    this.messages.push(message);
    if (message.type === "connecting") return { connecting: false };
    return super.receive(message);
  }
}

Deno.test("the router's port makes each submission of a job a run of its own: its lookups and its end name it, and a retry's run is later", async () => {
  const system = new ActorSystem({ name: "stake-hold-runs" });
  const workers = new RecordingWorkers([]); // no worker: each submission ends unassigned
  try {
    const { port, network } = await spawnRouter(system, workers, { countPromptTokens: () => 200 });
    const retried = job("retried");
    for (let i = 0; i < 2; i++) {
      await assert.rejects(port.submit(retried), { code: "no_worker" });
    }
    // The actor takes its mail in order: an answer now comes after each end the port told.
    await network.ask({ type: "worker_models" });
    const runs = (type: NetworkMessage["type"]) =>
      workers.messages.filter((m) => m.type === type).map((m) => (m as { run?: number }).run);
    const lookups = runs("worker");
    const ends = runs("worker_job_ended");
    assert.equal(lookups.length, 2, "one lookup per submission");
    assert.ok(typeof lookups[0] === "number" && lookups[1]! > lookups[0]!, `${lookups}`);
    assert.deepEqual(ends, lookups, "each submission's end names its own run");
  } finally {
    await system.shutdown();
  }
});
