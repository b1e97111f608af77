/**
 * A round whose held-out evaluation fails is not the trainers' doing (review s75 vtrain F3): the
 * worker died after one uncaught error, the round took the failure for a refusal for loss ("no
 * new model") and threw away two honest deltas unpaid, and every later round hung on the dead
 * worker. Now the coordinator asks a failed evaluation once more, on a fresh worker: a round whose
 * worker dies once publishes its model and its outcome names both trainers (what validators
 * credit). A round whose evaluation fails twice publishes nothing, so nobody is paid, and no
 * trainer is excluded for it.
 */
import assert from "node:assert/strict";
import type { TrainingGossip } from "../../protocols/training_messages.ts";
import type { RoundRecord } from "../../training/coordinator_status.ts";
import { withDyingWorkers } from "./_dying_workers.ts";
import { coordinatedRounds, TRAINERS } from "./_coordinated_rounds.ts";

/** One round of 2 honest trainers; its record, the outcomes gossiped and the log. */
async function oneRound(): Promise<
  { record: RoundRecord; outcomes: TrainingGossip[]; lines: string[] }
> {
  const { status, outcomes, lines } = await coordinatedRounds(1);
  return { record: status.history[0], outcomes, lines };
}

Deno.test("a round whose evaluator worker dies once asks again on a fresh worker, publishes its model and pays both trainers", async () => {
  // The first worker answers the start model's evaluation (at the coordinator's start), then
  // dies at the round's first; the next one is the real worker.
  await withDyingWorkers(["throw@1"], async (started) => {
    const { record, outcomes, lines } = await oneRound();
    assert.notEqual(record.model, record.startModel, lines.join("\n"));
    assert.equal(record.accepted.length, TRAINERS, lines.join("\n"));
    assert.deepEqual(record.excluded, []);
    assert.equal(outcomes.length, 1, "the round's outcome went out");
    const [outcome] = outcomes;
    assert.ok(outcome.kind === "outcome");
    // The accepted trainers are the ones credited (`credit` is their receipts); with no storage
    // here the outcome carries no delta files.
    assert.deepEqual(outcome.body.accepted, record.accepted, "both trainers in what is credited");
    assert.equal(lines.filter((l) => l.includes("evaluator's worker failed")).length, 1);
    assert.ok(started[0].terminated, "the dead worker terminated");
    assert.equal(started.length, 2);
  });
});

Deno.test("a round whose evaluation fails on a fresh worker too publishes nothing, pays nobody and excludes no trainer", async () => {
  // The first answers the start model's evaluation, then every worker dies at its first.
  await withDyingWorkers(["throw@1", "throw@0"], async () => {
    const { record, outcomes, lines } = await oneRound();
    assert.equal(record.model, record.startModel, "no new model");
    assert.deepEqual(record.accepted, [], "nobody paid");
    assert.deepEqual(record.excluded, [], "no trainer blamed");
    assert.equal(outcomes.length, 0, "no outcome: nothing for a validator to credit");
    assert.ok(
      lines.some((l) =>
        l.includes("round 0: held-out evaluation failed (the coordinator's fault, no trainer's)")
      ),
      lines.join("\n"),
    );
    assert.equal(lines.filter((l) => l.includes("evaluator's worker failed")).length, 2);
  }, true);
});
