/**
 * A held-out evaluator whose worker dies (review s75 vtrain F2, F3). A worker that ends with
 * `Deno.exit` sends no error event and a Deno worker has no exit event: its evaluations never
 * settled and the round hung for good. After an uncaught error the dead worker was kept, and every
 * later evaluation hung. Now a worker silent past the silence bound while it owes a reply, or
 * one with an uncaught error, is terminated, its evaluations fail with `evaluator_worker_failed`
 * (one line logged), and the next evaluation starts a fresh worker, a bounded number of times in
 * a row.
 */
import assert from "node:assert/strict";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import {
  evaluateHeldOut,
  EVALUATOR_MAX_WORKER_FAILURES,
  WorkerHeldOutEvaluator,
} from "../../training/held_out_evaluator.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, testEvaluation } from "./_fixtures.ts";
import { withDyingWorkers } from "./_dying_workers.ts";

/** The silence bound the tests give (fired by hand: its length only tells its timer apart). */
const SILENCE_MS = 1_234;

Deno.test("a worker that exits without an error event fails its evaluation after the silence bound, and the next evaluation runs on a fresh worker", async () => {
  const evaluation = await testEvaluation();
  const timers = new FakeTimers();
  const lines: string[] = [];
  await withDyingWorkers(["exit"], async (started) => {
    const evaluator = new WorkerHeldOutEvaluator(evaluation, {
      silenceMs: SILENCE_MS,
      timers,
      log: (line) => void lines.push(line),
    });
    try {
      const weights = seededGptWeights(TEST_ARCH, 0);
      const first = evaluator.evaluate(weights);
      await eventually(
        () => timers.armed.size === 1 ? true : undefined,
        "the silence bound armed for the evaluation owed",
      );
      timers.fireFor(SILENCE_MS);
      await assert.rejects(first, { code: "evaluator_worker_failed" });
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0], /worker failed \(no reply for 1234 ms/);
      assert.ok(started[0].terminated, "the dead worker is dropped");
      const loss = await evaluator.evaluate(weights);
      assert.equal(started.length, 2, "a fresh worker");
      assert.ok(Object.is(loss, await evaluateHeldOut(evaluation, weights)));
      assert.equal(timers.armed.size, 0, "no bound armed once nothing is owed");
    } finally {
      evaluator.close();
    }
  });
});

Deno.test("after an uncaught error in its worker, the evaluator starts a fresh worker for the next evaluation", async () => {
  const evaluation = await testEvaluation();
  const lines: string[] = [];
  await withDyingWorkers(["throw"], async (started) => {
    const evaluator = new WorkerHeldOutEvaluator(evaluation, {
      silenceMs: SILENCE_MS,
      timers: new FakeTimers(),
      log: (line) => void lines.push(line),
    });
    try {
      const weights = seededGptWeights(TEST_ARCH, 0);
      await assert.rejects(evaluator.evaluate(weights), { code: "evaluator_worker_failed" });
      assert.equal(lines.length, 1, lines.join("\n"));
      const second = evaluator.evaluate(weights);
      second.catch(() => {});
      assert.equal(started.length, 2, "a fresh worker, not the dead one");
      assert.ok(started[0].terminated, "the dead worker is terminated");
      assert.ok(Object.is(await second, await evaluateHeldOut(evaluation, weights)));
    } finally {
      evaluator.close();
    }
  });
});

Deno.test("an evaluator whose workers keep dying stops starting them after a bounded number in a row", async () => {
  const evaluation = await testEvaluation();
  const timers = new FakeTimers();
  await withDyingWorkers(["exit"], async (started) => {
    const evaluator = new WorkerHeldOutEvaluator(evaluation, { silenceMs: SILENCE_MS, timers });
    try {
      const weights = seededGptWeights(TEST_ARCH, 0);
      for (let i = 0; i < EVALUATOR_MAX_WORKER_FAILURES; i++) {
        const owed = evaluator.evaluate(weights);
        timers.fireFor(SILENCE_MS);
        await assert.rejects(owed, { code: "evaluator_worker_failed" });
      }
      await assert.rejects(evaluator.evaluate(weights), {
        code: "evaluator_worker_failed",
        message: /failed 3 times in a row/,
      });
      assert.equal(started.length, EVALUATOR_MAX_WORKER_FAILURES, "no worker started past it");
      assert.ok(started.every((w) => w.terminated), "each dead worker terminated");
    } finally {
      evaluator.close();
    }
  }, true);
});
