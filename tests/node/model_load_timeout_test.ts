/**
 * `model.loadTimeoutMs` (`--model-load-timeout`, `VERIFLOW_MODEL_LOAD_TIMEOUT_MS`): how long the
 * node's model may take to load in its workers before the node gives up starting. The node logs
 * a line when the load begins and every 30 s while it goes on, and a load past the limit rejects
 * `loadModels` (so `startNode`, which the CLI turns into exit 1 and the message) with an error
 * naming the model and the key. The hung load is a stand-in worker that never answers its load;
 * the watch reads a clock the test moves by hand.
 */
import assert from "node:assert/strict";
import { resolveStartConfig } from "../../cli/start_command.ts";
import { START_HELP } from "../../cli/start_help.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { loadModels } from "../../node/_node_models.ts";
import { ModelLoadTimeoutError } from "../../inference/errors.ts";
import { DEFAULT_LOAD_TIMEOUT_MS } from "../../inference/model_health.ts";
import { disarmFaults, faultyWorkerUrl } from "../inference/_worker_faults.ts";
import { SupervisionClock } from "../inference/_supervision_clock.ts";
import { eventually } from "../_helpers/wait.ts";

const KEY = "model.loadTimeoutMs";
const FLAG = "--model-load-timeout";
const ENV = "VERIFLOW_MODEL_LOAD_TIMEOUT_MS";

/**
 * A node config whose one model worker (the generation one) never answers its load, in fresh data
 * and fault-flag directories removed after `run`; `stallMs` only makes the watch look every 250 ms.
 */
async function withHungLoad(
  prefix: string,
  run: (
    config: ReturnType<typeof parseNodeConfig>,
    flags: string,
    dataDir: string,
  ) => Promise<void>,
): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: `${prefix}-` });
  const flags = await Deno.makeTempDir({ prefix: `${prefix}-flags-` });
  try {
    await disarmFaults(flags);
    await Deno.writeTextFile(`${flags}/hold-load`, "");
    const config = parseNodeConfig({
      dataDir,
      model: {
        size: "tiny",
        workers: 1,
        validationWorkers: 0,
        loadTimeoutMs: 120_000,
        restart: { stallMs: 1_000 },
      },
    });
    await run(config, flags, dataDir);
  } finally {
    await Deno.remove(flags, { recursive: true });
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("loadTimeoutMs: ten minutes by default; 0 (never) and any whole number of ms accepted", () => {
  assert.equal(DEFAULT_LOAD_TIMEOUT_MS, 600_000);
  assert.equal(parseNodeConfig({}).model.loadTimeoutMs, DEFAULT_LOAD_TIMEOUT_MS);
  for (const ms of [0, 1, 3_600_000]) {
    assert.equal(parseNodeConfig({ model: { loadTimeoutMs: ms } }).model.loadTimeoutMs, ms);
  }
  assert.throws(() => parseNodeConfig({ model: { loadTimeoutMs: -1 } }), /model\.loadTimeoutMs/);
});

Deno.test("loadTimeoutMs: set by its flag or its variable, the flag winning; the help lists the flag", async () => {
  const byEnv = await resolveStartConfig([], { [ENV]: "900000" });
  assert.equal(byEnv.config.model.loadTimeoutMs, 900_000);
  assert.deepEqual(byEnv.origins.get(KEY), { source: "env", by: ENV });
  const byFlag = await resolveStartConfig([FLAG, "1200000"], { [ENV]: "900000" });
  assert.equal(byFlag.config.model.loadTimeoutMs, 1_200_000);
  assert.deepEqual(byFlag.origins.get(KEY), { source: "flag", by: FLAG });
  await assert.rejects(resolveStartConfig([FLAG, "10m"]), /--model-load-timeout expects a whole/);
  assert.match(START_HELP, /--model-load-timeout MS\n/);
});

Deno.test("loadTimeoutMs: the flag is refused where nothing can time the load (the main thread) or nothing loads", async () => {
  await assert.rejects(
    resolveStartConfig([FLAG, "60000", "--workers", "0"]),
    /--model-load-timeout has no effect here: --workers 0 \(model\.workers\)/,
  );
  await assert.rejects(
    resolveStartConfig([FLAG, "60000", "--no-inference", "--no-validator"]),
    /--model-load-timeout has no effect here: this node loads no model/,
  );
});

Deno.test("a node whose model never loads logs the load, then its progress every 30 s, then fails past loadTimeoutMs naming the model and the key", async () => {
  await withHungLoad("veriflow-load-timeout-node", async (config, flags, dataDir) => {
    const clock = new SupervisionClock();
    const log: string[] = [];
    let outcome: unknown;
    const loading = loadModels(config, (line) => void log.push(line), {
      workerUrl: faultyWorkerUrl(flags),
      supervisionClock: clock.now,
    }).then(() => outcome = "loaded", (error) => outcome = error);
    await eventually(() => Deno.statSync(`${flags}/load-held`), "the worker holding its load", {
      timeoutMs: 120_000,
    });
    assert.match(
      log.join("\n"),
      /^loading model \S+ \(\S+, [\d.]+ MiB\) in 1 worker\(s\); given up after 120 s \(model\.loadTimeoutMs\)$/m,
    );
    clock.pass(30_000);
    await eventually(() => log.some((line) => line.includes("still loading")), "progress");
    assert.match(log.at(-1)!, /^model \S+: still loading after 30 s \(0 of 1 model workers/);
    clock.pass(90_000);
    // Awaited with a guard: a load the setting never reached would wait 600 s of a stopped clock.
    const error = await eventually(() => outcome, "the load given up");
    await loading;
    assert.ok(error instanceof ModelLoadTimeoutError, String(error));
    assert.match(error.message, /^model \S+ \(.+\) did not load within 120 s/);
    assert.ok(error.message.includes(dataDir), error.message);
    assert.match(error.message, /model\.loadTimeoutMs 120000/);
    assert.ok(!log.some((line) => / ready in /.test(line)), log.join("\n"));
  });
});

Deno.test("a stop during a node's hung model load ends it at once, as the timeout would: the signal's reason, the loading worker terminated", async () => {
  const realWorker = globalThis.Worker;
  const workers: { terminated: boolean }[] = [];
  globalThis.Worker = class extends realWorker {
    #record = { terminated: false };
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      workers.push(this.#record);
    }
    override terminate(): void {
      this.#record.terminated = true;
      super.terminate();
    }
  };
  try {
    await withHungLoad("veriflow-load-stop-node", async (config, flags) => {
      const stop = new AbortController();
      const log: string[] = [];
      let outcome: unknown;
      const loading = loadModels(
        config,
        (line) => void log.push(line),
        { workerUrl: faultyWorkerUrl(flags), supervisionClock: new SupervisionClock().now },
        stop.signal,
      ).then(() => outcome = "loaded", (error) => outcome = error);
      await eventually(() => Deno.statSync(`${flags}/load-held`), "the worker holding its load", {
        timeoutMs: 120_000,
      });
      const reason = new DOMException("start-up interrupted", "AbortError");
      stop.abort(reason);
      // The clock never moves: before, only loadTimeoutMs ended the load (the guard's 10 s here).
      const error = await eventually(() => outcome, "the load given up on stop", {
        timeoutMs: 10_000,
      });
      await loading;
      assert.equal(error, reason);
      assert.deepEqual(workers.map((w) => w.terminated), [true]);
      assert.ok(!log.some((line) => / ready in /.test(line)), log.join("\n"));
    });
  } finally {
    globalThis.Worker = realWorker;
  }
});
