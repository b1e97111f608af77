/**
 * One job routed over one scripted worker, for the tests of what a router makes of the worker's
 * signed prompt-token count (`prompt_tokens_router_test.ts`, `held_model_prompt_counter_test.ts`):
 * a router (`_router_doubles.ts`) on manual timers that never holds a job in its queue, and what
 * became of the job's receipt.
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import type { JobSummary } from "../../inference/inference_port.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import type { ForwardingOptions } from "../../network/network_inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import type { TestWorker } from "./_hostile_worker_fixture.ts";
import { run } from "./_scripted_worker_fixture.ts";
import { spawnRouter, Workers } from "./_router_doubles.ts";

/** What became of a routed job. */
export interface RoutedOnce {
  /** The text the client read. */
  text: string;
  summary: JobSummary;
  /** Receipts the router handed its validator. */
  toValidator: number;
  /** Whether the router keeps the worker off the model now. */
  avoided: boolean;
}

/**
 * A router named `name` over `worker` alone, with `options`, runs `job`; `worker` is closed after.
 * `models`: what the router's network answers `worker_models` (default the fixture's one model).
 */
export async function routeOnce(
  name: string,
  worker: TestWorker,
  job: TextJob,
  options: ForwardingOptions = {},
  models?: unknown[],
): Promise<RoutedOnce> {
  const system = new ActorSystem({ name });
  const workers = new Workers([worker.toWorker], models);
  const timers = new ManualTimers();
  const now = () => timers.now();
  try {
    const { port, recorder } = await spawnRouter(
      system,
      workers,
      { tokensPerEvent: 1, timers, queueHoldMs: Infinity, ...options },
      new BusyRefusals({ now }),
      new BusyRefusals({ now }),
    );
    const got = await run(port, job);
    const toValidator = recorder.told.filter((m) => m.type === "receipt").length;
    return {
      text: got.text,
      summary: got.summary,
      toValidator,
      avoided: workers.avoided.has(worker.key),
    };
  } finally {
    await worker.close();
    await system.shutdown();
  }
}
