/**
 * The main side of worker execution mode: a fixed pool of model workers (`_model_worker.ts`),
 * each holding its own onnxruntime session, and the routing of requests to them.
 *
 * Why a fixed pool and not a worker per job: a worker is useless without a session, and a
 * session costs the model's size in memory and a load (hundreds of ms for the small model), so
 * one per job would multiply memory by the number of jobs and put a session load in every
 * job's time to first token. A pool of N sessions created once, N ≈ cores, lets N jobs compute
 * on N cores at once; more jobs than workers share them step by step.
 *
 * A generation is pinned to one worker for its whole life (its KV cache lives there), placed on
 * a worker with a free batch seat, the one with the fewest open sequences ({@link
 * ModelWorkerPool.seatFor}). Tensor `run`s go to the worker with the least work queued.
 *
 * **Lanes.** A validator's teacher-forced `forward` pass over a whole job costs as much as
 * dozens of generation steps; queued in a generation worker, it would hold up every step behind
 * it. With `validationWorkers` ≥ 1 forward passes run on workers of their own (the validation
 * lane: one more session in memory, its threads competing for cores but never queueing ahead
 * of a step); without, they share the generation workers, and each worker serves every queued
 * step before a forward pass (`_model_worker.ts`).
 *
 * **Supervision.** The pool supervises its workers, one for one: a worker that dies (an uncaught
 * error, an unreadable message) fails the requests it held — its generations lose their KV
 * cache, so they end with `ModelWorkerError` — and is replaced by a fresh worker that loads the
 * same model, after a backoff. Requests for it wait for the replacement (one whose load hangs
 * past `stallMs` is taken for dead too, and the next one is started). Past `maxRestarts`
 * within `withinMs` (a model that crashes every worker it loads into) the pool gives up on it:
 * its requests fail with a `ModelWorkerError` that says so, and {@link ModelWorkerPool.health}
 * reports it, as `/healthz` does. After `dispose()` requests fail with `ModelDisposedError`.
 *
 * **First load.** {@link ModelWorkerPool.start} waits for every worker's first load, which has no
 * earlier load to measure it by: the same watch says every {@link LOAD_PROGRESS_MS} that it is
 * still going (a `loading` event, for the log), and past `loadTimeoutMs` terminates the workers
 * that have not answered and rejects with a `ModelLoadTimeoutError` naming the model and the
 * setting, so a session load hung in onnxruntime no longer holds a node's start for ever.
 *
 * Two private modules hold the rest: `_pool_sizing.ts`, the pool's size and threads for the
 * worker-mode options (`poolSizing`, re-exported here), and `_worker_slot.ts`, one worker as
 * the pool tracks it and the sequences pinned to it ({@link RemoteSequence}).
 *
 * @module
 */
import type { TensorData } from "../protocols/job.ts";
import type { DecoderShape } from "./_decoder_session.ts";
import type { SessionOptions } from "./_session.ts";
import type { PreparedTensor } from "./_tensor_data.ts";
import { BatchedPost, eachMessage } from "./_batched_post.ts";
import {
  deserializeError,
  type LoadedSession,
  type WorkerOp,
  type WorkerOps,
  type WorkerReply,
  type WorkerRequest,
  type WorkerStats,
} from "./_worker_protocol.ts";
import { ModelDisposedError, ModelLoadTimeoutError, ModelWorkerError } from "./errors.ts";
import {
  DEFAULT_LOAD_TIMEOUT_MS,
  LOAD_PROGRESS_MS,
  type ModelHealth,
  type ModelWorkerEvent,
  type ModelWorkerHealth,
  type ModelWorkerLane,
  type ModelWorkerRestartPolicy,
} from "./model_health.ts";
import { RemoteSequence, WorkerSlot } from "./_worker_slot.ts";
import { batchSeats } from "./_pool_sizing.ts";
import { StallPause } from "./_stall_pause.ts";

export {
  batchSeats,
  DEFAULT_MAX_MODEL_WORKERS,
  type PoolSizing,
  poolSizing,
  webgpuPoolClamp,
} from "./_pool_sizing.ts";
export { RemoteSequence } from "./_worker_slot.ts";

/**
 * Five restarts in a minute: an isolated crash (a worker hit by a bad input, memory pressure)
 * is absorbed, while a model that kills every worker it loads into stops being retried within
 * seconds and says so on `/healthz`, instead of spinning. The first restart waits 100 ms (the
 * condition that killed it may pass), doubling up to 5 s.
 */
