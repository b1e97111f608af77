/**
 * The models a node serves: the configured one registered and loaded at start
 * ({@link loadModels}, unless `startNode` was given a registry), and those it offers to clients
 * and peers ({@link offeredModels}: less any whose workers all failed). Used by `node.ts`. Not
 * part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { ensureBuiltinModel } from "../inference/builtin_model.ts";
import { ModelRegistry } from "../inference/model_registry.ts";
import { webgpuPoolClamp } from "../inference/_model_worker_pool.ts";
import type { ModelCatalog } from "../inference/inference_port.ts";
import type { ModelWorkerOptions } from "../inference/text_model.ts";
import type { NodeConfig } from "./config.ts";

/**
 * The models this node offers (`/v1/models`, a peer's model list, the hello): those registered,
 * less any whose pool gave up on every generation worker (`failed` in `/healthz`), on which every
 * job fails until the node is restarted. Listed, such a model drew its clients' jobs and, through
 * the hello, its peers' (a review found it at stop 45); it is offered again once it serves.
 */
export function offeredModels(models: ModelRegistry): ModelCatalog {
  return {
    list: () => {
      const failed = new Set(
        models.health().filter((m) => m.status === "failed").map((m) => m.cid),
      );
      return models.list().filter((m) => !failed.has(m.cid));
    },
  };
}

/**
 * Register and load the configured model (a lazy load would land on the first job's TTFT). A load
 * past `model.loadTimeoutMs` rejects with `ModelLoadTimeoutError`, and the node does not start.
 *
 * @param config The node's configuration.
 * @param log Where the loading line, its progress and the workers' events go.
 * @param workers For tests: a stand-in worker entry and supervision clock (default the real ones).
 * @param signal Start-up's: aborting it during the load terminates the workers still loading
 *   (as the timeout does) and rejects with its reason at once, not at `model.loadTimeoutMs`.
 */
export async function loadModels(
  config: NodeConfig,
  log: (line: string) => void,
  workers: Pick<ModelWorkerOptions, "workerUrl" | "supervisionClock"> = {},
  signal?: AbortSignal,
) {
  const inWorkers = config.model.workers > 0;
  const pool = {
    executionProvider: config.model.executionProvider,
    ...(inWorkers ? { worker: true, workerCount: config.model.workers } : {}),
    // The validator's forward passes on a worker of their own, never ahead of a token step.
    ...(inWorkers && config.roles.validator
      ? { validationWorkers: config.model.validationWorkers }
      : {}),
  };
  const clamp = inWorkers ? webgpuPoolClamp(pool) : undefined;
  if (clamp !== undefined) log(clamp);
  const models = new ModelRegistry({
    ...pool,
    // Unset stays unset: the batch's default budget sizes its pieces to the measured step,
    // which a budget given explicitly (even 128) would fix.
    ...(config.model.prefillTokensPerTick === undefined
      ? {}
      : { prefillTokensPerTick: config.model.prefillTokensPerTick }),
    restart: config.model.restart,
    loadTimeoutMs: config.model.loadTimeoutMs,
    // Crashes and restarts, and a first load's progress ("still loading after 30 s").
    onWorkerEvent: (event) => log(event.message),
    ...workers,
  });
  if (!config.roles.inference && !config.roles.validator) return models;
  const started = performance.now();
  const dir = config.model.dir ??
    await ensureBuiltinModel(join(config.dataDir, "models"), config.model.size, config.model.seed);
  const model = await models.register(dir);
  // Said before the load, which may take minutes (or hang): the operator sees what the node is
  // waiting on, and its progress every 30 s (`loading` events) until it ends or times out.
  log(
    `loading model ${model.cid} (${model.name}, ${formatMiB(model.sizeBytes)}) ${
      loadLimit(config)
    }`,
  );
  await models.get(model.cid, { signal });
  const source = config.model.dir ? dir : `built-in ${config.model.size}`;
  log(
    `model ${model.cid} (${model.kind}, ${source}) ready in ${
      Math.round(performance.now() - started)
    } ms`,
  );
  return models;
}

/** `bytes` in MiB, one decimal. */
function formatMiB(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Where the model loads and how long it may take, as the loading line says it. */
function loadLimit(config: NodeConfig): string {
  const { workers, validationWorkers, loadTimeoutMs } = config.model;
  if (workers === 0) return "on the main thread (model.workers 0: the load is not timed)";
  const where = `in ${workers + (config.roles.validator ? validationWorkers : 0)} worker(s)`;
  return loadTimeoutMs === 0
    ? `${where}; never given up (model.loadTimeoutMs 0)`
    : `${where}; given up after ${
      loadTimeoutMs < 1_000 ? `${loadTimeoutMs} ms` : `${Math.round(loadTimeoutMs / 1000)} s`
    } (model.loadTimeoutMs)`;
}
