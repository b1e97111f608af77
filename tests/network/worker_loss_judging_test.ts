/**
 * How the router's record judges a worker's connection losses (review s77 vroute2 F1–F5;
 * `network/worker_record.ts`'s `lost`, `picked`, `completed`, `of`): a finished job forgives one
 * job a loss cut, and only one it was given on a connection opened after the loss; every held job
 * counts in the net; a loss still held an hour is judged, not forgotten; the jobs of one close get
 * one verdict; a crash seen on two connections is one stop; relayed keys share one allowance. On
 * a fake clock (the record's `now`).
 */
import assert from "node:assert/strict";
import {
  FAILURE_FORGOTTEN_MS,
  GOODBYE_WINDOW_MS,
  GOODBYES_EXCUSED,
  WorkerRecord,
} from "../../network/worker_record.ts";
import { isProven } from "../../network/worker_choice.ts";

/** The worker's address group (TEST-NET-2). */
const HOST = "198.51.100.20";
/** The group every relayed swarm peer is placed in (`network_actor.ts`'s `UNADDRESSED`). */
const RELAYED = "(unaddressed)";

/** A record on a clock the test moves. */
function clocked() {
  const clock = { now: 0 };
  return { clock, record: new WorkerRecord({ now: () => clock.now }) };
}

/** `key`'s standing, and whether the choice of worker takes it as proven. */
function standing(record: WorkerRecord, key: string) {
  const { net, suspect } = record.of(key);
  return { net, suspect, proven: isProven({ record: { net, suspect } }) };
}

/** A connection of a key, as the routing notes it (`SeenVia.connection`). */
function link(record: WorkerRecord, key: string, group: string | undefined = HOST): object {
  const connection = {};
  record.seen(key, group, { connection });
  return connection;
}

/** `jobs` jobs of `key` cut by one close (`event`): each one's verdict. */
function close(record: WorkerRecord, key: string, jobs: number, event: object = {}): boolean[] {
  return Array.from({ length: jobs }, () => record.lost(key, event));
}

Deno.test("loss judging: one short job finished after a loss of four forgives one of them, not all: the key is proven only once it made up every job it cut", () => {
  const { record } = clocked();
  const old = link(record, "w");
  record.picked("w", old);
  record.completed("w"); // proven by one job
  assert.deepEqual(close(record, "w", 4), [false, false, false, false]);
  // Every held job counts in the net; one failure for suspicion (a clean stranger, not suspect).
  assert.deepEqual(standing(record, "w"), { net: -3, suspect: false, proven: false });
  const back = link(record, "w");
  record.picked("w", back);
  record.completed("w");
  assert.deepEqual(standing(record, "w"), { net: -1, suspect: false, proven: false });
  for (let i = 0; i < 3; i++) {
    record.picked("w", back);
    record.completed("w");
  }
  // All four made up: forgiven, as a goodbye would have been.
  assert.deepEqual(standing(record, "w"), { net: 5, suspect: false, proven: true });
});

Deno.test("loss judging: a job picked before the loss, on another connection open then, that finishes forgives nothing", () => {
  const { record } = clocked();
  const one = link(record, "w");
  const two = link(record, "w");
  record.completed("w");
  record.picked("w", two); // job X on connection 2
  for (let j = 0; j < 6; j++) record.picked("w", one);
  close(record, "w", 6); // connection 1 closed
  record.completed("w"); // job X ends: the key never came back
  assert.deepEqual(standing(record, "w"), { net: -4, suspect: false, proven: false });
});

Deno.test("loss judging: a worker that cuts 8 jobs twice an hour and finishes one between is judged every job it cut, and is suspect", () => {
  const { clock, record } = clocked();
  let everSuspect = false;
  record.completed("w");
  for (let h = 0; h < 3; h++) {
    for (let s = 0; s < 2; s++) {
      const connection = link(record, "w");
      for (let j = 0; j < 8; j++) record.picked("w", connection);
      close(record, "w", 8);
      everSuspect ||= standing(record, "w").suspect;
      const back = link(record, "w");
      record.picked("w", back);
      record.completed("w");
      everSuspect ||= standing(record, "w").suspect;
      clock.now += GOODBYE_WINDOW_MS / 2 + 1;
    }
  }
  assert.equal(everSuspect, true);
  assert.ok(standing(record, "w").net < 0, JSON.stringify(standing(record, "w")));
});

