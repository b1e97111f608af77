/**
 * An evaluator whose workers failed {@link EVALUATOR_MAX_WORKER_FAILURES} times in a row used to
 * refuse every evaluation until the node was restarted (stop 76): every later round published
 * nothing. Now it rests {@link EVALUATOR_RETRY_AFTER_MS}, failing evaluations at once (no worker
 * started, nobody blamed: the code stays `evaluator_worker_failed`), says so in its state, and
 * then tries one fresh worker; a good answer ends the rest, another failure starts a new one.
 */
import assert from "node:assert/strict";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import {
  evaluateHeldOut,
  EVALUATOR_MAX_WORKER_FAILURES,
  EVALUATOR_RETRY_AFTER_MS,
  WorkerHeldOutEvaluator,
} from "../../training/held_out_evaluator.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { TEST_ARCH, testEvaluation } from "./_fixtures.ts";
import { withDyingWorkers } from "./_dying_workers.ts";

/** The silence bound the tests give (fired by hand: its length only tells its timer apart). */
const SILENCE_MS = 1_234;

/** Fail `evaluator`'s workers `n` times in a row by their silence bound. */
async function failWorkers(
  evaluator: WorkerHeldOutEvaluator,
  timers: FakeTimers,
  n: number,
): Promise<void> {
  const weights = seededGptWeights(TEST_ARCH, 0);
  for (let i = 0; i < n; i++) {
    const owed = evaluator.evaluate(weights);
    timers.fireFor(SILENCE_MS);
    await assert.rejects(owed, { code: "evaluator_worker_failed" });
  }
}

Deno.test("after its workers fail a bounded number of times in a row, the evaluator rests, then starts a fresh worker on its own", async () => {
  const evaluation = await testEvaluation();
  const timers = new FakeTimers();
  const lines: string[] = [];
  // Every worker up to the bound dies; the one after it is the real worker.
  const dying = Array.from({ length: EVALUATOR_MAX_WORKER_FAILURES }, () => "exit");
  await withDyingWorkers(dying, async (started) => {
    const evaluator = new WorkerHeldOutEvaluator(evaluation, {
      silenceMs: SILENCE_MS,
      timers,
      log: (line) => void lines.push(line),
    });
    try {
      await failWorkers(evaluator, timers, EVALUATOR_MAX_WORKER_FAILURES);
      const weights = seededGptWeights(TEST_ARCH, 0);
      // Resting: refused at once, no worker started, the same code (no trainer's fault).
      await assert.rejects(evaluator.evaluate(weights), {
        code: "evaluator_worker_failed",
        message: /failed 3 times in a row; a fresh worker is tried in 300 s/,
      });
      assert.equal(started.length, EVALUATOR_MAX_WORKER_FAILURES, "none started while resting");
      assert.deepEqual(evaluator.state(), {
        failuresInARow: EVALUATOR_MAX_WORKER_FAILURES,
        retryAt: EVALUATOR_RETRY_AFTER_MS,
      });
      assert.match(lines.at(-1)!, /resting 300 s, then a fresh worker/, lines.join("\n"));
      timers.fireFor(EVALUATOR_RETRY_AFTER_MS);
      assert.deepEqual(evaluator.state(), { failuresInARow: EVALUATOR_MAX_WORKER_FAILURES });
      const loss = await evaluator.evaluate(weights);
      assert.equal(started.length, EVALUATOR_MAX_WORKER_FAILURES + 1, "one fresh worker");
      assert.ok(Object.is(loss, await evaluateHeldOut(evaluation, weights)));
      assert.deepEqual(evaluator.state(), { failuresInARow: 0 }, "a good answer ends it");
      assert.equal(timers.armed.size, 0, "nothing armed once nothing is owed");
    } finally {
      evaluator.close();
    }
  });
});

Deno.test("a fresh worker that fails after the rest starts another rest at once, not another run of tries", async () => {
  const evaluation = await testEvaluation();
  const timers = new FakeTimers();
  await withDyingWorkers(["exit"], async (started) => {
    const evaluator = new WorkerHeldOutEvaluator(evaluation, { silenceMs: SILENCE_MS, timers });
    try {
      await failWorkers(evaluator, timers, EVALUATOR_MAX_WORKER_FAILURES);
      timers.fireFor(EVALUATOR_RETRY_AFTER_MS);
      await failWorkers(evaluator, timers, 1);
      assert.equal(started.length, EVALUATOR_MAX_WORKER_FAILURES + 1);
      await assert.rejects(evaluator.evaluate(seededGptWeights(TEST_ARCH, 0)), {
        code: "evaluator_worker_failed",
        message: /failed 4 times in a row; a fresh worker is tried in 300 s/,
      });
      assert.equal(started.length, EVALUATOR_MAX_WORKER_FAILURES + 1, "resting again");
      assert.ok(started.every((w) => w.terminated), "each dead worker terminated");
    } finally {
      evaluator.close();
    }
  }, true);
});

Deno.test("closing a resting evaluator disarms its rest", async () => {
  const evaluation = await testEvaluation();
  const timers = new FakeTimers();
  await withDyingWorkers(["exit"], async () => {
    const evaluator = new WorkerHeldOutEvaluator(evaluation, { silenceMs: SILENCE_MS, timers });
    await failWorkers(evaluator, timers, EVALUATOR_MAX_WORKER_FAILURES);
    assert.equal(timers.armed.size, 1, "the rest armed");
    evaluator.close();
    assert.equal(timers.armed.size, 0, "no timer left behind to keep the process up");
  }, true);
});
