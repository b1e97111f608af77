/**
 * The coordinator measures held-out loss in a worker of its own (`held_out_evaluator.ts`), so a
 * round's evaluations do not hold the node's event loop past its peers' idle timeout (review s75
 * newcomer F1: the coordinator and its trainers dropped each other at every round's end), and the
 * worker's numbers are the in-thread evaluation's, bit for bit: the loss gate compares them.
 */
import assert from "node:assert/strict";
import { type GptWeights, seededGptWeights } from "../../training/gpt_weights.ts";
import { evaluateHeldOut, WorkerHeldOutEvaluator } from "../../training/held_out_evaluator.ts";
import { upTheLoss } from "./_up_the_loss.ts";
import { evaluatingCoordinator } from "./_eval_coordinator.ts";
import { TEST_ARCH, testEvaluation, testSplit } from "./_fixtures.ts";

Deno.test("the evaluator's worker gives the in-thread held-out losses bit for bit", async () => {
  const evaluation = await testEvaluation();
  const start = seededGptWeights(TEST_ARCH, 0);
  const poison = await upTheLoss(0.05);
  const moved: GptWeights = new Map(
    [...start].map(([name, t]) => [name, {
      shape: t.shape,
      data: t.data.map((x, i) => x + poison.get(name)!.data[i]),
    }]),
  );
  const worker = new WorkerHeldOutEvaluator(evaluation);
  try {
    for (const weights of [start, moved]) {
      const [there, here] = [
        await worker.evaluate(weights),
        await evaluateHeldOut(evaluation, weights),
      ];
      assert.ok(Object.is(there, here), `worker ${there}, in-thread ${here}`);
    }
  } finally {
    worker.close();
  }
});

Deno.test("a stopped evaluator fails its evaluations with evaluator_stopped", async () => {
  const worker = new WorkerHeldOutEvaluator(await testEvaluation());
  const inFlight = worker.evaluate(seededGptWeights(TEST_ARCH, 0));
  worker.close();
  await assert.rejects(inFlight, { code: "evaluator_stopped" });
  await assert.rejects(worker.evaluate(seededGptWeights(TEST_ARCH, 0)), {
    code: "evaluator_stopped",
  });
});

Deno.test("the coordinator evaluates held-out loss in a worker, the in-thread numbers, and stops it with itself", async () => {
  const evaluation = await testEvaluation();
  const { heldOut } = await testSplit();
  // Every worker started while the coordinator runs, and which of them were stopped.
  const RealWorker = globalThis.Worker;
  const started: { url: string; terminated: boolean }[] = [];
  class SpiedWorker extends RealWorker {
    readonly #seen: { url: string; terminated: boolean };
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      this.#seen = { url: String(url), terminated: false };
      started.push(this.#seen);
    }
    override terminate(): void {
      this.#seen.terminated = true;
      super.terminate();
    }
  }
  globalThis.Worker = SpiedWorker;
  let status;
  try {
    ({ status } = await evaluatingCoordinator(heldOut));
  } finally {
    globalThis.Worker = RealWorker;
  }
  const evaluators = started.filter((w) => w.url.endsWith("/_held_out_evaluator_worker.ts"));
  assert.equal(evaluators.length, 1, `workers started: ${started.map((w) => w.url).join(", ")}`);
  assert.ok(evaluators[0].terminated, "stopped with the coordinator");
  const here = await evaluateHeldOut(evaluation, seededGptWeights(TEST_ARCH, 0));
  assert.ok(
    Object.is(status.initialLoss, here),
    `coordinator ${status.initialLoss}, in-thread ${here}`,
  );
});