export const DEFAULT_WORKER_RESTART: Readonly<ModelWorkerRestartPolicy> = {
  maxRestarts: 5,
  withinMs: 60_000,
  backoffInitialMs: 100,
  backoffMaxMs: 5_000,
  stallMs: 120_000,
};

/**
 * A replacement's load is taken for hung past `stallMs` or this many times as long as the pool's
 * first loads took, whichever is longer: it loads the same bytes with the same options, so its
 * time is known, and a model that takes longer to load than `stallMs` (set for steps) is not
 * restarted in a loop for it; a margin because a crash often comes with the machine under load.
 */
const LOAD_STALL_FACTOR = 4;

/** Most time between two looks for a stalled worker (a quarter of `stallMs` when shorter). */
const STALL_CHECK_MAX_MS = 5_000;

/**
 * The pool whose workers hold this process's WebGPU device, if any. onnxruntime-node has one per
 * process, and sessions running on it from two threads at once crash the process (see
 * `poolSizing`); but every model has a pool of its own, and a node on `webgpu` that serves a
 * second model (a training round's model, beside its own) put a second thread on it, and the two
 * models' jobs ran on it at once. So a pool asked for `webgpu` while another holds the device
 * runs on CPU and says why ({@link WEBGPU_HELD}); the holder gives it back when its workers did
 * not get it (no adapter) or when it is disposed.
 */
let webgpuHolder: ModelWorkerPool | undefined;

/** Why a pool asked for `webgpu` runs on CPU: another pool holds the device. */
export const WEBGPU_HELD = "webgpu unavailable, running on cpu: another model's worker holds " +
  "this process's WebGPU device (onnxruntime-node has one per process, and sessions running on " +
  "it from two threads at once crash the process)";

/** `options` with every worker's session on CPU. */
function onCpu(options: ModelWorkerPoolOptions): ModelWorkerPoolOptions {
  const cpu = (session: SessionOptions): SessionOptions => ({
    ...session,
    executionProvider: "cpu",
  });
  const validation = options.validationSession;
  return {
    ...options,
    session: cpu(options.session),
    ...(validation === undefined ? {} : { validationSession: cpu(validation) }),
  };
}

/** Options of {@link ModelWorkerPool.start}. */
export interface ModelWorkerPoolOptions {
  /** Generation workers (sessions) to start. */
  workerCount: number;
  /** Workers dedicated to `forward` passes (the validation lane); default 0. */
  validationWorkers?: number;
  /** Session options of every worker. */
  session: SessionOptions;
  /** Session options of validation workers; default `session`. */
  validationSession?: SessionOptions;
  /** Set for decoder (text) models: enables `step` and `forward`. */
  decoder?: DecoderShape;
  /** Restart policy; default {@link DEFAULT_WORKER_RESTART}. */
  restart?: Partial<ModelWorkerRestartPolicy>;
  /** Called on each supervision event (a crash, a restart, giving up). */
  onEvent?: (event: ModelWorkerEvent) => void;
  /** The worker's entry module; default `_model_worker.ts` (a test may wrap it to inject faults). */
  workerUrl?: string | URL;
  /**
   * Longest the first loads (in {@link ModelWorkerPool.start}) may go unanswered, in ms, before
   * the workers still loading are terminated and `start` rejects with `ModelLoadTimeoutError`;
   * default {@link DEFAULT_LOAD_TIMEOUT_MS}; 0: never.
   */
  loadTimeoutMs?: number;
  /** What the load-timeout error calls the model (its directory, its name); default "the model". */
  model?: string;
  /**
   * Aborting it while the first loads run (in {@link ModelWorkerPool.start}) gives them up as a
   * load timeout does: the workers still loading are terminated and `start` rejects with the
   * signal's reason (a node stopped during a hung load stops now, not at `loadTimeoutMs`).
   */
  signal?: AbortSignal;
  /** What the supervision reads as the time (ms, monotonic); default `performance.now`. */
  supervisionClock?: () => number;
  /**
   * Real time as the stall watch reads it to tell a pause of this process from hung workers
   * (`_stall_pause.ts`); default `performance.now`, whatever `supervisionClock` is.
   */
  pauseClock?: () => number;
}

