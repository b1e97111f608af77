/**
 * Review s58: a model worker terminated as hung (past `stallMs`) may keep its thread, and that
 * thread its core, until the process ends (`terminate()` does not interrupt a native call or a
 * JavaScript loop). Once its replacement runs, the model's health said `ok` and `/healthz` said
 * nothing: an operator whose node lost a core to a hung thread saw no sign of it. The model's
 * health counts those threads, and `/healthz` lists them as a condition.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { collect, params, tinyModel } from "./_fixtures.ts";
import {
  crashModelWorker,
  FAULTY_WORKER_URL,
  holdModelSteps,
  releaseModelSteps,
} from "./_worker_faults.ts";
import { SupervisionClock } from "./_supervision_clock.ts";
import { eventually } from "../_helpers/wait.ts";
import { TextModel } from "../../inference/text_model.ts";
import type { ModelWorkerEvent } from "../../inference/model_health.ts";
import { emptyInferenceStats, type InferencePort } from "../../inference/inference_port.ts";
import { healthRoutes } from "../../server/health_routes.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";

const { model: inThread, dir, cleanup } = await tinyModel();
Deno.test.afterAll(cleanup);

const PROMPT = inThread.tokenizer.encode("Once upon a time");
const GREEDY = params({ maxTokens: 8 });

/** A port with no jobs: `/healthz` here is about the model runtime. */
const IDLE_PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs")),
  models: () => Promise.resolve([]),
  stats: () => Promise.resolve(emptyInferenceStats()),
};

Deno.test("review s58: a worker terminated as hung is counted as an abandoned thread once its replacement runs, the log says a restart frees its core, and /healthz lists it (a crashed worker's is not)", async () => {
  const events: ModelWorkerEvent[] = [];
  // The stall watch's clock: still through the crash, moved on by hand once the steps are held.
  const clock = new SupervisionClock();
  const model = await TextModel.load(dir, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
    workerUrl: FAULTY_WORKER_URL,
    restart: { backoffInitialMs: 0, stallMs: 1_000 },
    onWorkerEvent: (event) => events.push(event),
    supervisionClock: clock.now,
  });
  const health = new Hono().route(
    "/",
    healthRoutes(
      new InferenceGateway({ inference: IDLE_PORT }),
      new MetricsRegistry(),
      () => [{ cid: "bafkmodel", name: "tiny", ...model.health() }],
    ),
  );
  const healthz = async () => {
    const response = await health.request("/healthz");
    assert.equal(response.status, 200);
    return await response.json();
  };
  try {
    // A crash: its thread is gone, nothing is abandoned.
    const crashed = model.generate(PROMPT, params({ maxTokens: 1000 })).getReader();
    await crashed.read();
    crashModelWorker(0);
    await assert.rejects(async () => {
      while (!(await crashed.read()).done) { /* the chunks computed before the crash */ }
    });
    await eventually(() => events.some((e) => e.type === "restarted"), "the first restart");
    assert.equal(model.health().abandonedThreads, 0);
    assert.equal((await healthz()).conditions, undefined);

    // A hang: the worker keeps its step, as one stuck in a graph that never ends would; the
    // stall watch terminates it once its clock has passed stallMs.
    holdModelSteps();
    try {
      await clock.passUntil(
        250,
        assert.rejects(collect(model.generate(PROMPT, GREEDY)), /stalled/),
      );
    } finally {
      releaseModelSteps();
    }
    await eventually(
      () => events.filter((e) => e.type === "restarted").length === 2,
      "the hung worker's replacement",
    );
    const crashes = events.filter((e) => e.type === "crashed");
    assert.doesNotMatch(crashes[0].message, /core/);
    assert.match(crashes[1].message, /stalled.*core.*restart the node/);

    const runtime = model.health();
    assert.equal(runtime.status, "ok", "every worker runs: the model serves");
    assert.equal(runtime.abandonedThreads, 1);
    const body = await healthz();
    assert.equal(body.model_runtime[0].abandoned_threads, 1);
    assert.deepEqual(
      body.conditions?.map((c: { component: string; status: string; code: string }) => [
        c.component,
        c.status,
        c.code,
      ]),
      [["model_runtime", "degraded", "model_threads_abandoned"]],
      JSON.stringify(body),
    );
    assert.match(body.conditions[0].message, /tiny.*1 .*thread.*restart the node/);
    assert.equal(body.status, "degraded");
  } finally {
    await model.dispose();
  }
});
