/**
 * Fresh keys against a router's choice of worker (review s76 wirepeer F1–F3;
 * `network/worker_choice.ts`, `network/worker_record.ts`, `network/_worker_routing.ts`): keys are
 * free, so workers under new keys that claim to be idle and then drop or stall each job must cost
 * a job at most one failed try while an honest worker with room is connected, and a client never
 * sees their error; a worker's track record outranks its claims; a newcomer still gets work. A
 * real NetworkActor and NetworkInferencePort, in memory, on a fake clock.
 */
import assert from "node:assert/strict";
import { chooseWorker, type WorkerCandidate } from "../../network/worker_choice.ts";
import { WorkerRecord } from "../../network/worker_record.ts";
import { NEWCOMER_EVERY } from "../../network/_worker_routing.ts";
import { MAX_WORKERS_PER_JOB } from "../../network/failover.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFO, MODEL } from "./_router_fixture.ts";
import type { JobSummary, StreamedToken } from "../../inference/inference_port.ts";
import type { Connection } from "../../protocols/connection.ts";
import type { InferenceEvent } from "../../protocols/inference_messages.ts";
import type { PeerLoad } from "../../protocols/peer_hello.ts";
import { PeerGoodbyeMessage } from "../../protocols/peer_goodbye.ts";
import { STALL_MS, type SybilRouter, sybilRouter } from "./_sybil_router.ts";
import { StallingPort } from "../inference/_stalling_port.ts";
import { Dropper, Honest, type ScriptedPort, token, WHOLE } from "./_resuming_ports.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import { parseReceipt } from "../../protocols/receipt.ts";
import { jobFor, TEXT, TOKENS as SCRIPTED_TOKENS } from "./_hostile_worker_fixture.ts";
import {
  crashingWorker,
  endEvent,
  events,
  receiptFor,
  router as scriptedRouter,
  run as runScripted,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";

/** What a liar's hello claims: room for 8, nothing running. */
const IDLE: PeerLoad = { running: 0, queued: 0, slots: 8, queueLimit: 8 };
/** What the honest worker's hello says: 1 job of 4 slots running (it has room). */
const BUSY: PeerLoad = { running: 1, queued: 0, slots: 4, queueLimit: 4 };
/** The address group of the host that makes the fresh keys (TEST-NET-1). */
const SYBIL_HOST = "192.0.2.7";
/** The honest worker's address group (TEST-NET-2). */
const HONEST_HOST = "198.51.100.1";

/** `MAX_WORKERS_PER_JOB` droppers under fresh keys, all claiming room, from `group`. */
async function freshDroppers(r: SybilRouter, group?: string) {
  const droppers = Array.from({ length: MAX_WORKERS_PER_JOB }, () => new Dropper());
  for (const d of droppers) d.connection = (await r.connect(d, IDLE, group)).connection;
  return droppers;
}

const submitsOf = (ports: ScriptedPort[]) => ports.reduce((n, p) => n + p.submits, 0);

Deno.test("sybil F1: four fresh droppers from one host before each job, beside a new honest worker with room: the first job completes after one failed try, every later one on the honest worker; no client sees an error", async () => {
  const r = await sybilRouter();
  try {
    const honest = new Honest();
    await r.connect(honest, BUSY, HONEST_HOST);
    const tries: number[] = [];
    const droppers: Dropper[] = [];
    for (let n = 0; n < 3; n++) {
      droppers.push(...await freshDroppers(r, SYBIL_HOST)); // the host rotates keys each job
      const before = submitsOf(droppers);
      const res = await r.run(`f1-${n}`);
      assert.deepEqual(
        [res.got, res.finishReason, res.code],
        [WHOLE, "length", undefined],
        `job ${n}`,
      );
      tries.push(submitsOf(droppers) - before);
    }
    // The first job met a dropper (all were strangers, the droppers claimed more room); its
    // failure counts against its host, so the fresh keys beside it and after it are suspect.
    assert.deepEqual(tries, [1, 0, 0]);
    assert.equal(honest.ran, 3);
  } finally {
    await r.close();
  }
});

Deno.test("sybil F1, the review's run: four fresh droppers with no known address before each job, beside a new honest worker: the first job loses one try, then resumes on the worker known longest; every later job runs on the honest worker", async () => {
  const r = await sybilRouter();
  try {
    const honest = new Honest();
    await r.connect(honest, BUSY);
    const tries: number[] = [];
    const droppers: Dropper[] = [];
    for (let n = 0; n < 3; n++) {
      droppers.push(...await freshDroppers(r));
      const before = submitsOf(droppers);
      const res = await r.run(`review-${n}`);
      assert.deepEqual([res.got, res.finishReason, res.code], [WHOLE, "length", undefined]);
      tries.push(submitsOf(droppers) - before);
    }
    assert.deepEqual(tries, [1, 0, 0]);
    assert.equal(honest.ran, 3);
  } finally {
    await r.close();
  }
});

Deno.test("sybil F1: fresh droppers with no known address, beside an established honest worker, cost a job at most one failed try, and only on a newcomer's turn", async () => {
  const r = await sybilRouter();
  try {
    const honest = new Honest();
    await r.connect(honest, BUSY);
    // The honest worker's track record: one job run to its end.
    assert.equal((await r.run("warm-up")).finishReason, "length");
    const tries: number[] = [];
    const droppers: Dropper[] = [];
    for (let n = 0; n < NEWCOMER_EVERY + 2; n++) {
      droppers.push(...await freshDroppers(r));
      const before = submitsOf(droppers);
      const res = await r.run(`f1b-${n}`);
      assert.deepEqual([res.got, res.finishReason], [WHOLE, "length"], `job ${n}`);
      // Tries of any dropper, this job's or an earlier one's still connected.
      tries.push(submitsOf(droppers) - before);
    }
    // One job in NEWCOMER_EVERY gives a stranger its try; that job resumes on the honest worker.
    const expected = Array.from(
      { length: NEWCOMER_EVERY + 2 },
      (_, n) => n === NEWCOMER_EVERY - 1 ? 1 : 0,
    );
    assert.deepEqual(tries, expected);
    assert.equal(honest.ran, NEWCOMER_EVERY + 3);
  } finally {
    await r.close();
  }
});

Deno.test("sybil F2: four fresh stallers from one host before each job: the first job waits one stall timeout and completes on the honest worker, later ones wait none", async () => {
  const r = await sybilRouter();
  try {
    const honest = new Honest();
    await r.connect(honest, BUSY, HONEST_HOST);
    const results: { finishReason: string; code?: string; fakeMs: number }[] = [];
    const tries: number[] = [];
    const stallers: StallingPort[] = [];
    const submits = () => stallers.reduce((k, s) => k + s.submits, 0);
    for (let n = 0; n < 3; n++) {
      for (let k = 0; k < MAX_WORKERS_PER_JOB; k++) {
        const staller = new StallingPort(INFO, []);
        stallers.push(staller);
        await r.connect(staller, IDLE, SYBIL_HOST);
      }
      const before = submits();
      const res = await r.run(`f2-${n}`);
      assert.deepEqual(res.got, WHOLE, `job ${n}`);
      results.push({ finishReason: res.finishReason, code: res.code, fakeMs: res.fakeMs });
      tries.push(submits() - before);
    }
    assert.deepEqual(results.map((x) => [x.finishReason, x.code]), [
      ["length", undefined],
      ["length", undefined],
      ["length", undefined],
    ]);
    assert.deepEqual(tries, [1, 0, 0]);
    // One stall timeout for the first (moved in half steps), none for the later ones.
    assert.ok(results[0].fakeMs <= STALL_MS + STALL_MS / 2, `waited ${results[0].fakeMs} ms`);
    assert.ok(results[1].fakeMs <= STALL_MS / 2 && results[2].fakeMs <= STALL_MS / 2);
  } finally {
    await r.close();
  }
});

// ---- the rule itself ------------------------------------------------------------------------

function candidate(key: string, extra: Partial<WorkerCandidate> = {}): WorkerCandidate {
  return { key, models: [MODEL], convicted: false, inFlight: 0, load: IDLE, ...extra };
}

Deno.test("sybil F3: on a router with a ledger, a staked honest worker with credit beats a fresh key that pledged 1 and claims 1e6 free slots", () => {
  const honest = candidate("honest", {
    load: BUSY,
    standing: { stake: 10_000, locked: 100, balance: 500_000 },
  });
  const fresh = candidate("fresh", {
    load: { running: 0, queued: 0, slots: 1_000_000, queueLimit: 1_000_000 },
    standing: { stake: 1, locked: 0, balance: 0 },
  });
  assert.equal(chooseWorker([fresh, honest], { model: MODEL })?.key, "honest");
  // Jobs run to their end here are a track record too, where no ledger is kept.
  const provenHere = candidate("proven", { load: BUSY, record: { net: 3, suspect: false } });
  assert.equal(chooseWorker([candidate("stranger"), provenHere], {})?.key, "proven");
  // Claimed load decides among workers of like standing.
  const idleProven = candidate("idle-proven", { record: { net: 1, suspect: false } });
  assert.equal(chooseWorker([provenHere, idleProven], {})?.key, "idle-proven");
});

Deno.test("worker choice: a newcomer's turn puts a clean stranger with a free slot first, never a suspect one, and a job a stranger failed gives no other its turn", () => {
  const proven = candidate("proven", { load: BUSY, record: { net: 5, suspect: false } });
  const stranger = candidate("stranger");
  const suspect = candidate("suspect", { record: { net: 0, suspect: true } });
  assert.equal(chooseWorker([proven, stranger], { newcomerTurn: true })?.key, "stranger");
  assert.equal(chooseWorker([proven, suspect], { newcomerTurn: true })?.key, "proven");
  // A stranger whose job would queue does not take the turn.
  const queues = candidate("queues", { load: { ...IDLE, running: 8 } });
  assert.equal(chooseWorker([proven, queues], { newcomerTurn: true })?.key, "proven");
  // Stake shown does not put a second stranger before a proven worker with room.
  const staked = candidate("staked", { standing: { stake: 5, locked: 0, balance: 0 } });
  assert.equal(chooseWorker([proven, staked], { strangerFailed: true })?.key, "proven");
  // No proven worker with room: the strangers after all.
  const provenFull = candidate("full", {
    load: { ...BUSY, running: 4, queued: 4 },
    record: proven.record,
  });
  assert.equal(chooseWorker([provenFull, staked], { strangerFailed: true })?.key, "staked");
  // And among strangers, after one failed the job: the one known longest, not the idlest.
  const older = candidate("older", { load: BUSY, record: { net: 0, suspect: false, since: 1 } });
  const newer = candidate("newer", { record: { net: 0, suspect: false, since: 9 } });
  assert.equal(chooseWorker([newer, older], {})?.key, "newer");
  assert.equal(chooseWorker([newer, older], { strangerFailed: true })?.key, "older");
});

/** A key's net record and suspicion, without when it was first seen. */
function standingOf(record: WorkerRecord, key: string) {
  const { net, suspect } = record.of(key);
  return { net, suspect };
}

Deno.test("worker record: a failure of one key counts against a fresh key of its address group, not of another group; a finished job does not clear the group", () => {
  let now = 0;
  const record = new WorkerRecord({ now: () => now });
  record.seen("dropper", SYBIL_HOST);
  record.seen("fresh-same-host", SYBIL_HOST);
  record.seen("fresh-other-host", HONEST_HOST);
  record.failed("dropper");
  assert.deepEqual(standingOf(record, "dropper"), { net: -1, suspect: true });
  assert.deepEqual(standingOf(record, "fresh-same-host"), { net: 0, suspect: true });
  assert.deepEqual(standingOf(record, "fresh-other-host"), { net: 0, suspect: false });
  record.seen("honest-same-host", SYBIL_HOST);
  record.completed("honest-same-host");
  assert.deepEqual(standingOf(record, "honest-same-host"), { net: 1, suspect: false });
  assert.equal(record.of("fresh-same-host").suspect, true, "one finished job whitewashed the host");
  // The group's while ends; its fresh keys are clean strangers again.
  now += 60 * 60_000;
  assert.equal(record.of("fresh-same-host").suspect, false);
});

Deno.test("sybil routing: failures of one key count against a fresh key of the same address group: the fresh stranger from another group is asked first", async () => {
  const r = await sybilRouter();
  try {
    const honest = new Honest();
    await r.connect(honest, BUSY, HONEST_HOST);
    // One dropper from the host fails a job (it claimed more room than the honest worker).
    const [dropper] = [new Dropper()];
    dropper.connection = (await r.connect(dropper, IDLE, SYBIL_HOST)).connection;
    assert.equal((await r.run("g1")).finishReason, "length");
    assert.equal(dropper.submits, 1);
    // A fresh key of that host and a fresh key of another, both claiming room.
    const sameHost = new Honest();
    const otherHost = new Honest();
    await r.connect(sameHost, IDLE, SYBIL_HOST);
    await r.connect(otherHost, { ...IDLE, running: 1 }, "203.0.113.9");
    // The honest worker is proven now; on plain picks it runs the jobs. Busy it up so only
    // strangers have room: the clean stranger is asked, not the host's fresh key.
    await r.connect(new Honest(), BUSY, HONEST_HOST); // a second stranger, same load as before
    const before = [sameHost.ran, otherHost.ran];
    for (let n = 0; n < NEWCOMER_EVERY; n++) await r.run(`g2-${n}`);
    assert.deepEqual(before, [0, 0]);
    assert.equal(sameHost.ran, 0, "the host's fresh key was given a job on its host's record");
    assert.equal(otherHost.ran, 1, "the clean newcomer got its turn");
  } finally {
    await r.close();
  }
});

Deno.test("sybil routing: a newcomer alone gets every job, even from a host that failed lately", async () => {
  const r = await sybilRouter();
  try {
    const dropper = new Dropper();
    dropper.connection = (await r.connect(dropper, IDLE, SYBIL_HOST)).connection;
    const newcomer = new Honest();
    await r.connect(newcomer, BUSY, SYBIL_HOST);
    const first = await r.run("alone-0");
    assert.deepEqual([first.got, first.finishReason], [WHOLE, "length"]);
    // The dropper is gone; its host is suspect; the newcomer is the only worker left.
    for (let n = 1; n < 4; n++) {
      assert.deepEqual((await r.run(`alone-${n}`)).finishReason, "length");
    }
    assert.equal(newcomer.ran, 4);
  } finally {
    await r.close();
  }
});

Deno.test("sybil routing: a newcomer beside a proven worker with room gets its bounded share: one job in NEWCOMER_EVERY", async () => {
  const r = await sybilRouter();
  try {
    const proven = new Honest();
    await r.connect(proven, BUSY);
    assert.equal((await r.run("warm-up")).finishReason, "length");
    const jobs = 2 * NEWCOMER_EVERY;
    const newcomers: Honest[] = [];
    for (let n = 0; n < jobs; n++) {
      // A fresh honest newcomer claiming more room each time, gone after the job (so none
      // becomes proven and the share is what is measured).
      const newcomer = new Honest();
      newcomers.push(newcomer);
      const { connection } = await r.connect(newcomer, IDLE);
      assert.equal((await r.run(`share-${n}`)).finishReason, "length");
      await connection.close();
    }
    const ran = newcomers.map((w) => w.ran);
    assert.equal(ran.reduce((a, b) => a + b, 0), 2, `newcomers ran ${JSON.stringify(ran)}`);
    assert.equal(ran[NEWCOMER_EVERY - 1], 1, "the first turn came after NEWCOMER_EVERY - 1 jobs");
    assert.equal(proven.ran, 1 + jobs - 2);
  } finally {
    await r.close();
  }
});

// ---- what a dropper earns ---------------------------------------------------------------------

Deno.test("sybil ledger: a fresh key that streams one token and drops is credited nothing; the honest takeover's receipt, the one the router hands its validator, covers the whole job", async () => {
  const dropper = await crashingWorker([wireToken(0)]);
  const good = await scriptedWorker((body, _n, identity) => {
    const k = body.resume?.length ?? 0;
    const list: InferenceEvent[] = [start(body.job, k > 0 ? { resumedFrom: k } : {})];
    for (let i = k; i < SCRIPTED_TOKENS; i++) list.push(wireToken(i));
    list.push(endEvent(body.job, SCRIPTED_TOKENS - k, receiptFor(body.job, identity, TEXT)));
    return events(list);
  });
  const r = await scriptedRouter([dropper.toWorker, good.toWorker]);
  try {
    const got = await runScripted(r.port, jobFor("dropper-credit"), dropper);
    assert.equal(got.text, TEXT);
    assert.equal(got.failed, undefined);
    const told = r.recorder.told as ValidatorMessage[];
    // The ledger's whole input from this job: one receipt, the takeover's, for every token.
    const receipts = told.filter((m) => m.type === "receipt");
    assert.equal(receipts.length, 1);
    assert.ok(receipts[0].type === "receipt");
    assert.equal(receipts[0].origin, good.key);
    assert.equal(parseReceipt(receipts[0].receipt).tokenCount, SCRIPTED_TOKENS);
    // Nothing names the dropper: no receipt, no claim against it (its one token was honest).
    assert.ok(
      told.every((m) => JSON.stringify(m).indexOf(dropper.key) < 0 || m.type !== "receipt"),
    );
    assert.equal(told.filter((m) => m.type === "stream_claim").length, 0);
  } finally {
    await dropper.close();
    await good.close();
    await r.system.shutdown();
  }
});

// ---- honest restarts and honest newcomers (review s76 vroute F3, F4) ---------------------------

/**
 * Runs its first job to its end; each later job gets one token, and once two are in flight it
 * restarts for an upgrade: says goodbye (`stopping`) and closes its connection.
 */
class Restarter extends Honest {
  connection?: Connection;
  #cut = 0;
  override tokens(from: number, done: (summary: JobSummary) => void) {
    if (this.submits === 1) return super.tokens(from, done);
    let sent = false;
    return new ReadableStream<StreamedToken>({
      pull: async (c) => {
        if (sent) return new Promise<void>(() => {}); // cut by the restart
        sent = true;
        c.enqueue(token(from));
        if (++this.#cut === 2) {
          await this.connection!.notify(PeerGoodbyeMessage, { reason: "stopping" });
          await this.connection!.close();
        }
      },
    }, { highWaterMark: 0 });
  }
}

Deno.test("sybil vroute F3: a proven worker that says goodbye with two jobs in flight (a restart) and comes back under its key is still proven: it gets jobs again beside another proven worker", async () => {
  const r = await sybilRouter();
  try {
    const identity = Identity.generate();
    const restarter = new Restarter();
    restarter.connection = (await r.connect(restarter, IDLE, HONEST_HOST, identity)).connection;
    assert.equal((await r.run("first")).finishReason, "length"); // its track record: 1 job
    const other = new Honest();
    await r.connect(other, BUSY, "198.51.100.2");
    // Two jobs at once, both to it (proven, most room); it restarts with both in flight.
    assert.deepEqual(await r.runAtOnce(["cut-a", "cut-b"]), ["length", "length"]); // both failed over
    assert.equal(restarter.submits, 3);
    // Back under the same key and host, upgraded; beside it the other proven worker.
    const back = new Honest();
    await r.connect(back, IDLE, HONEST_HOST, identity);
    for (let n = 0; n < 2 * NEWCOMER_EVERY; n++) {
      assert.equal((await r.run(`after-${n}`)).finishReason, "length");
    }
    // It claims more room than the other, and its record is still that of a proven worker.
    assert.ok(back.ran >= NEWCOMER_EVERY, `back ran ${back.ran}, the other ${other.ran}`);
  } finally {
    await r.close();
  }
});

Deno.test("sybil vroute F4: fresh keys from distinct /64s, each claiming to be idle, do not take the newcomer's turns from an honest newcomer known longer that says it runs a job", async () => {
  const r = await sybilRouter();
  try {
    const proven = new Honest();
    await r.connect(proven, BUSY, HONEST_HOST);
    assert.equal((await r.run("warm-up")).finishReason, "length");
    const newcomer = new Honest();
    await r.connect(newcomer, BUSY, "203.0.113.5"); // 1 of 4 running: another router's job
    const droppers: Dropper[] = [];
    // Up to the first newcomer's turn (the warm-up's pick was of a stranger: no turn counted).
    for (let n = 0; n < NEWCOMER_EVERY; n++) {
      // One fresh key per job, each from its own /64 of one /48.
      const dropper = new Dropper();
      dropper.connection =
        (await r.connect(dropper, IDLE, `2001:db8:0:${n.toString(16)}::/64`)).connection;
      droppers.push(dropper);
      const res = await r.run(`turns-${n}`);
      assert.deepEqual([res.got, res.finishReason], [WHOLE, "length"], `job ${n}`);
    }
    assert.equal(newcomer.ran, 1, "the honest newcomer got the turn");
    assert.equal(submitsOf(droppers), 0, "no fresh dropper took it");
  } finally {
    await r.close();
  }
});
