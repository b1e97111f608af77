/**
 * The coordinator's status says when its held-out evaluator rests (stop 76): after
 * `EVALUATOR_MAX_WORKER_FAILURES` worker failures in a row it used to refuse every evaluation
 * until the node restarted, and nothing said why every later round published nothing. Now the
 * evaluator rests and tries a fresh worker on its own (`evaluator_worker_rest_test.ts`), and the
 * coordinator's status carries `evaluator: { failuresInARow, retryAt }`; the rounds it could not
 * evaluate still blame nobody.
 */
import assert from "node:assert/strict";
import type { CoordinatorStatus } from "../../training/round_coordinator.ts";
import { withDyingWorkers } from "./_dying_workers.ts";
import {
  EVALUATOR_MAX_WORKER_FAILURES,
  EVALUATOR_RETRY_AFTER_MS,
} from "../../training/held_out_evaluator.ts";
import { coordinatedRounds, TRAINERS } from "./_coordinated_rounds.ts";

/** Rounds run: enough evaluations failing for the evaluator to rest in the second. */
const ROUNDS = 2;

/** Two rounds of 2 honest trainers; the coordinator's status after them and the log. */
async function twoRounds(): Promise<{ status: CoordinatorStatus; lines: string[] }> {
  const { status, lines } = await coordinatedRounds(ROUNDS);
  return { status, lines };
}

Deno.test("the coordinator's status says its evaluator rests after too many worker failures, and no trainer is blamed", async () => {
  // The first worker answers the start model's evaluation, then every worker dies at its first:
  // round 0 fails twice (asked again once), round 1's first failure is the third in a row.
  await withDyingWorkers(["throw@1", "throw@0"], async (started) => {
    const before = Date.now();
    const { status, lines } = await twoRounds();
    for (const record of status.history) {
      assert.equal(record.model, record.startModel, "no new model");
      assert.deepEqual(record.accepted, [], "nobody paid");
      assert.deepEqual(record.excluded, [], "no trainer blamed");
    }
    assert.equal(status.trainers.length, TRAINERS, "both keep their seats");
    assert.equal(status.evaluator?.failuresInARow, EVALUATOR_MAX_WORKER_FAILURES, lines.join("\n"));
    const retryAt = status.evaluator?.retryAt ?? 0;
    assert.ok(
      retryAt >= before + EVALUATOR_RETRY_AFTER_MS,
      `a fresh worker is tried once the rest is over (retryAt ${retryAt})`,
    );
    assert.equal(started.length, EVALUATOR_MAX_WORKER_FAILURES, "none started while resting");
    assert.ok(
      lines.some((l) => l.includes("resting 300 s, then a fresh worker")),
      lines.join("\n"),
    );
  }, true);
});
