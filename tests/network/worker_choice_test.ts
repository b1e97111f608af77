/** The router's worker choice, rule by rule (`network/worker_choice.ts`). */
import assert from "node:assert/strict";
import { chooseWorker, type WorkerCandidate } from "../../network/worker_choice.ts";

const idle = { running: 0, queued: 0, slots: 2, queueLimit: 2 };
const full = { running: 2, queued: 2, slots: 2, queueLimit: 2 };
const staked = { stake: 1_000, locked: 0, balance: 0 };

function worker(key: string, extra: Partial<WorkerCandidate> = {}): WorkerCandidate {
  return { key, models: ["m"], convicted: false, inFlight: 0, load: idle, ...extra };
}

Deno.test("worker choice: only workers serving the model, not convicted, not excluded", () => {
  const pool = [
    worker("other-model", { models: ["x"] }),
    worker("no-model", { models: [] }),
    worker("convicted", { convicted: true }),
    worker("excluded"),
    worker("ok", { load: { ...idle, running: 1 } }),
  ];
  assert.equal(chooseWorker(pool, { model: "m", exclude: ["excluded"] })?.key, "ok");
  assert.equal(chooseWorker(pool.slice(0, 4), { model: "m", exclude: ["excluded"] }), undefined);
  // Any model: a worker that lists none still runs nothing.
  assert.equal(chooseWorker([worker("no-model", { models: [] })], {}), undefined);
});

Deno.test("worker choice: capacity first; when all are full, the least loaded of them", () => {
  const backedFull = worker("full", { load: full, standing: staked });
  const unbackedFree = worker("free", { load: { ...idle, running: 3 } });
  assert.equal(chooseWorker([backedFull, unbackedFree], { model: "m" })?.key, "free");
  const fuller = worker("fuller", { load: { ...full, queued: 3 } });
  assert.equal(chooseWorker([fuller, worker("full", { load: full })], {})?.key, "full");
});

Deno.test("worker choice: a worker with free stake here before one without, then the least loaded", () => {
  const unbacked = worker("unbacked");
  const lockedUp = worker("locked", { standing: { stake: 100, locked: 100, balance: 9 } });
  const backedBusy = worker("backed-busy", { standing: staked, load: { ...idle, running: 1 } });
  const backedIdle = worker("backed-idle", { standing: staked });
  assert.equal(chooseWorker([unbacked, lockedUp, backedBusy], {})?.key, "backed-busy");
  assert.equal(chooseWorker([unbacked, backedBusy, backedIdle], {})?.key, "backed-idle");
});

Deno.test("worker choice: load is the larger of the hello's count and our own requests in flight", () => {
  // Its hello is stale (says idle) but we already sent it three jobs.
  const stale = worker("stale", { inFlight: 3 });
  const busy = worker("busy", { load: { ...idle, running: 2 } });
  assert.equal(chooseWorker([stale, busy], {})?.key, "busy");
  // No hello yet: our own count is all there is.
  const quiet = worker("quiet", { load: undefined, inFlight: 1 });
  assert.equal(chooseWorker([quiet, worker("idle")], {})?.key, "idle");
});

Deno.test("worker choice: an input's holder before an equally loaded other; then the better record; ties keep order", () => {
  assert.equal(
    chooseWorker([worker("far"), worker("near", { holdsInput: true })], {})?.key,
    "near",
  );
  const proven = worker("proven", { standing: { ...staked, balance: 50 } });
  const fresh = worker("fresh", { standing: staked });
  assert.equal(chooseWorker([fresh, proven], {})?.key, "proven");
  assert.equal(chooseWorker([worker("first"), worker("second")], {})?.key, "first");
});

Deno.test("worker choice: capacity counts our own requests in flight too, so a backed worker full by our count yields to an idle unbacked one", () => {
  // Its hello (sent before this burst) shows 4 free places; we have sent it 4 jobs since.
  const backed = worker("backed", { standing: staked, inFlight: 4 });
  const unbacked = worker("unbacked");
  assert.equal(chooseWorker([backed, unbacked], {})?.key, "unbacked");
  // One place left by our count: still the backed one.
  assert.equal(
    chooseWorker([worker("backed", { standing: staked, inFlight: 3 }), unbacked], {})?.key,
    "backed",
  );
});

Deno.test("worker choice: a worker where the job starts at once before a less loaded one where it would wait in the queue", () => {
  // "wide" seats 8 and runs 5; "narrow" seats 1 and runs it: the job would queue there.
  const wide = worker("wide", { load: { running: 5, queued: 0, slots: 8, queueLimit: 64 } });
  const narrow = worker("narrow", { load: { running: 1, queued: 0, slots: 1, queueLimit: 64 } });
  assert.equal(chooseWorker([narrow, wide], {})?.key, "wide");
  // By our own count too: a burst this router just sent fills the seats its hello showed free.
  const filled = worker("wide", {
    load: { running: 5, queued: 0, slots: 8, queueLimit: 64 },
    inFlight: 8,
  });
  const emptyQueue = worker("narrow", {
    load: { running: 1, queued: 0, slots: 1, queueLimit: 64 },
  });
  assert.equal(chooseWorker([filled, emptyQueue], {})?.key, "narrow");
  // Where both would queue, the least loaded as before.
  const queued = worker("queued", { load: { running: 1, queued: 2, slots: 1, queueLimit: 64 } });
  assert.equal(chooseWorker([queued, narrow], {})?.key, "narrow");
});
