/**
 * A router's track record of its workers, as the choice of worker reads it (review s76 vroute
 * F2, F3, F5; `network/worker_record.ts`, `network/worker_choice.ts`): ledger credit proves a key
 * only above a floor and never over a failure here, a failure is forgotten with time, a goodbye
 * with jobs in flight is no failure within its allowance, and a positive record outlasts
 * strangers' failures. On a fake clock (the record's `now`).
 */
import assert from "node:assert/strict";
import {
  chooseWorker,
  isProven,
  PROVEN_CREDIT_FLOOR,
  type WorkerCandidate,
} from "../../network/worker_choice.ts";
import {
  FAILURE_FORGOTTEN_MS,
  GOODBYE_WINDOW_MS,
  GOODBYES_EXCUSED,
  MAX_RECORDED_KEYS,
  WorkerRecord,
} from "../../network/worker_record.ts";
import type { PeerLoad } from "../../protocols/peer_hello.ts";

/** What a liar's hello claims: room for 8, nothing running. */
const IDLE: PeerLoad = { running: 0, queued: 0, slots: 8, queueLimit: 8 };
/** What the honest worker's hello says: 1 job of 4 slots running (it has room). */
const BUSY: PeerLoad = { running: 1, queued: 0, slots: 4, queueLimit: 4 };
const MODEL = "m";

function candidate(key: string, extra: Partial<WorkerCandidate> = {}): WorkerCandidate {
  return { key, models: [MODEL], convicted: false, inFlight: 0, load: IDLE, ...extra };
}

/** A record on a clock the test moves. */
function clocked() {
  const clock = { now: 0 };
  return { clock, record: new WorkerRecord({ now: () => clock.now }) };
}

Deno.test("vroute F2: a token of ledger credit proves nothing: a fresh key with balance 1 does not outrank an honest worker with a record here; a suspect group or a failure here overrides credit above the floor", () => {
  const { record } = clocked();
  for (let i = 0; i < 20; i++) record.completed("honest");
  const honest = candidate("honest", {
    load: BUSY,
    standing: { stake: 10_000, locked: 100, balance: 500_000 },
    record: record.of("honest"),
  });
  // One 1-token receipt it assigned itself, finalized (the review's L1).
  const token = candidate("token", {
    standing: { stake: 100, locked: 0, balance: 1 },
    record: { net: 0, suspect: false },
  });
  assert.equal(isProven(token), false);
  assert.equal(chooseWorker([token, honest], { model: MODEL })?.key, "honest");
  // Credit of several whole jobs does prove a key this router has no record of...
  const earned = { stake: 100, locked: 0, balance: PROVEN_CREDIT_FLOOR };
  assert.equal(isProven({ standing: earned, record: { net: 0, suspect: false } }), true);
  // ...unless its address group failed lately, or it failed here.
  record.seen("sybil", "192.0.2.7");
  record.seen("same-host", "192.0.2.7");
  record.failed("sybil");
  const sameHost = candidate("same-host", { standing: earned, record: record.of("same-host") });
  assert.equal(isProven(sameHost), false);
  assert.equal(chooseWorker([sameHost, honest], { model: MODEL })?.key, "honest");
  assert.equal(isProven({ standing: earned, record: record.of("sybil") }), false);
});

Deno.test("vroute F3: a worker's failures are forgotten one per FAILURE_FORGOTTEN_MS: a key that restarted without a goodbye is a clean stranger again, and gets a newcomer's turn", () => {
  const { clock, record } = clocked();
  record.seen("restarted", "198.51.100.20");
  record.completed("restarted");
  record.failed("restarted"); // its connection dropped with two jobs in flight
  record.failed("restarted");
  assert.deepEqual([record.of("restarted").net, record.of("restarted").suspect], [-1, true]);
  const proven = candidate("proven", { load: BUSY, record: { net: 5, suspect: false } });
  const pick = () =>
    chooseWorker([proven, candidate("restarted", { record: record.of("restarted") })], {
      model: MODEL,
      newcomerTurn: true,
    })?.key;
  assert.equal(pick(), "proven");
  clock.now += FAILURE_FORGOTTEN_MS - 1;
  assert.equal(record.of("restarted").net, -1);
  clock.now += 1;
  assert.deepEqual([record.of("restarted").net, record.of("restarted").suspect], [0, false]);
  assert.equal(pick(), "restarted");
  // Forgetting stops at 0: time makes no key proven.
  clock.now += 10 * FAILURE_FORGOTTEN_MS;
  assert.equal(record.of("restarted").net, 0);
});

Deno.test("vroute F3: a goodbye with jobs in flight is no failure up to GOODBYES_EXCUSED in GOODBYE_WINDOW_MS, per key and per address group; past it each one is a failure", () => {
  const { clock, record } = clocked();
  record.seen("restarts", "198.51.100.20");
  record.completed("restarts");
  for (let i = 0; i < GOODBYES_EXCUSED; i++) assert.equal(record.left("restarts"), false);
  assert.equal(record.of("restarts").net, 1);
  // One more within the window: it drops jobs, whatever it says first.
  assert.equal(record.left("restarts"), true);
  assert.equal(record.of("restarts").net, 0);
  // The window passed: an allowance again.
  clock.now += GOODBYE_WINDOW_MS;
  assert.equal(record.left("restarts"), false);
  // Fresh keys of one host, each saying goodbye once, share the host's allowance.
  const keys = Array.from({ length: GOODBYES_EXCUSED + 1 }, (_, i) => `fresh-${i}`);
  for (const key of keys) record.seen(key, "192.0.2.7");
  const counted = keys.map((key) => record.left(key));
  assert.deepEqual(counted, [...Array(GOODBYES_EXCUSED).fill(false), true]);
  assert.equal(record.of(keys.at(-1)!).suspect, true);
  assert.equal(record.of("fresh-0").suspect, true); // its group failed lately
});

Deno.test("vroute F5: an honest worker's record outlasts MAX_RECORDED_KEYS strangers' failures: records at or below 0 are forgotten first", () => {
  const { record } = clocked();
  for (let i = 0; i < 50; i++) record.completed("honest");
  for (let i = 0; i < MAX_RECORDED_KEYS + 1_000; i++) {
    const key = `stranger-${i}`;
    record.seen(key, `2001:db8:0:${i.toString(16)}::/64`);
    // Every second one finished a job before it failed one: net 0, as a fresh key's.
    if (i % 2 === 1) record.completed(key);
    record.failed(key);
  }
  assert.equal(record.of("honest").net, 50);
  // The bound still holds: the oldest strangers' records are gone (read as none).
  assert.equal(record.of("stranger-0").net, 0);
});
