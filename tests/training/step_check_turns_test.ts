/**
 * The validator's re-run of opened steps lets the node's event loop turn before each step
 * (`training/step_check.ts`): tfjs computes synchronously and the steps' promises settle in
 * microtasks, so a whole challenge of `tiny` held the loop 6 to 12 s on a loaded machine, past
 * the 5 s idle timeout of its peers' connections (review s75 newcomer F1). Ordering, not timing:
 * a task that counts the loop's turns is read at each step. A turn must reach the I/O phase: in
 * Deno a chain of `setImmediate` turns completed no socket read at all (stop 76: 0 reads over
 * 9.7 s of 1.2 s blocks; the peers' keepalives went unread and the coordinator dropped both
 * trainers at once during a re-run whose longest block was 1.4 s).
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { openChallengedSteps } from "../../training/step_opening.ts";
import { checkStepOpenings } from "../../training/step_check.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { trainedRun } from "./_trained_run.ts";

const STEPS = 4;

/** A trained receipt of `STEPS` steps, a challenge of all of them and its sealed answer. */
async function answeredChallenge() {
  const { start, report, trace } = await trainedRun(STEPS);
  const validator = Identity.generate();
  const challenge = drawTrainingChallenge(report.receipt, validator, { steps: STEPS });
  const sealed = await openChallengedSteps(trace, challenge);
  return { start, report, validator, challenge, sealed };
}

Deno.test("the validator's re-run lets the event loop turn before each opened step", async () => {
  const { start, report, validator, challenge, sealed } = await answeredChallenge();
  // Counts the loop's turns until the check is over (a macrotask each turn).
  let turns = 0;
  let over = false;
  const count = () => {
    turns++;
    if (!over) setImmediate(count);
  };
  setImmediate(count);
  const seen: number[] = [];
  const began = turns;
  const check = await checkStepOpenings(report.receipt, challenge, sealed, {
    validator,
    arch: TEST_ARCH,
    startWeights: start,
    delta: report.delta,
    startModel: "start",
    shardSize: report.receipt.shardSize,
    onStep: () => void seen.push(turns),
  }).finally(() => over = true);
  assert.deepEqual(check, { ok: true });
  assert.equal(seen.length, STEPS);
  // Before the first step's re-run, and between every two, the loop turned.
  for (const [i, at] of seen.entries()) {
    const before = i === 0 ? began : seen[i - 1];
    assert.ok(at > before, `turns at each step: ${seen.join(", ")} (from ${began})`);
  }
});

Deno.test("the validator's re-run lets the node read its sockets between opened steps", async () => {
  const { start, report, validator, challenge, sealed } = await answeredChallenge();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const writer = new Worker(new URL("./_steady_writer.ts", import.meta.url).href, {
    type: "module",
    name: String(listener.addr.port),
  });
  const conn = await listener.accept();
  let reads = 0;
  const reading = (async () => {
    const buffer = new Uint8Array(1 << 16);
    while (await conn.read(buffer).catch(() => null) !== null) reads++;
  })();
  try {
    const seen: number[] = [];
    const check = await checkStepOpenings(report.receipt, challenge, sealed, {
      validator,
      arch: TEST_ARCH,
      startWeights: start,
      delta: report.delta,
      startModel: "start",
      shardSize: report.receipt.shardSize,
      onStep: () => void seen.push(reads),
    });
    assert.deepEqual(check, { ok: true });
    assert.equal(seen.length, STEPS);
    // The writer never pauses, so bytes wait at every turn: a turn that polls I/O reads them.
    assert.ok(seen.at(-1)! > seen[0], `reads seen at each step: ${seen.join(", ")}`);
  } finally {
    conn.close();
    listener.close();
    await reading;
    writer.terminate();
  }
});
