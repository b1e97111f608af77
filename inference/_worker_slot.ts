/**
 * One worker of a {@link ModelWorkerPool} as the pool sees it ({@link WorkerSlot}: its current
 * `Worker` across restarts, the requests it has not answered, its load, its supervision state),
 * and a generation pinned to one ({@link RemoteSequence}: a KV cache held by one incarnation of
 * that worker).
 *
 * Owned by the pool (`_model_worker_pool.ts`), which creates the slots, routes requests to them
 * and supervises them; the sequences are what `ModelWorkerPool.openSequence` returns to
 * `_text_engine.ts` (the pool re-exports {@link RemoteSequence}). Not part of the public API.
 *
 * @module
 */
import type { SampledStep, StepSampling } from "./_decoder_session.ts";
import type { BatchedPost } from "./_batched_post.ts";
import type { WorkerRequest } from "./_worker_protocol.ts";
import { ModelWorkerError } from "./errors.ts";
import type { ModelWorkerHealth, ModelWorkerLane } from "./model_health.ts";
import type { ModelWorkerPool } from "./_model_worker_pool.ts";

interface PendingCall {
  resolve(result: unknown): void;
  reject(error: unknown): void;
}

/** One worker (across its restarts) and what the pool knows about its load. */
export class WorkerSlot {
  readonly index: number;
  readonly lane: ModelWorkerLane;
  worker!: Worker;
  /** Posts to `worker`: requests without transfers go together (`_batched_post.ts`). */
  outbox!: BatchedPost<WorkerRequest>;
  /** Bumped at each death: a sequence opened in an earlier incarnation has lost its cache. */
  incarnation = 0;
  state: ModelWorkerHealth["state"] = "running";
  /** Resolves when a restarting worker runs again; rejects if the pool gives up on it. */
  ready: Promise<void> = Promise.resolve();
  readonly pending = new Map<number, PendingCall>();
  /** Sequences placed here (in this incarnation) and not yet closed. */
  sequences = 0;
  /**
   * Sequences placed here while it restarts, waiting for the replacement (not yet in
   * `sequences`): they take seats as surely as the running ones, so placement counts them.
   */
  awaiting = 0;
  /** Restarts after crashes. */
  restarts = 0;
  lastError: string | undefined;
  /** Set once the pool gave up on it or was disposed: the error every later request gets. */
  failure: Error | undefined;
  /**
   * Since when callers' requests have waited here without a reply (the pool's clock): set
   * when the first is posted, moved on by every reply, cleared when none is left. The pool's
   * own requests do not count (a load: see `loadingSince`), but for its `dispose`.
   */
  waitingSince: number | undefined;
  /** Callers' requests (and the pool's `dispose`) posted here and not yet answered. */
  readonly watched = new Set<number>();
  /**
   * Since when a replacement's load has gone unanswered (the pool's clock), while it restarts:
   * the requests waiting for it (`ready`) are no worker's yet, so only this shows it hung.
   */
  loadingSince: number | undefined;
  /** The pool's supervision clock (`performance.now` unless a test gave another). */
  readonly #now: () => number;

  constructor(index: number, lane: ModelWorkerLane, now: () => number = () => performance.now()) {
    this.index = index;
    this.lane = lane;
    this.#now = now;
  }

  /** Fail every pending request with `error`. */
  failPending(error: Error): void {
    for (const call of this.pending.values()) call.reject(error);
    this.pending.clear();
    this.watched.clear();
    this.waitingSince = undefined;
  }

  /** Request `id` was answered (or given up). */
  answered(id: number): void {
    if (!this.watched.delete(id)) return;
    this.waitingSince = this.watched.size === 0 ? undefined : this.#now();
  }

  /** Work queued here, for placing one-shot requests. */
  get load(): number {
    return this.pending.size + this.sequences;
  }

  /** Open sequences placed here: those its worker holds and those waiting for its replacement. */
  get placed(): number {
    return this.sequences + this.awaiting;
  }
}

