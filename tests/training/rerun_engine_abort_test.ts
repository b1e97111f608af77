/**
 * A re-run worker whose tfjs-wasm engine aborted (out of wasm memory once) is a failed worker, not
 * a step's answer (review s77 vtrain F2): before, the worker answered every later re-run with the
 * engine's error as if the step had failed, was never replaced and logged nothing, and every
 * honest trainer challenged after it went unpaid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { WorkerStepRerun } from "../../training/step_rerun.ts";
import { challengedHonestRun, HONEST_STAKE } from "./_challenged_honest_run.ts";

const ABORT_STAND_IN = new URL("./_engine_abort_stand_in.ts", import.meta.url).href;

Deno.test("a worker whose wasm engine aborted is logged and replaced and the step re-run on a fresh one: two honest trainers challenged after it are both paid", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-rerun-engine-abort-" });
  const lines: string[] = [];
  let started = 0;
  const rerun = new WorkerStepRerun({
    log: (line) => void lines.push(line),
    // The first worker's engine aborts before its first re-run; the ones after it are sound.
    startWorker: () =>
      new Worker(ABORT_STAND_IN, { type: "module", name: started++ === 0 ? "abort" : "sound" }),
  });
  const runs: Awaited<ReturnType<typeof challengedHonestRun>>[] = [];
  try {
    for (const seed of [3, 4]) {
      const n = await challengedHonestRun(`${dir}/${seed}`, rerun, seed);
      runs.push(n);
      assert.deepEqual(await n.result, { challenged: true, ok: true });
      await n.closeWindow();
      assert.equal(await n.status(), "final");
      const account = await n.account();
      assert.ok(account.balance > 0, "the honest trainer is paid");
      assert.equal(account.stake, HONEST_STAKE);
    }
    assert.equal(started, 2, "one fresh worker for the broken one, then no more");
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0], /step re-run worker failed \(its re-run failed: .*(Aborted|memory)/);
    assert.match(lines[0], /try 2 of 2/);
  } finally {
    for (const n of runs) await n.system.shutdown();
    rerun.close();
    await Deno.remove(dir, { recursive: true });
  }
});