Deno.test("loss judging: a loss still held after FAILURE_FORGOTTEN_MS is judged a failure per job it cut, each forgotten one per FAILURE_FORGOTTEN_MS from then", () => {
  const held = clocked();
  const failed = clocked();
  for (const { record } of [held, failed]) {
    record.seen("w", HOST);
    for (let i = 0; i < 5; i++) record.completed("w");
  }
  close(held.record, "w", 8);
  for (let j = 0; j < 8; j++) failed.record.failed("w");
  assert.deepEqual(standing(held.record, "w"), { net: -3, suspect: false, proven: false });
  for (const hours of [1, 2, 3]) {
    held.clock.now = hours * FAILURE_FORGOTTEN_MS;
    failed.clock.now = hours * FAILURE_FORGOTTEN_MS;
    // Judged at one hour, then forgotten as the failures are: an hour behind them.
    assert.deepEqual(standing(failed.record, "w").net, -3 + hours, `${hours} h`);
    assert.deepEqual(standing(held.record, "w"), {
      net: -3 + hours - 1,
      suspect: true,
      proven: false,
    }, `${hours} h`);
  }
});

Deno.test("loss judging: every job of one close gets one verdict: a second crash after the key came back, before it made up the first, is a failure for each job it cut, counted once in the allowance", () => {
  const { record } = clocked();
  const first = link(record, "h");
  record.picked("h", first);
  record.completed("h");
  record.picked("h", first);
  record.picked("h", first);
  assert.deepEqual(close(record, "h", 2), [false, false]);
  const second = link(record, "h");
  record.picked("h", second);
  record.picked("h", second);
  record.picked("h", second);
  // Not the first job a failure and the rest a new held loss: all three, failures.
  assert.deepEqual(close(record, "h", 3), [true, true, true]);
  assert.deepEqual(standing(record, "h"), { net: -4, suspect: true, proven: false });
  // One stop each: two so far, so a goodbye now is the third, past the allowance.
  assert.equal(GOODBYES_EXCUSED, 2);
  assert.equal(record.left("h"), true);
});

Deno.test("loss judging: a second crash after the held loss was made up is a new held loss within the allowance, as a second goodbye is no failure", () => {
  const { record } = clocked();
  const first = link(record, "h");
  record.completed("h");
  close(record, "h", 2);
  const second = link(record, "h");
  for (let j = 0; j < 2; j++) {
    record.picked("h", second);
    record.completed("h");
  }
  record.picked("h", second);
  assert.deepEqual(close(record, "h", 1), [false]);
  assert.deepEqual(standing(record, "h"), { net: 2, suspect: false, proven: true });
  assert.ok(first !== second);
});

Deno.test("loss judging: one crash seen on two connections at different times, with a job given on the one still open between, is one stop, its jobs held", () => {
  const { record } = clocked();
  const one = link(record, "w");
  const two = link(record, "w");
  record.completed("w");
  record.picked("w", one);
  record.picked("w", one);
  assert.deepEqual(close(record, "w", 2), [false, false]); // link 1's close seen
  record.picked("w", two); // the next job to the link still open: no coming back
  assert.deepEqual(close(record, "w", 1), [false]); // link 2's close seen later
  assert.deepEqual(standing(record, "w"), { net: -2, suspect: false, proven: false });
  // Back on a new connection, it makes up all three and is proven again.
  const back = link(record, "w");
  for (let j = 0; j < 3; j++) {
    record.picked("w", back);
    record.completed("w");
  }
  assert.deepEqual(standing(record, "w"), { net: 4, suspect: false, proven: true });
});

Deno.test("loss judging: relayed keys (no address group) share the unaddressed group's allowance of stops", () => {
  const { record } = clocked();
  const verdicts: boolean[] = [];
  for (let k = 0; k < 4; k++) {
    const key = `relayed-${k}`;
    record.seen(key, undefined, { connection: {}, stopGroup: RELAYED });
    record.completed(key);
    verdicts.push(...close(record, key, 2).slice(0, 1));
  }
  assert.deepEqual(verdicts, [false, false, true, true]);
  // Their failures make no other relayed key suspect: an honest relayed newcomer stays clean.
  record.seen("relayed-new", undefined, { stopGroup: RELAYED });
  assert.deepEqual(standing(record, "relayed-new"), { net: 0, suspect: false, proven: false });
});