/** A fixed, supervised pool of model workers sharing one model (see the module doc). */
export class ModelWorkerPool {
  #slots: WorkerSlot[];
  #options: ModelWorkerPoolOptions;
  #bytes: Uint8Array;
  #restart: ModelWorkerRestartPolicy;
  /** The supervision's time (`supervisionClock`): stalls, the first load, restart windows. */
  #now: () => number;
  #restartTimes: number[] = [];
  /** How to release the requests waiting for each restarting worker. */
  #readyHandlers = new Map<WorkerSlot, { resolve(): void; reject(error: Error): void }>();
  #nextId = 1;
  #nextSeq = 1;
  #disposed = false;
  #disposing: Promise<void> | undefined;
  /** How long the first loads took (ms): the yardstick of a replacement's. */
  #loadMs = 0;
  /** Sequences each generation worker's batcher computes together (`batchSeats`), once loaded. */
  #seats = 1;
  #stallTimer: ReturnType<typeof setInterval> | undefined;
  /** The gaps between the stall watch's looks: a long one is this process paused, not a hang. */
  #stallPause: StallPause | undefined;
  /** Workers terminated as hung: threads that may still hold a core (see `#checkStalls`). */
  #abandoned = 0;
  /** When the first of them was terminated (Unix ms). */
  #abandonedSince: number | undefined;
  /** Longest the first loads may take (ms; 0: never), `loadTimeoutMs`. */
  #loadTimeoutMs: number;
  /** While the first loads run: when they began and when they are next said to be going on. */
  #firstLoad: { began: number; nextReport: number } | undefined;

