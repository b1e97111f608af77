/**
 * What the router's routing does with a worker's connection losses, as its record now judges them
 * (review s77 vroute2 F1, F2, F4; `network/worker_record.ts`): a "washer" that finishes the first
 * job of each connection and cuts the rest by closing its socket gets little more to cut than the
 * same worker stalling them (a failure seen for what it is): one comeback, not one per
 * reconnection; and one crash of an honest worker
 * seen on its two connections at different times is one stop, not two losses. A real
 * NetworkActor and NetworkInferencePort in memory, the port on a fake clock
 * (`_sybil_router.ts`).
 */
import assert from "node:assert/strict";
import { workerRecordOf } from "../../network/worker_record.ts";
import { NEWCOMER_EVERY } from "../../network/_worker_routing.ts";
import { MAX_WORKERS_PER_JOB } from "../../network/failover.ts";
import type { JobSummary, StreamedToken } from "../../inference/inference_port.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { PeerLoad } from "../../protocols/peer_hello.ts";
import { Honest, jobOf, token } from "./_resuming_ports.ts";
import { eventually } from "../_helpers/wait.ts";
import { STALL_MS, type SybilRouter, sybilRouter } from "./_sybil_router.ts";

/** What the washer's hello claims: room for 8, nothing running. */
const IDLE: PeerLoad = { running: 0, queued: 0, slots: 8, queueLimit: 8 };
/** What the honest worker's hello says: 2 of 4 slots running (it has room, less). */
const HALF: PeerLoad = { running: 2, queued: 0, slots: 4, queueLimit: 4 };
/** The washer's (and the crashing worker's) address group (TEST-NET-2). */
const WASHER_HOST = "198.51.100.20";
/** The honest worker's address group (TEST-NET-3). */
const OTHER_HOST = "203.0.113.30";
/** Rounds of two concurrent jobs the washer is offered (the review's 16). */
const ROUNDS = 16;

/**
 * Runs the first job it is given on each connection to its end (the "wash"); of each later job it
 * sends one token, then closes its connection a quarter of a stall timeout later (`close`: the
 * router sees a connection lost with no goodbye) or keeps the job hanging (`stall`: a failure).
 */
class Washer extends Honest {
  connection?: Connection;
  washNext = true;
  cut = 0;
  #closing = false;
  constructor(readonly mode: "close" | "stall", readonly r: SybilRouter) {
    super();
  }
  override tokens(from: number, done: (summary: JobSummary) => void) {
    if (this.washNext) {
      this.washNext = false;
      return super.tokens(from, done);
    }
    let sent = false;
    return new ReadableStream<StreamedToken>({
      pull: (c) => {
        if (sent) return new Promise<void>(() => {}); // cut
        sent = true;
        c.enqueue(token(from));
        this.cut++;
        if (this.mode === "stall" || this.#closing) return;
        this.#closing = true;
        const connection = this.connection!;
        this.r.timers.setTimeout(() => {
          this.#closing = false;
          void connection.close(new Error("unplugged"));
        }, STALL_MS / 4);
      },
    }, { highWaterMark: 0 });
  }
}

/** The washer beside a proven honest worker, {@link ROUNDS} rounds: what it was given and cut. */
async function washer(mode: "close" | "stall") {
  const r = await sybilRouter();
  try {
    const identity = Identity.generate();
    const other = new Honest();
    await r.connect(other, HALF, OTHER_HOST);
    assert.equal((await r.run("warm-up")).finishReason, "length");
    const w = new Washer(mode, r);
    w.connection = (await r.connect(w, IDLE, WASHER_HOST, identity)).connection;
    for (let n = 0; n < NEWCOMER_EVERY && w.ran === 0; n++) await r.run(`turn-${n}`);
    assert.equal(w.ran, 1, "its newcomer's turn came, and it finished it");
    const ends: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      ends.push(...await r.runAtOnce([`round-${round}-0`, `round-${round}-1`]));
      if (!w.connection.isClosed) continue;
      w.washNext = true; // back at once, under its key
      w.connection = (await r.connect(w, IDLE, WASHER_HOST, identity)).connection;
    }
    // Failover finished every cut job elsewhere: no client saw an error.
    assert.deepEqual([...new Set(ends)], ["length"]);
    return {
      given: w.submits,
      cut: w.cut,
      standing: workerRecordOf(r.system).of(toHex(identity.publicKey)),
    };
  } finally {
    await r.close();
  }
}

