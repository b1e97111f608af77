/**
 * `WorkerStepRerun`'s rest after workers that fail in a row (`training/step_rerun.ts`): one step
 * that brings down its `RERUN_ATTEMPTS` workers costs those starts and no more, but a worker that
 * fails on every step (a broken install) was started twice for every step, forever. Past
 * `RERUN_BACKOFF_AFTER_FAILURES` failures in a row the next worker waits a back-off that doubles up
 * to `RERUN_BACKOFF_MAX_MS`; an answer resets it. Fake workers answer `fatal` (their engine broke)
 * by hand; fake timers fire the back-off by hand.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { StepRerunReply, StepRerunRequest } from "../../training/step_rerun.ts";
import {
  RERUN_ATTEMPTS,
  RERUN_BACKOFF_AFTER_FAILURES,
  RERUN_BACKOFF_BASE_MS,
  RERUN_BACKOFF_MAX_MS,
  WorkerStepRerun,
} from "../../training/step_rerun.ts";
import type { VerifiedStep } from "../../training/step_verify.ts";
import type { TrainingReceipt } from "../../training/training_receipt.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";
import { TEST_ARCH } from "./_fixtures.ts";

/** A worker the test answers for by hand. */
class FakeWorker {
  readonly got: StepRerunRequest[] = [];
  onmessage: ((event: MessageEvent<StepRerunReply>) => void) | null = null;
  onerror: ((event: ErrorEvent) => void) | null = null;
  terminated = false;
  postMessage(message: StepRerunRequest): void {
    this.got.push(message);
  }
  terminate(): void {
    this.terminated = true;
  }
  /** Answer the oldest request not answered yet. */
  answer(reply: "ok" | "fatal"): void {
    const request = this.got.shift()!;
    const data: StepRerunReply = reply === "ok"
      ? { id: request.id, ok: true, result: { ok: true } }
      : { id: request.id, ok: false, fatal: true, message: "RuntimeError: Aborted()" };
    this.onmessage!({ data } as MessageEvent<StepRerunReply>);
  }
}

const receipt = { trainer: new Uint8Array(32), steps: 3 } as unknown as TrainingReceipt;
const options = { arch: TEST_ARCH, startWeights: new Map() };
const step = (): VerifiedStep => {
  const state = () => ({ weights: new Map(), m: new Map(), v: new Map() });
  return { step: 1, before: state(), after: state(), samples: [new Uint8Array(4)] };
};

function fakeRerun() {
  const workers: FakeWorker[] = [];
  const lines: string[] = [];
  const timers = new FakeTimers();
  const rerun = new WorkerStepRerun({
    timers,
    log: (line) => void lines.push(line),
    startWorker: () => {
      const worker = new FakeWorker();
      workers.push(worker);
      return worker as unknown as Worker;
    },
  });
  /** Ask a check; the caller awaits it (rejected by close() if an assertion fails first). */
  const check = () => {
    const checked = rerun.check(receipt, step(), options);
    checked.catch(() => {});
    return checked;
  };
  const last = () => workers[workers.length - 1];
  /** The back-off timers armed now (the silence bound is the other kind). */
  const backoffs = () =>
    [...timers.armed.values()].map((t) => t.ms).filter((ms) => ms < RERUN_BACKOFF_MAX_MS + 1);
  return { rerun, workers, lines, timers, check, last, backoffs };
}

Deno.test("one step that brings down its RERUN_ATTEMPTS workers costs those starts only: the next step starts a fresh worker at once", async () => {
  const { rerun, workers, check, last, backoffs } = fakeRerun();
  try {
    assert.ok(RERUN_BACKOFF_AFTER_FAILURES > RERUN_ATTEMPTS, "one bad step never rests the rerun");
    const first = check();
    for (let i = 0; i < RERUN_ATTEMPTS; i++) last().answer("fatal");
    await assert.rejects(first, { code: "step_rerun_failed" });
    const second = check();
    assert.equal(workers.length, RERUN_ATTEMPTS + 1, "a fresh worker at once");
    assert.deepEqual(backoffs(), [], "no rest");
    last().answer("ok");
    assert.deepEqual(await second, { ok: true });
  } finally {
    rerun.close();
  }
});

Deno.test("past RERUN_BACKOFF_AFTER_FAILURES workers failed in a row, the next worker starts only after a back-off that doubles up to RERUN_BACKOFF_MAX_MS, logged; the steps owed wait for it, not failed", async () => {
  const { rerun, workers, lines, timers, check, last, backoffs } = fakeRerun();
  try {
    // Failures in a row, each on a fresh worker, until the back-off has reached its cap twice.
    let expected = RERUN_BACKOFF_BASE_MS;
    let failures = 0;
    let capped = 0;
    while (capped < 2) {
      if (last() === undefined || last().terminated || last().got.length === 0) check();
      last().answer("fatal");
      failures++;
      if (failures < RERUN_BACKOFF_AFTER_FAILURES) {
        assert.deepEqual(backoffs(), [], `no rest after ${failures} failure(s)`);
        continue;
      }
      assert.deepEqual(backoffs(), [expected], `the rest after ${failures} failures`);
      assert.match(lines.at(-1)!, new RegExp(`${failures} re-run workers failed in a row`));
      assert.match(lines.at(-1)!, new RegExp(`resting ${expected / 1000} s`));
      // A check asked while it rests waits too: it neither starts a worker nor fails.
      const started = workers.length;
      const waiting = check();
      const settled = tracker(waiting);
      await turns(1);
      assert.equal(workers.length, started, "no worker starts while it rests");
      assert.equal(settled(), false, "a step asked while it rests waits for a worker");
      timers.fireFor(expected);
      assert.equal(workers.length, started + 1, "one fresh worker once it has rested");
      assert.ok(last().got.length >= 1, "the steps owed go to it");
      if (expected === RERUN_BACKOFF_MAX_MS) capped++;
      expected = Math.min(expected * 2, RERUN_BACKOFF_MAX_MS);
    }
    // An answer ends the run of failures: the next failure replaces its worker at once.
    while (last().got.length > 0) last().answer("ok");
    const after = check();
    const started = workers.length;
    last().answer("fatal");
    assert.deepEqual(backoffs(), [], "the count starts again after an answer");
    assert.equal(workers.length, started + 1, "a fresh worker at once");
    last().answer("ok");
    assert.deepEqual(await after, { ok: true });
  } finally {
    rerun.close();
  }
});

Deno.test("a re-run closed while it rests fails the steps owed with step_rerun_stopped and disarms the back-off", async () => {
  const { rerun, workers, timers, check, last, backoffs } = fakeRerun();
  let owed: Promise<unknown> | undefined;
  for (let failures = 0; failures < RERUN_BACKOFF_AFTER_FAILURES; failures++) {
    if (last() === undefined || last().terminated || last().got.length === 0) owed = check();
    last().answer("fatal");
  }
  assert.equal(backoffs().length, 1, "resting");
  const started = workers.length;
  rerun.close();
  await assert.rejects(owed!, { code: "step_rerun_stopped" });
  assert.equal(timers.armed.size, 0, "no timer left armed");
  assert.equal(workers.length, started);
});