  private constructor(bytes: Uint8Array, options: ModelWorkerPoolOptions) {
    this.#bytes = bytes;
    this.#options = options;
    this.#restart = { ...DEFAULT_WORKER_RESTART, ...options.restart };
    this.#now = options.supervisionClock ?? (() => performance.now());
    this.#loadTimeoutMs = options.loadTimeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS;
    if (!Number.isSafeInteger(this.#loadTimeoutMs) || this.#loadTimeoutMs < 0) {
      throw new RangeError("loadTimeoutMs must be an integer ≥ 0");
    }
    // One watch for both limits: the first loads' (for as long as they run), then the stalls'.
    this.#watch([this.#restart.stallMs, this.#loadTimeoutMs]);
    const validation = options.validationWorkers ?? 0;
    if (!Number.isSafeInteger(validation) || validation < 0) {
      throw new RangeError("validationWorkers must be an integer ≥ 0");
    }
    this.#slots = [
      ...Array.from({ length: options.workerCount }, () => "generation" as const),
      ...Array.from({ length: validation }, () => "validation" as const),
    ].map((lane, index) => new WorkerSlot(index, lane, this.#now));
    for (const slot of this.#slots) this.#spawn(slot);
  }

  /**
   * Start the workers and create a session in each (in parallel). Rejects with the worker's own
   * error (`ModelLoadError`, …) after terminating every worker if any load fails. Asked for
   * `webgpu` while another pool holds the process's WebGPU device, the workers run on CPU and
   * `loaded.fallbackReason` is {@link WEBGPU_HELD}.
   *
   * @param bytes The model file (copied to each worker; `start` never detaches it).
   * @param options Pool size, lanes, session options, decoder shape, restart policy.
   * @returns The pool and the session's description (the same in every worker).
   */
  static async start(
    bytes: Uint8Array,
    options: ModelWorkerPoolOptions,
  ): Promise<{ pool: ModelWorkerPool; loaded: LoadedSession }> {
    options.signal?.throwIfAborted();
    const asksWebgpu = [options.session, options.validationSession].some((session) =>
      session?.executionProvider === "webgpu"
    );
    // Another model's workers hold the process's one WebGPU device: this pool runs on CPU.
    const held = asksWebgpu && webgpuHolder !== undefined;
    const pool = new ModelWorkerPool(bytes, held ? onCpu(options) : options);
    // Taken before the loads, so two pools starting together do not both get the device.
    if (asksWebgpu && !held) webgpuHolder = pool;
    const began = pool.#now();
    pool.#firstLoad = { began, nextReport: began + LOAD_PROGRESS_MS };
    const signal = options.signal;
    const onAbort = () => pool.#giveUpLoads(pool.#loading(), asError(signal!.reason));
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const loads = await Promise.all(pool.#slots.map(async (slot) => {
        slot.loadingSince = began;
        const loaded = await pool.#load(slot);
        slot.loadingSince = undefined;
        return loaded;
      }));
      pool.#firstLoad = undefined;
      // From now on the stalls alone: none to watch with 0, and a look as often as they need.
      pool.#watch([pool.#restart.stallMs]);
      pool.#loadMs = pool.#now() - began;
      pool.#seats = batchSeats(loads[0].inputNames, options.session.maxBatch);
      // No adapter here (the workers fell back to CPU): the device is free for another pool.
      if (webgpuHolder === pool && !loads.some((l) => l.executionProvider === "webgpu")) {
        webgpuHolder = undefined;
      }
      return { pool, loaded: held ? { ...loads[0], fallbackReason: WEBGPU_HELD } : loads[0] };
    } catch (error) {
      pool.#firstLoad = undefined;
      await pool.dispose();
      throw error;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * (Re)start the stall watch, looking every quarter of the shortest of `limits` (ms, 0: none), at
   * most every {@link STALL_CHECK_MAX_MS}; none when every limit is 0.
   */
  #watch(limits: number[]): void {
    clearInterval(this.#stallTimer);
    this.#stallTimer = undefined;
    this.#stallPause = undefined;
    const set = limits.filter((ms) => ms > 0);
    if (set.length === 0) return;
    const every = Math.min(STALL_CHECK_MAX_MS, Math.max(1, Math.min(...set) / 4));
    this.#stallPause = new StallPause(every, this.#options.pauseClock);
    // A look now: the first gap is measured from here (a pause before the first tick is one too).
    this.#stallPause.look();
    // Unref'd: a pool nobody disposed does not keep the process alive.
    this.#stallTimer = setInterval(() => this.#checkStalls(), every);
    this.#stallTimer.unref();
  }

  /** Number of workers, both lanes. */
  get size(): number {
    return this.#slots.length;
  }

  /** A new sequence, on the generation worker {@link seatFor} gives. */
  openSequence(): RemoteSequence {
    return new RemoteSequence(this, this.seatFor(), this.#nextSeq++);
  }

  /**
   * The generation worker a new sequence goes to: one with a free batch seat before a full one,
   * a running one before one being restarted, then the fewest open sequences (ties: the fewest
   * requests queued, then the first).
   *
   * Seats first: a sequence placed past its worker's seats has its prompt read and its first
   * token sent, then stands still until a sequence there ends (a seat stays with the sequence
   * holding it, for the whole generation), while the others' worker may have had room. So while
   * a worker restarts and the running ones are full, a new sequence waits for the replacement
   * (its first step goes out once the worker runs: a backoff and a load), and the replacement is
   * not left idle beside an overfull survivor. The job queue keeps it from coming to that: a
   * restarting worker's seats are not in `TextModel.batchCapacity`, so jobs beyond the running
   * seats wait there, told their place, and start as soon as the worker is back. Among workers
   * with room a running one comes first, so no sequence waits for a restart while a seat is free
   * now. Once the worker is back, the fewest open sequences send new ones to it.
   */
  seatFor(): WorkerSlot {
    this.#checkUsable();
    let best: WorkerSlot | undefined;
    let bestKey: number[] = [];
    for (const slot of this.#slots) {
      if (slot.lane !== "generation" || slot.failure) continue;
      const key = [
        slot.placed >= this.#seats ? 1 : 0,
        slot.state === "running" ? 0 : 1,
        slot.placed,
        slot.pending.size,
      ];
      if (best === undefined || before(key, bestKey)) {
        best = slot;
        bestKey = key;
      }
    }
    // `#checkUsable` found a generation worker not given up on.
    return best!;
  }

  /**
   * Teacher-forced full pass: all rows of logits. On the validation lane when the pool has one
   * (never queued behind or ahead of generation steps), else on the least-loaded generation
   * worker, after the steps queued there.
   */
  forward(tokens: readonly number[]): Promise<Float32Array> {
    this.#checkUsable();
    const lane = this.#slots.some((s) => s.lane === "validation" && !s.failure)
      ? "validation"
      : "generation";
    return this.call(this.#pick(lane, (s) => s.load), "forward", { tokens: [...tokens] }, []);
  }

  /** One-shot tensor run on the least-loaded worker; the inputs' buffers are transferred. */
  run(feeds: Record<string, PreparedTensor>): Promise<Record<string, TensorData>> {
    this.#checkUsable();
    const transfer = Object.values(feeds).map((t) => t.values.buffer);
    return this.call(this.#pick("generation", (s) => s.load), "run", { feeds }, transfer);
  }

  /** Every worker's counters, in pool order (generation lane first). */
  stats(): Promise<WorkerStats[]> {
    this.#checkUsable();
    return Promise.all(this.#slots.map((slot) => this.call(slot, "stats", {}, [])));
  }

  /** Each worker's state, and the runtime's as a whole (see {@link ModelHealth}). */
  health(): ModelHealth {
    const workers = this.#slots.map((slot): ModelWorkerHealth => ({
      index: slot.index,
      lane: slot.lane,
      state: slot.state,
      restarts: slot.restarts,
      ...(slot.lastError === undefined ? {} : { lastError: slot.lastError }),
    }));
    const serving = workers.some((w) => w.lane === "generation" && w.state !== "failed");
    const status = !serving
      ? "failed"
      : workers.every((w) => w.state === "running")
      ? "ok"
      : "degraded";
    return {
      status,
      restarts: workers.reduce((sum, w) => sum + w.restarts, 0),
      workers,
      abandonedThreads: this.#abandoned,
      ...(this.#abandonedSince === undefined ? {} : { abandonedSince: this.#abandonedSince }),
    };
  }

  /**
   * Release every session and terminate every worker. Requests already queued in a worker
   * finish first (at most one step each); later ones fail with `ModelDisposedError`. A worker
   * that leaves them unanswered for `stallMs` is terminated as hung, as at any other time.
   * Idempotent.
   */
  dispose(): Promise<void> {
    this.#disposing ??= this.#dispose();
    return this.#disposing;
  }

  async #dispose(): Promise<void> {
    this.#disposed = true;
    // The stall watch runs until the workers are gone: a worker hung in a step (a graph that
    // never ends) never answers `dispose`, and only the watch terminates it. So the watch counts
    // that request too: the hung step may be one the worker computes ahead of its caller
    // (`_batch_decoder.ts`), whose requests have all been answered, and then nothing else is
    // waited for.
    await Promise.all(this.#slots.map(async (slot) => {
      if (!slot.failure && slot.state === "running") {
        // The worker is about to go: a release failure changes nothing for the caller.
        await this.call(slot, "dispose", {}, [], true, true).catch(() => {});
      }
      slot.worker.terminate();
      slot.failure ??= new ModelDisposedError();
      slot.failPending(slot.failure);
      this.#settleReady(slot);
    }));
    clearInterval(this.#stallTimer);
    // Its workers are gone: the next pool asked for WebGPU may have the device.
    if (webgpuHolder === this) webgpuHolder = undefined;
  }

  /**
   * Send request `op` to `slot` and await its reply; while the slot's worker is being
   * restarted, once the new one runs.
   *
   * @param slot The worker.
   * @param op The operation.
   * @param args Its arguments.
   * @param transfer Buffers to move (not copy) to the worker.
   * @param internal Whether the pool itself sends it (allowed while disposing or restarting).
   * @param watch Whether the stall watch waits for its reply (default: a caller's request).
   */
  call<K extends WorkerOp>(
    slot: WorkerSlot,
    op: K,
    args: WorkerOps[K]["args"],
    transfer: Transferable[],
    internal = false,
    watch = !internal,
  ): Promise<WorkerOps[K]["result"]> {
    if (slot.failure) return Promise.reject(slot.failure);
    if (this.#disposed && !internal) return Promise.reject(new ModelDisposedError());
    if (slot.state === "restarting" && !internal) {
      return slot.ready.then(() => this.call(slot, op, args, transfer));
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve: resolve as (r: unknown) => void, reject });
      if (watch) {
        if (slot.watched.size === 0) slot.waitingSince = this.#now();
        slot.watched.add(id);
      }
      slot.outbox.post({ op, id, ...args } as WorkerRequest, transfer);
    });
  }

