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
 * the worker with the fewest open sequences. One-shot requests (`forward`, tensor `run`) go to
 * the worker with the least work queued.
 *
 * A worker that dies fails its pending requests and every later one with `ModelWorkerError`
 * (the model's owner decides what to do — typically reload it); after `dispose()` requests fail
 * with `ModelDisposedError`.
 *
 * @module
 */
import type { TensorData } from "../protocols/job.ts";
import type { DecoderShape, SampledStep, StepSampling } from "./_decoder_session.ts";
import { cudaProviderInstalled, type SessionOptions } from "./_session.ts";
import type { PreparedTensor } from "./_tensor_data.ts";
import {
  deserializeError,
  type LoadedSession,
  type WorkerOp,
  type WorkerOps,
  type WorkerReply,
  type WorkerRequest,
  type WorkerStats,
} from "./_worker_protocol.ts";
import { ModelDisposedError, ModelWorkerError } from "./errors.ts";

/**
 * Most workers a pool starts by default. Every worker holds a whole session (the model's weights
 * once more in memory); past a few workers, cores are better spent as intra-op threads of each
 * (`intraOpThreads` defaults to cores / workers), which also speeds up a single stream.
 */
export const DEFAULT_MAX_MODEL_WORKERS = 4;

/** Worker-mode options as the pool reads them (declared publicly in `text_model.ts`). */
export interface PoolSizing extends SessionOptions {
  /** Workers in the pool. */
  workerCount?: number;
}

/**
 * The pool size and per-worker session options for `options`: `workerCount` (default one per
 * core up to {@link DEFAULT_MAX_MODEL_WORKERS}; one on CUDA, where sessions would share a single
 * device and each would hold its own copy of the weights in GPU memory) and `intraOpThreads`
 * (default cores / workers, so a busy pool does not oversubscribe the CPU).
 */
export function poolSizing(
  options: PoolSizing | undefined,
): { workerCount: number; session: SessionOptions } {
  const cores = Math.max(1, navigator.hardwareConcurrency || 1);
  const cuda = options?.executionProvider === "cuda" && cudaProviderInstalled();
  const workerCount = options?.workerCount ??
    (cuda ? 1 : Math.min(cores, DEFAULT_MAX_MODEL_WORKERS));
  if (!Number.isSafeInteger(workerCount) || workerCount < 1) {
    throw new RangeError(`workerCount must be a positive integer`);
  }
  return {
    workerCount,
    session: {
      executionProvider: options?.executionProvider,
      intraOpThreads: options?.intraOpThreads ?? Math.max(1, Math.floor(cores / workerCount)),
      spinning: options?.spinning,
    },
  };
}

/** Options of {@link ModelWorkerPool.start}. */
export interface ModelWorkerPoolOptions {
  /** Workers (sessions) to start. */
  workerCount: number;
  /** Session options of every worker. */
  session: SessionOptions;
  /** Set for decoder (text) models: enables `step` and `forward`. */
  decoder?: DecoderShape;
}

interface PendingCall {
  resolve(result: unknown): void;
  reject(error: unknown): void;
}

/** One worker and what the pool knows about its load. */
class WorkerSlot {
  readonly worker: Worker;
  readonly index: number;
  readonly pending = new Map<number, PendingCall>();
  /** Sequences placed here and not yet dropped. */
  sequences = 0;
  /** Set once the worker died or was terminated: the error every later request gets. */
  failure: Error | undefined;

  constructor(index: number) {
    this.index = index;
    this.worker = new Worker(new URL("./_model_worker.ts", import.meta.url).href, {
      type: "module",
      name: `veriflow-model-worker-${index}`,
    });
  }

  /** Fail every pending request and every later one with `error`. */
  fail(error: Error): void {
    this.failure ??= error;
    for (const call of this.pending.values()) call.reject(this.failure);
    this.pending.clear();
  }

  /** Work queued here, for placing one-shot requests. */
  get load(): number {
    return this.pending.size + this.sequences;
  }
}

/** A generation's KV cache in one worker of a pool. */
export class RemoteSequence {
  #pool: ModelWorkerPool;
  #slot: WorkerSlot;
  #seq: number;
  #open = true;

  /**
   * @param pool The pool.
   * @param slot The worker it is pinned to.
   * @param seq Its id in that worker.
   */
  constructor(pool: ModelWorkerPool, slot: WorkerSlot, seq: number) {
    this.#pool = pool;
    this.#slot = slot;
    this.#seq = seq;
    slot.sequences++;
  }

  /** Which worker of the pool holds the cache (0-based). */
  get workerIndex(): number {
    return this.#slot.index;
  }

  /**
   * Feed `tokens` after the cached ones; the token the worker sampled from the last logits row
   * under `sampling`, and that row's fingerprint (the row stays in the worker).
   */
  step(tokens: readonly number[], sampling: StepSampling): Promise<SampledStep> {
    if (!this.#open) return Promise.reject(new Error("the sequence is closed"));
    const args = { seq: this.#seq, tokens: [...tokens], sampling };
    return this.#pool.call(this.#slot, "step", args, []);
  }

  /** Free the cache in the worker (after any step already sent). Idempotent. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#slot.sequences--;
    if (!this.#slot.failure) this.#slot.worker.postMessage({ op: "drop", seq: this.#seq });
  }
}

/** A fixed pool of model workers sharing one model (see the module doc). */
export class ModelWorkerPool {
  #slots: WorkerSlot[];
  #nextId = 1;
  #nextSeq = 1;
  #disposed = false;
  #disposing: Promise<void> | undefined;

  private constructor(slots: WorkerSlot[]) {
    this.#slots = slots;
    for (const slot of slots) {
      slot.worker.onmessage = (event: MessageEvent<WorkerReply>) => this.#onReply(slot, event.data);
      slot.worker.onerror = (event: ErrorEvent) => {
        // A worker's uncaught error would otherwise take down the whole process.
        event.preventDefault();
        slot.fail(new ModelWorkerError(`model worker ${slot.index} failed: ${event.message}`));
        slot.worker.terminate();
      };
      slot.worker.onmessageerror = () => {
        slot.fail(new ModelWorkerError(`model worker ${slot.index} sent an unreadable message`));
        slot.worker.terminate();
      };
    }
  }

  /**
   * Start `workerCount` workers and create a session in each (in parallel). Rejects with the
   * worker's own error (`ModelLoadError`, …) after terminating every worker if any load fails.
   *
   * @param bytes The model file (copied to each worker; `start` never detaches it).
   * @param options Pool size, session options, decoder shape.
   * @returns The pool and the session's description (the same in every worker).
   */
  static async start(
    bytes: Uint8Array,
    options: ModelWorkerPoolOptions,
  ): Promise<{ pool: ModelWorkerPool; loaded: LoadedSession }> {
    const slots = Array.from({ length: options.workerCount }, (_, i) => new WorkerSlot(i));
    const pool = new ModelWorkerPool(slots);
    try {
      const loads = await Promise.all(slots.map((slot) =>
        pool.call(slot, "load", {
          bytes,
          session: options.session,
          decoder: options.decoder,
        }, [])
      ));
      return { pool, loaded: loads[0] };
    } catch (error) {
      await pool.dispose();
      throw error;
    }
  }

  /** Number of workers. */
  get size(): number {
    return this.#slots.length;
  }

  /** A new sequence on the worker with the fewest open sequences (ties: the first). */
  openSequence(): RemoteSequence {
    this.#checkUsable();
    const slot = this.#pick((s) => s.sequences * (1 + this.#slots.length) + s.pending.size);
    return new RemoteSequence(this, slot, this.#nextSeq++);
  }

  /** Teacher-forced full pass on the least-loaded worker: all rows of logits. */
  forward(tokens: readonly number[]): Promise<Float32Array> {
    this.#checkUsable();
    return this.call(this.#pick((s) => s.load), "forward", { tokens: [...tokens] }, []);
  }

  /** One-shot tensor run on the least-loaded worker; the inputs' buffers are transferred. */
  run(feeds: Record<string, PreparedTensor>): Promise<Record<string, TensorData>> {
    this.#checkUsable();
    const transfer = Object.values(feeds).map((t) => t.values.buffer);
    return this.call(this.#pick((s) => s.load), "run", { feeds }, transfer);
  }

  /** Every worker's counters, in pool order. */
  stats(): Promise<WorkerStats[]> {
    this.#checkUsable();
    return Promise.all(this.#slots.map((slot) => this.call(slot, "stats", {}, [])));
  }

  /**
   * Release every session and terminate every worker. Requests already queued in a worker
   * finish first (at most one step each); later ones fail with `ModelDisposedError`.
   * Idempotent.
   */
  dispose(): Promise<void> {
    this.#disposing ??= this.#dispose();
    return this.#disposing;
  }

  async #dispose(): Promise<void> {
    this.#disposed = true;
    await Promise.all(this.#slots.map(async (slot) => {
      if (!slot.failure) {
        // The worker is about to go: a release failure changes nothing for the caller.
        await this.call(slot, "dispose", {}, [], true).catch(() => {});
      }
      slot.worker.terminate();
      slot.fail(new ModelDisposedError());
    }));
  }

  /**
   * Send request `op` to `slot` and await its reply.
   *
   * @param slot The worker.
   * @param op The operation.
   * @param args Its arguments.
   * @param transfer Buffers to move (not copy) to the worker.
   * @param internal Whether the pool itself sends it (allowed while disposing).
   */
  call<K extends WorkerOp>(
    slot: WorkerSlot,
    op: K,
    args: WorkerOps[K]["args"],
    transfer: Transferable[],
    internal = false,
  ): Promise<WorkerOps[K]["result"]> {
    if (slot.failure) return Promise.reject(slot.failure);
    if (this.#disposed && !internal) return Promise.reject(new ModelDisposedError());
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve: resolve as (r: unknown) => void, reject });
      const request = { op, id, ...args } as WorkerRequest;
      slot.worker.postMessage(request, { transfer });
    });
  }

  #onReply(slot: WorkerSlot, reply: WorkerReply): void {
    const call = slot.pending.get(reply.id);
    if (!call) return;
    slot.pending.delete(reply.id);
    if (reply.ok) call.resolve(reply.result);
    else call.reject(deserializeError(reply.error));
  }

  #checkUsable(): void {
    if (this.#disposed) throw new ModelDisposedError();
    if (this.#slots.every((s) => s.failure)) throw this.#slots[0].failure;
  }

  /** The live worker with the lowest `cost` (ties: the first). */
  #pick(cost: (slot: WorkerSlot) => number): WorkerSlot {
    let best: WorkerSlot | undefined;
    for (const slot of this.#slots) {
      if (slot.failure) continue;
      if (!best || cost(slot) < cost(best)) best = slot;
    }
    if (!best) throw this.#slots[0].failure ?? new ModelWorkerError("no model worker is running");
    return best;
  }
}
