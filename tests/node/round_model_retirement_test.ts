/**
 * Training rounds' models on a node (`node/_round_model_retirement.ts`, review s78 F2): many
 * rounds leave a bounded number of loaded models, model workers and `/metrics` series with a
 * `model` label; a replaced model stays registered until its receipts' challenge window has
 * passed; a model registered by something else is never retired.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildGptModel } from "../../inference/model_builder.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { UnknownModelError } from "../../inference/errors.ts";
import {
  ROUND_MODEL_JOB_TAIL_MS,
  ROUND_MODELS_KEPT_LOADED,
  RoundModelRetirement,
} from "../../node/_round_model_retirement.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";

const tmp = await Deno.makeTempDir({ prefix: "veriflow-round-models-test-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

/** A challenge window short enough to count in the test's fake minutes. */
const WINDOW_MS = 60_000;
/** Rounds in the test: enough to show growth (the review saw one model per round). */
const ROUNDS = 6;

/** Round `i`'s model: a tiny model with its own weights, so its own id. */
async function roundModel(i: number): Promise<string> {
  const { dir } = await buildGptModel({ size: "tiny", seed: 100 + i, outDir: join(tmp, `r${i}`) });
  return dir;
}

/** The lines of `/metrics` that carry a `model` label. */
async function modelSeries(registry: ModelRegistry): Promise<number> {
  const metrics = new MetricsRegistry();
  const collectors = nodeCollectors({
    publicKey: new Uint8Array(32),
    prover: () => undefined,
    validator: () => undefined,
    network: () => undefined,
    models: () => registry.health(),
  });
  metrics.register(collectors.models, "models");
  const text = await metrics.render();
  return text.split("\n").filter((line) => line.includes('model="')).length;
}

/** Rounds' models served into `registry`, retired on a clock the test moves (`clock.now`, ms). */
function retiring(registry: ModelRegistry) {
  const clock = { now: 0 };
  const retirement = new RoundModelRetirement({
    registry,
    challengeWindowMs: WINDOW_MS,
    now: () => clock.now,
    // Never fired: these tests retire on each new round; the timer's own tests fire it.
    timers: new FakeTimers(),
  });
  return { clock, retirement };
}

Deno.test("many rounds leave a bounded number of loaded models, workers and model series", async () => {
  const registry = new ModelRegistry({ intraOpThreads: 1, worker: true, workerCount: 1 });
  const { clock, retirement } = retiring(registry);
  try {
    let oneModelSeries = 0;
    for (let i = 0; i < ROUNDS; i++) {
      await retirement.serve(await roundModel(i));
      // Something uses the new round's model (a job, a challenge): it is loaded, with workers.
      const cid = registry.list().at(-1)!.cid;
      await registry.get(cid);
      if (i === 0) oneModelSeries = await modelSeries(registry);
      clock.now += 10_000;
    }
    const health = registry.health();
    assert.equal(health.length, ROUND_MODELS_KEPT_LOADED, "loaded models after the rounds");
    const workers = health.reduce((n, m) => n + m.workers.length, 0);
    assert.ok(workers > 0, "the kept models run in workers");
    assert.equal(
      workers,
      ROUND_MODELS_KEPT_LOADED * health[0].workers.length,
      "only the kept models' workers run",
    );
    assert.ok(oneModelSeries > 0);
    assert.equal(await modelSeries(registry), ROUND_MODELS_KEPT_LOADED * oneModelSeries);
  } finally {
    await registry.close();
  }
});

Deno.test("a replaced round model stays registered until its challenge window has passed", async () => {
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  const { clock, retirement } = retiring(registry);
  try {
    const dirs = await Promise.all([0, 1, 2, 3].map((i) => roundModel(10 + i)));
    await retirement.serve(dirs[0]);
    const first = registry.list()[0].cid;
    await retirement.serve(dirs[1]); // round 0 replaced at 0
    clock.now = WINDOW_MS + ROUND_MODEL_JOB_TAIL_MS - 1;
    await retirement.serve(dirs[2]);
    assert.ok(registry.has(first), "a receipt on it may still be challenged");
    assert.equal(registry.info(first)?.loaded, false);
    // A challenge within the window loads it on demand.
    await registry.get(first);
    clock.now = WINDOW_MS + ROUND_MODEL_JOB_TAIL_MS;
    await retirement.serve(dirs[3]);
    assert.equal(registry.has(first), false, "forgotten once its window is over");
    await assert.rejects(registry.get(first), UnknownModelError);
    assert.equal(registry.health().some((m) => m.cid === first), false);
    assert.equal(retirement.registered().includes(first), false);
  } finally {
    await registry.close();
  }
});

Deno.test("a model registered by something else is never retired, and serving one model twice counts once", async () => {
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  const { clock, retirement } = retiring(registry);
  try {
    const served = await roundModel(20);
    const { cid: servedCid } = await registry.register(served);
    await registry.get(servedCid);
    await retirement.serve(served); // a round whose model is the one served on purpose
    const dirs = await Promise.all([0, 1, 2].map((i) => roundModel(21 + i)));
    for (const dir of dirs) {
      await retirement.serve(dir);
      await retirement.serve(dir); // the coordinator and its validator both serve each round
      clock.now += WINDOW_MS + ROUND_MODEL_JOB_TAIL_MS;
    }
    assert.ok(registry.has(servedCid));
    assert.equal(registry.info(servedCid)?.loaded, true);
    assert.equal(retirement.registered().length, ROUND_MODELS_KEPT_LOADED);
  } finally {
    await registry.close();
  }
});