  /** Start `slot`'s worker (a new incarnation) and watch it. */
  #spawn(slot: WorkerSlot): void {
    const worker = new Worker(
      new URL(this.#options.workerUrl ?? "./_model_worker.ts", import.meta.url).href,
      { type: "module", name: `veriflow-model-worker-${slot.index}` },
    );
    slot.worker = worker;
    const post = (message: WorkerRequest | WorkerRequest[], transfer: Transferable[] = []) =>
      worker.postMessage(message, { transfer });
    slot.outbox = new BatchedPost(post, (requests, error) => {
      // Never sent: each request's caller hears why, as it would from the worker.
      for (const request of requests) {
        slot.pending.get(request.id)?.reject(error);
        slot.pending.delete(request.id);
        slot.answered(request.id);
      }
    });
    const incarnation = slot.incarnation;
    const died = (reason: string) => {
      // A report from a worker already replaced (or terminated on purpose) is stale.
      if (slot.incarnation === incarnation && slot.worker === worker) this.#onDeath(slot, reason);
    };
    worker.onmessage = (event: MessageEvent<WorkerReply | WorkerReply[]>) => {
      if (slot.worker !== worker) return;
      for (const reply of eachMessage(event.data)) this.#onReply(slot, reply);
    };
    worker.onerror = (event: ErrorEvent) => {
      // A worker's uncaught error would otherwise take down the whole process.
      event.preventDefault();
      died(event.message);
    };
    worker.onmessageerror = () => died("it sent an unreadable message");
  }

