/**
 * The router's hold of a job's worst-case lock on its worker's stake while a hedge races that
 * worker (review s80 vadm F4; `network/_worker_routing.ts`, `network/failover.ts`): the hedge's
 * lookup holds the lock against the hedge worker beside the worker that holds the job, and the
 * race's loser is released. Before, the hedge's lookup moved the hold; when the first worker
 * answered first, it ran the job unheld (a burst job went to it as backed, to be refused there
 * `insufficient_stake`) and the cancelled hedge worker stayed held until the job's end.
 */
import assert from "node:assert/strict";
import { type ResumeOutcome, withFailover } from "../../network/failover.ts";
import { FakeTimers, turns } from "../_helpers/fake_timers.ts";
import { attempt, heldAttempt } from "./_failover_fixture.ts";
import { served } from "./_scripted_workers.ts";
import { LOCK, oneAndMany as routing } from "./_stake_routing.ts";

Deno.test("a hedge that lost its race is released: the worker running the job stays held, and the next job goes to the worker whose stake backs it", () => {
  const { r, pick } = routing();
  assert.equal(pick(served.cid, [], undefined, LOCK, "a"), "one");
  // a held without a token past the queue hold: the hedge's lookup excludes "one".
  assert.equal(pick(served.cid, ["one"], undefined, LOCK, "a", true), "many");
  // "one" answers first: the hedge on "many" is cancelled and released.
  r.released("a", "many");
  assert.equal(pick(served.cid, [], undefined, LOCK, "b"), "many", "one's stake backs a only");
  // a ends: one's stake is free again.
  r.jobEnded("a");
  r.jobEnded("b");
  assert.equal(pick(served.cid, [], undefined, LOCK, "c"), "one");
});

Deno.test("a hedge that took the job over holds it alone once the worker it took it from is released; a failover's lookup moves the hold", () => {
  const { r, pick } = routing();
  assert.equal(pick(served.cid, [], undefined, LOCK, "a"), "one");
  assert.equal(pick(served.cid, ["one"], undefined, LOCK, "a", true), "many");
  // While the race runs, both hold a's lock: one's stake backs nothing more.
  assert.equal(pick(served.cid, [], undefined, LOCK, "b"), "many");
  r.jobEnded("b");
  // The hedge on "many" sends a's first token first: "one" is released.
  r.released("a", "one");
  assert.equal(pick(served.cid, [], undefined, LOCK, "c"), "one");
  r.jobEnded("c");
  // "many" is lost: the failover's lookup (not a hedge's) drops a's holds and holds the new one.
  assert.equal(pick(served.cid, ["many"], undefined, LOCK, "a"), "one");
  assert.equal(pick(served.cid, [], undefined, LOCK, "d"), "many");
});

/** A job held by worker 0 without a token, hedged on worker 1; what `released` heard. */
async function race(winner: 0 | 1): Promise<number[]> {
  const timers = new FakeTimers();
  const first = heldAttempt(0, 0);
  const hedge = heldAttempt(1, 0);
  const released: number[] = [];
  let hedged = false;
  const handle = withFailover({
    first: first.attempt,
    settle: (s) => s,
    queueHoldMs: 1_000,
    timers,
    released: (worker) => void released.push(worker[0]),
    resume(_exclude, _prefix, request): Promise<ResumeOutcome> {
      assert.ok(request !== undefined, "only the hedge is asked");
      hedged = true;
      return Promise.resolve({ kind: "started", attempt: hedge.attempt });
    },
  });
  const reader = handle.tokens.getReader();
  const read = reader.read();
  while (timers.armed.size === 0) await turns(1); // the queue hold runs
  timers.fireAll();
  while (!hedged) await turns(1);
  await turns(5);
  (winner === 0 ? first : hedge).release();
  assert.equal((await read).value?.index, 0);
  await turns(5);
  await reader.cancel();
  await handle.done.catch(() => undefined);
  return released;
}

Deno.test("failover: the hedge that lost its race is released; a hedge that took the job over releases the worker it took it from", async () => {
  assert.deepEqual(await race(0), [1], "the first worker answered first: the hedge goes");
  assert.deepEqual(await race(1), [0], "the hedge answered first: the first worker goes");
});

Deno.test("a lookup of a job that arrives after the job's end holds nothing; a retry's submission holds the job again", () => {
  const { r, pick } = routing();
  assert.equal(pick(served.cid, [], undefined, LOCK, "J", false, 1), "one"); // J submitted: run 1
  r.jobEnded("J", 1);
  // A failover's lookup of J sent before J's end, that reaches the routing after it.
  assert.equal(pick(served.cid, ["lost"], undefined, LOCK, "J", false, 1), "one");
  assert.equal(pick(served.cid, [], undefined, LOCK, "b"), "one", "J ended: one's stake backs b");
  r.jobEnded("b");
  // Its client's retry of J (it ended unassigned) is run 2: its lookup holds one's stake.
  assert.equal(pick(served.cid, [], undefined, LOCK, "J", false, 2), "one");
  assert.equal(pick(served.cid, [], undefined, LOCK, "c"), "many", "J's retry holds one's stake");
});

Deno.test("a failover's lookup after the client's cancel ended the job: the worker it picked is released and holds nothing, and the next job goes to it (review s80 vadm2 F1)", async () => {
  const { r, pick } = routing();
  let cancelClient: () => void = () => {};
  const lookups: string[] = [];
  const released: number[] = [];
  const handle = withFailover({
    first: attempt(9, 0, 2), // the first worker is lost after 2 tokens: failover
    settle: (s) => s,
    released: (worker) => void released.push(worker[0]),
    async resume(exclude): Promise<ResumeOutcome> {
      const tried = exclude.map((w) => String(w[0]));
      // The port's first lookup excludes the workers it asks last ("one", "many"): none.
      lookups.push(`1st: ${pick(served.cid, [...tried, "one", "many"], undefined, LOCK, "J")}`);
      // The client cancels during its answer's round trip: the job ends.
      cancelClient();
      await turns(20);
      lookups.push(`2nd: ${pick(served.cid, tried, undefined, LOCK, "J")}`);
      return { kind: "started", attempt: heldAttempt(1, 2).attempt }; // worker 1 is "one"
    },
  });
  // The router's port tells the routing of the job's end (`worker_job_ended`).
  handle.done.finally(() => {
    lookups.push("worker_job_ended");
    r.jobEnded("J");
  }).catch(() => {});
  const reader = handle.tokens.getReader();
  cancelClient = () => void reader.cancel().catch(() => {});
  await reader.read();
  await reader.read();
  await reader.read().catch(() => undefined);
  await handle.done.catch(() => undefined);
  await turns(50);
  assert.deepEqual(lookups, ["1st: undefined", "worker_job_ended", "2nd: one"]);
  assert.deepEqual(released, [1], "the attempt cancelled as it started is released");
  // J ended: "one" is idle and its stake backs one job.
  assert.equal(pick(served.cid, [], undefined, LOCK, "b"), "one", "J holds none of one's stake");
});
