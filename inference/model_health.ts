/**
 * The supervision of a model's workers, as seen from outside: when a dead worker is restarted
 * and when it is given up on ({@link ModelWorkerRestartPolicy}), what the runtime reports about
 * itself ({@link ModelHealth}: running, being restarted, given up), and the events of that
 * supervision. Read by `/healthz`, `/metrics` and the node's log; the worker pool
 * (`_model_worker_pool.ts`) supervises its workers.
 *
 * @module
 */

/** When a dead model worker is restarted, and when the pool gives up on it. */
export interface ModelWorkerRestartPolicy {
  /** Restarts allowed within `withinMs`, all workers of a model together; default 5. */
  maxRestarts: number;
  /** The window of `maxRestarts`, in milliseconds; default 60 000. */
  withinMs: number;
  /** Delay before the first restart in the window, doubling for each next one; default 100. */
  backoffInitialMs: number;
  /** Longest delay before a restart; default 5 000. */
  backoffMaxMs: number;
  /**
   * A running worker that leaves the requests it holds unanswered this long (no reply to any of
   * them; the release of a finished generation's cache and the pool's `dispose` count, so a
   * worker hung in a step it computed ahead of a client who left is found out too) is taken for
   * hung — a graph that never ends, a call stuck in onnxruntime — and treated as dead:
   * terminated, its requests failed, restarted like a crash; so is a replacement whose load goes
   * unanswered this long, or four times as long as the model's first load took if that is longer
   * (the requests waiting for it wait for the next replacement). Default 120 000; 0: never.
   */
  stallMs: number;
}

/**
 * Default `loadTimeoutMs` (the node's `model.loadTimeoutMs`): how long a model's first load in its
 * workers may take before it is given up. Ten minutes: the built-in models load in under a
 * second, but onnxruntime reads and optimises a whole graph in every worker at once, which for a
 * multi-gigabyte export on a slow disk or a loaded machine can take minutes, and refusing a model
 * that would have loaded is worse than waiting; a load hung in a native call, though, held the
 * node's start for ever without a line. Meanwhile a `loading` event says every
 * {@link LOAD_PROGRESS_MS} that it goes on; set it higher (or 0: never) for a larger model.
 */
export const DEFAULT_LOAD_TIMEOUT_MS = 600_000;

/**
 * How often a first load still going is said (a `loading` event): often enough that an operator
 * watching a start sees it is loading, not hung without a word; rarely enough for a minutes-long
 * load to say so in a few lines.
 */
export const LOAD_PROGRESS_MS = 30_000;

/**
 * The lane a model worker serves: `generation` (token steps and one-shot tensor runs, the
 * latency-bound work clients wait on) or `validation` (a validator's teacher-forced forward
 * passes, which must not hold up a generation step).
 */
export type ModelWorkerLane = "generation" | "validation";

/** One model worker's state. */
export interface ModelWorkerHealth {
  /** Its index in the pool. */
  index: number;
  /** What it serves. */
  lane: ModelWorkerLane;
  /**
   * `running`; `restarting` after a crash (its requests wait for it); `failed` once the pool
   * gave up restarting it (past the restart limit).
   */
  state: "running" | "restarting" | "failed";
  /** Times it was restarted after a crash. */
  restarts: number;
  /** The last crash, if any. */
  lastError?: string;
}

/** A loaded model's runtime. */
export interface ModelHealth {
  /**
   * `ok`: every worker runs (or the model runs on the calling thread). `degraded`: a worker is
   * being restarted or was given up, and the rest still serve. `failed`: no generation worker
   * can serve; jobs fail until the node is restarted.
   */
  status: "ok" | "degraded" | "failed";
  /** Restarts after crashes, all workers together. */
  restarts: number;
  /** Each worker (empty in-thread). */
  workers: ModelWorkerHealth[];
  /**
   * Workers terminated as hung (past `stallMs`), all of them together; each may still hold a
   * core until the process ends: `terminate()` does not interrupt a thread stuck in a native
   * call or spinning in JavaScript. A crashed worker's thread is gone and is not counted. They
   * do not change `status` (the replacements serve), but the node computes on fewer cores: a
   * restart of the node frees them. 0 in-thread; absent: 0 (a runtime that reports no workers).
   */
  abandonedThreads?: number;
  /** When the first of `abandonedThreads` was terminated (Unix ms); absent if none. */
  abandonedSince?: number;
}

/** A supervision event of a model worker, for the log. */
export interface ModelWorkerEvent {
  /**
   * `crashed`: it died (its requests failed) and a restart is scheduled; `restarted`: it runs
   * again; `gave_up`: it crashed past the restart limit and stays down; `loading`: the model's
   * first load is still going, said every 30 s until it ends or runs past `loadTimeoutMs` (one
   * event for the pool, naming the first worker still loading).
   */
  type: "crashed" | "restarted" | "gave_up" | "loading";
  /** The worker's index in its pool. */
  worker: number;
  /** Its lane. */
  lane: ModelWorkerLane;
  /** What happened, in one line. */
  message: string;
}

/** The health of a model that computes on the calling thread: no workers to supervise. */
export const IN_THREAD_HEALTH: Readonly<ModelHealth> = {
  status: "ok",
  restarts: 0,
  workers: [],
  abandonedThreads: 0,
};