  /** Create the session in `slot`'s current worker. */
  #load(slot: WorkerSlot): Promise<LoadedSession> {
    const session = slot.lane === "validation"
      ? this.#options.validationSession ?? this.#options.session
      : this.#options.session;
    // A copy of its own, moved rather than cloned: structured cloning a model costs a copy on
    // each side (measured on 77 MB: 530 ms against 285 for this copy and the move). The pool
    // keeps the original to load a restarted worker.
    const bytes = this.#bytes.slice();
    const args = { bytes, session, decoder: this.#options.decoder };
    return this.call(slot, "load", args, [bytes.buffer], true);
  }

  /**
   * Treat as dead every running worker that has left callers' requests unanswered for
   * `stallMs`: a hung worker would otherwise hold its jobs, and every job placed on it later,
   * for ever while `/healthz` said ok. `terminate()` frees the slot at once; a thread stuck in a
   * native call may still run until that call returns, and one spinning in JavaScript runs on
   * (Deno 2.9.6's `terminate()` does not interrupt it, measured): either keeps its core until the
   * process ends. So each is counted ({@link ModelHealth}'s `abandonedThreads`, which `/healthz`
   * lists as a condition) and its log line says a restart of the node frees the core; the model's
   * `status` is left to its workers, which serve again once replaced. A replacement whose load
   * has gone unanswered that long (or {@link LOAD_STALL_FACTOR} × the first loads' time, if
   * longer) is hung too (a crash of its own, counted against the restart limit): the requests
   * waiting for it would otherwise wait for ever, as `/healthz` said degraded.
   */
  #checkStalls(): void {
    const { stallMs } = this.#restart;
    const now = this.#now();
    const away = this.#stallPause?.look() ?? 0;
    if (away > 0) {
      // This process was not run (stopped, paused, starved): nor were its workers, so what they
      // left unanswered meanwhile says nothing of them. Their waits start again now.
      for (const slot of this.#slots) {
        if (slot.waitingSince !== undefined) slot.waitingSince = now;
        if (slot.loadingSince !== undefined) slot.loadingSince = now;
      }
      return;
    }
    // No caller's request is sent before the first loads end: they are all there is to watch.
    if (this.#firstLoad !== undefined) return this.#checkFirstLoads(now);
    const loadLimit = Math.max(stallMs, LOAD_STALL_FACTOR * this.#loadMs);
    for (const slot of this.#slots) {
      if (slot.failure) continue;
      const loading = slot.state === "restarting" ? slot.loadingSince : undefined;
      if (loading !== undefined && now - loading >= loadLimit) {
        this.#onDeath(
          slot,
          `it stalled loading the model: no answer for ${
            Math.round((now - loading) / 1000)
          } s (the first load took ${
            Math.round(this.#loadMs)
          } ms; model.restart.stallMs ${stallMs}); terminated`,
          true,
        );
        continue;
      }
      const since = slot.waitingSince;
      if (slot.state !== "running" || since === undefined) continue;
      if (now - since < stallMs) continue;
      this.#onDeath(
        slot,
        `it stalled: no answer to its ${slot.watched.size} request(s) for ${
          Math.round((now - since) / 1000)
        } s (model.restart.stallMs ${stallMs}); terminated`,
        true,
      );
    }
  }

  /**
   * The first loads, still going at `now`: past `loadTimeoutMs`, each worker that has not answered
   * is terminated as hung (its thread counted as abandoned) and its load rejected with a
   * {@link ModelLoadTimeoutError}, which `start` rejects with once it has disposed of the rest;
   * before that, every {@link LOAD_PROGRESS_MS} an event says they are still going. No
   * replacement: the same bytes in a fresh worker would hang the same way, and the caller (a
   * node starting) is waiting to hear.
   */
  #checkFirstLoads(now: number): void {
    const first = this.#firstLoad!;
    const loading = this.#loading();
    if (loading.length === 0) return;
    const elapsed = Math.round((now - first.began) / 1000);
    const limit = this.#loadTimeoutMs;
    const hung = loading.filter((s) => limit > 0 && now - s.loadingSince! >= limit);
    const names = (slots: WorkerSlot[]) => slots.map((s) => s.index).join(", ");
    if (hung.length > 0) {
      const error = new ModelLoadTimeoutError(
        this.#options.model ?? "the model",
        limit,
        `model worker(s) ${names(hung)} of ${this.#slots.length} never answered in ${elapsed} s; ` +
          `terminated (a thread stuck in a native call may keep a core until the process ends)`,
      );
      this.#giveUpLoads(hung, error);
      return;
    }
    if (now < first.nextReport) return;
    first.nextReport = now + LOAD_PROGRESS_MS;
    const loaded = this.#slots.length - loading.length;
    this.#notify({
      type: "loading",
      worker: loading[0].index,
      lane: loading[0].lane,
      message: `still loading after ${elapsed} s (${loaded} of ${this.#slots.length} model ` +
        `workers loaded; waiting on ${names(loading)}); ` +
        (limit > 0
          ? `gives up at ${Math.round(limit / 1000)} s (model.loadTimeoutMs ${limit})`
          : `never given up (model.loadTimeoutMs 0)`),
    });
  }

  /** The workers whose first load is still going. */
  #loading(): WorkerSlot[] {
    return this.#slots.filter((s) => s.loadingSince !== undefined && !s.failure);
  }

  /**
   * Give up the first loads of `slots` (past `loadTimeoutMs`, or `start`'s signal aborted): each
   * worker is terminated as hung (its thread counted as abandoned) and its load rejected with
   * `error`, which `start` rejects with once it has disposed of the rest.
   */
  #giveUpLoads(slots: WorkerSlot[], error: Error): void {
    for (const slot of slots) {
      slot.worker.terminate();
      this.#abandoned++;
      this.#abandonedSince ??= Date.now();
      slot.loadingSince = undefined;
      slot.state = "failed";
      slot.lastError = error.message;
      slot.failure = error;
      slot.failPending(error);
    }
  }

  /**
   * A worker died: fail what it held, then restart it after a backoff, or give up on it.
   *
   * @param slot The worker.
   * @param reason Why, for its requests' error, its `lastError` and the log.
   * @param hung Whether it is terminated as hung: its thread may run on (see `#checkStalls`).
   */
  #onDeath(slot: WorkerSlot, reason: string, hung = false): void {
    slot.worker.terminate();
    if (hung) {
      this.#abandoned++;
      this.#abandonedSince ??= Date.now();
    }
    // For the operator only (the log), not the clients whose requests fail with `reason`.
    const abandoned = hung
      ? ` (its thread may keep a core until the process ends: ${this.#abandoned} so far; ` +
        `restart the node to free them)`
      : "";
    slot.outbox.discard();
    slot.incarnation++;
    slot.sequences = 0;
    slot.loadingSince = undefined;
    slot.lastError = reason;
    const error = new ModelWorkerError(`model worker ${slot.index} died: ${reason}`);
    slot.failPending(error);
    // Requests waiting for a replacement: rejected now, not left waiting for one never coming.
    if (this.#disposed || slot.failure) return this.#settleReady(slot);
    const now = this.#now();
    this.#restartTimes = this.#restartTimes.filter((t) => now - t < this.#restart.withinMs);
    const event = { worker: slot.index, lane: slot.lane };
    if (this.#restartTimes.length >= this.#restart.maxRestarts) {
      const { maxRestarts, withinMs } = this.#restart;
      slot.state = "failed";
      slot.failure = new ModelWorkerError(
        `model worker ${slot.index} crashed more than ${maxRestarts} times in ${
          withinMs / 1000
        } s ` +
          `and is no longer restarted (last: ${reason}); check the node's memory and the model, ` +
          `then restart the node`,
      );
      this.#notify({ type: "gave_up", ...event, message: slot.failure.message + abandoned });
      this.#settleReady(slot);
      return;
    }
    this.#restartTimes.push(now);
    const { backoffInitialMs, backoffMaxMs } = this.#restart;
    const waitMs = Math.min(backoffMaxMs, backoffInitialMs * 2 ** (this.#restartTimes.length - 1));
    if (slot.state === "running") {
      slot.state = "restarting";
      slot.ready = new Promise<void>((resolve, reject) => {
        this.#readyHandlers.set(slot, { resolve, reject });
      });
      slot.ready.catch(() => {});
    }
    this.#notify({
      type: "crashed",
      ...event,
      message: `model worker ${slot.index} (${slot.lane}) died: ${reason}${abandoned}; its ` +
        `requests failed, restarting it in ${waitMs} ms`,
    });
    setTimeout(() => this.#restartSlot(slot), waitMs);
  }

  async #restartSlot(slot: WorkerSlot): Promise<void> {
    if (this.#disposed || slot.failure) return this.#settleReady(slot);
    this.#spawn(slot);
    const incarnation = slot.incarnation;
    slot.loadingSince = this.#now();
    try {
      await this.#load(slot);
    } catch (error) {
      // A failed load counts as another crash (unless a crash report already did).
      if (slot.incarnation === incarnation) this.#onDeath(slot, (error as Error).message);
      return;
    }
    slot.loadingSince = undefined;
    if (this.#disposed) return this.#settleReady(slot);
    slot.state = "running";
    slot.restarts++;
    this.#notify({
      type: "restarted",
      worker: slot.index,
      lane: slot.lane,
      message: `model worker ${slot.index} (${slot.lane}) restarted (restart ${slot.restarts})`,
    });
    this.#settleReady(slot);
  }

  /** Release the requests waiting for `slot`: to its new worker, or to its failure. */
  #settleReady(slot: WorkerSlot): void {
    const handlers = this.#readyHandlers.get(slot);
    if (handlers === undefined) return;
    this.#readyHandlers.delete(slot);
    if (slot.failure) handlers.reject(slot.failure);
    else if (this.#disposed) handlers.reject(new ModelDisposedError());
    else handlers.resolve();
  }

  #notify(event: ModelWorkerEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // A listener's failure must not stop supervision.
    }
  }

  #onReply(slot: WorkerSlot, reply: WorkerReply): void {
    const call = slot.pending.get(reply.id);
    if (!call) return;
    slot.pending.delete(reply.id);
    slot.answered(reply.id);
    if (reply.ok) call.resolve(reply.result);
    else call.reject(deserializeError(reply.error));
  }

  #checkUsable(): void {
    if (this.#disposed) throw new ModelDisposedError();
    const serving = this.#slots.filter((s) => s.lane === "generation");
    if (serving.every((s) => s.failure)) throw serving[0].failure;
  }

  /**
   * The worker of `lane` with the lowest `cost` (ties: the first), preferring running workers
   * to restarting ones (whose requests wait for the restart).
   */
  #pick(lane: ModelWorkerLane, cost: (slot: WorkerSlot) => number): WorkerSlot {
    let best: WorkerSlot | undefined;
    const rank = (slot: WorkerSlot) => slot.state === "running" ? 0 : 1;
    for (const slot of this.#slots) {
      if (slot.lane !== lane || slot.failure) continue;
      if (
        !best || rank(slot) < rank(best) || (rank(slot) === rank(best) && cost(slot) < cost(best))
      ) {
        best = slot;
      }
    }
    if (!best) {
      throw this.#slots.find((s) => s.lane === lane)?.failure ??
        new ModelWorkerError(`no ${lane} model worker is running`);
    }
    return best;
  }
}

/** Whether `a` orders strictly before `b`, element by element (same lengths). */
function before(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

/** An abort reason as the error a load is rejected with (a reason that is no `Error` wrapped). */
function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