/**
 * A generation's KV cache in one worker of a pool. It belongs to the incarnation of the worker
 * its first step is posted to: one opened while its worker restarts waits for a replacement that
 * runs (a replacement that dies while loading does not take it along; a worker the pool gives up
 * on hands it to another worker, since no cache was lost), and fails only if the worker that
 * holds its cache dies.
 */
export class RemoteSequence {
  #pool: ModelWorkerPool;
  #slot: WorkerSlot;
  /** The incarnation holding the cache; undefined until the first step is posted. */
  #incarnation: number | undefined;
  /** Whether it is counted in its slot's `awaiting` (placed while the worker restarts). */
  #awaiting = false;
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
    this.#place(slot);
  }

  /** Pin it to `slot`: bound at once to a running worker, else waiting for its replacement. */
  #place(slot: WorkerSlot): void {
    this.#slot = slot;
    if (slot.state === "running") this.#bind();
    else {
      this.#awaiting = true;
      slot.awaiting++;
    }
  }

  #bind(): void {
    this.#stopAwaiting();
    this.#incarnation = this.#slot.incarnation;
    this.#slot.sequences++;
  }

  #stopAwaiting(): void {
    if (!this.#awaiting) return;
    this.#awaiting = false;
    this.#slot.awaiting--;
  }

  /** Which worker of the pool holds the cache (0-based). */
  get workerIndex(): number {
    return this.#slot.index;
  }

  /**
   * Feed `tokens` after the cached ones; the token the worker sampled from the last logits row
   * under `sampling`, that row's fingerprint and, with `topLogprobs` > 0, its most likely tokens
   * (the row stays in the worker).
   */
  step(
    tokens: readonly number[],
    sampling: StepSampling,
    topLogprobs = 0,
    ahead = 0,
  ): Promise<SampledStep> {
    if (!this.#open) return Promise.reject(new Error("the sequence is closed"));
    if (this.#incarnation === undefined) {
      // Opened while its worker restarts: bound to the first replacement that runs. `ready`
      // settles once one does (or the pool gives up or is disposed: then it rejects).
      if (this.#slot.state !== "running") {
        const again = () => this.step(tokens, sampling, topLogprobs, ahead);
        return this.#slot.ready.then(again, (error) => {
          // Given up on before it held this sequence's cache: nothing is lost, so a worker
          // still serving takes it (placed as a new one is), instead of failing a job that
          // another worker can run. Disposed, or no worker left: the pool's error.
          if (!this.#open || this.#slot.state !== "failed") throw error;
          this.#stopAwaiting();
          this.#place(this.#pool.seatFor());
          return again();
        });
      }
      this.#bind();
    }
    if (this.#incarnation !== this.#slot.incarnation) {
      return Promise.reject(
        new ModelWorkerError(
          `model worker ${this.#slot.index} died during this generation and its KV cache with ` +
            `it; submit the job again`,
        ),
      );
    }
    const args = { seq: this.#seq, tokens: [...tokens], sampling, topLogprobs, ahead };
    return this.#pool.call(this.#slot, "step", args, []);
  }

  /** Free the cache in the worker (after any step already sent). Idempotent. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#stopAwaiting();
    // Never reached a worker (a step still waiting for a replacement sees it closed), or died
    // with the one it reached: nothing to free. Else that worker runs (a death changes the
    // incarnation), and `drop` follows the steps already posted to it.
    if (this.#incarnation === undefined || this.#incarnation !== this.#slot.incarnation) return;
    this.#slot.sequences--;
    if (this.#slot.state === "running" && !this.#slot.failure) {
      // Nobody awaits it, but the stall watch does (`_worker_protocol.ts`); a worker that dies
      // first took the cache with it.
      this.#pool.call(this.#slot, "drop", { seq: this.#seq }, []).catch(() => {});
    }
  }
}