Deno.test("loss routing: a washer that finishes one job per connection and closes its socket on the rest cuts at most the two jobs of its one comeback more than one that stalls them, and ends suspect", async () => {
  const close = await washer("close");
  const stall = await washer("stall");
  assert.ok(
    close.cut <= stall.cut + 2,
    `close ${JSON.stringify(close)} stall ${JSON.stringify(stall)}`,
  );
  // Its held loss's comeback: one newcomer's turn, then one round as proven (16 rounds before).
  assert.ok(close.given <= 2 * stall.given, `close ${JSON.stringify(close)}`);
  assert.equal(close.standing.suspect, true, JSON.stringify(close));
});

/** Read every token of a job the client reads to its end, or to its failure. */
async function drain(tokens: ReadableStream<StreamedToken>): Promise<void> {
  try {
    for await (const _ of tokens) { /* the client reads every token */ }
  } catch { /* the job's summary says how it failed */ }
}

/** Honest until `dead`: then it sends one token of each job and nothing more (it died). */
class Dies extends Honest {
  dead = false;
  override tokens(from: number, done: (summary: JobSummary) => void) {
    if (!this.dead) return super.tokens(from, done);
    let sent = false;
    return new ReadableStream<StreamedToken>({
      pull: (c) => {
        if (sent) return new Promise<void>(() => {});
        sent = true;
        c.enqueue(token(from));
      },
    }, { highWaterMark: 0 });
  }
}

Deno.test("loss routing: one crash of a worker with two connections, seen on each at a different time with a job given to the one still open between, is one stop: not suspect, and back under its key it gets a job within NEWCOMER_EVERY picks", async () => {
  const r = await sybilRouter();
  try {
    const identity = Identity.generate();
    const key = toHex(identity.publicKey);
    const record = workerRecordOf(r.system);
    const one = new Dies(), two = new Dies();
    const c1 = (await r.connect(one, IDLE, WASHER_HOST, identity)).connection;
    const c2 = (await r.connect(two, IDLE, WASHER_HOST, identity)).connection;
    assert.equal((await r.run("proven")).finishReason, "length");
    assert.equal(record.of(key).net, 1);
    one.dead = two.dead = true; // the process dies
    const before = [one.submits, two.submits];
    const jobs = [await r.port.submit(jobOf("cut-a")), await r.port.submit(jobOf("cut-b"))];
    // No other worker to take them over: they may fail (their summaries say so).
    const reads = jobs.map((handle) => drain(handle.tokens));
    await r.timers.advance(1);
    // The link that got jobs in flight closes first (a FIN); the other is still open.
    const firstIsOne = one.submits - before[0] >= two.submits - before[1];
    const [first, second, still] = firstIsOne ? [c1, c2, two] : [c2, c1, one];
    await first.close(new Error("FIN"));
    await eventually(async () => {
      await r.timers.advance(1);
      return record.of(key).net < 1 || undefined;
    }, "the first link's loss noted");
    // A job before the second link's close is seen: nobody else has room, so it gets it.
    const given = still.submits;
    const next = await r.port.submit(jobOf("next"));
    const nextRead = drain(next.tokens);
    await r.timers.advance(1);
    assert.ok(still.submits > given, "the still open link was given the next job");
    await second.close(new Error("keepalive timeout"));
    const other = new Honest();
    await r.connect(other, HALF, OTHER_HOST);
    for (let step = 0; step < 4 * MAX_WORKERS_PER_JOB; step++) {
      await r.timers.advance(STALL_MS / 2);
      await new Promise((res) => setTimeout(res, 0));
    }
    await Promise.all([...reads, nextRead]);
    // One stop, its jobs held: not suspect (three failures would have made it so).
    assert.equal(record.of(key).suspect, false, JSON.stringify(record.of(key)));
    const back = new Honest();
    await r.connect(back, IDLE, WASHER_HOST, identity);
    for (let n = 0; n < NEWCOMER_EVERY && back.ran === 0; n++) {
      assert.equal((await r.run(`after-${n}`)).finishReason, "length");
    }
    assert.equal(back.ran, 1, "back under its key, it got a job within NEWCOMER_EVERY picks");
  } finally {
    await r.close();
  }
});
