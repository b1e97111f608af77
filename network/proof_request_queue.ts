/**
 * Fair queuing of the `inference.get_proof` requests a worker serves (`peer_services.ts`).
 *
 * Any peer may ask for the proof data of any receipt id, and every request is answered by the
 * one ProverActor mailbox. Taken first come first served, a few hundred connections each
 * holding its 1,024 requests in flight put ~300,000 asks (~0.18 ms each: ~55 s) ahead of an
 * honest validator's one, past its 60 s proof deadline, and the honest worker is slashed for
 * withholding. So requests wait here, one queue per peer key (across its connections), and are
 * handed to the prover a few at a time, one peer's oldest after another's in turn: a request
 * waits behind at most one request of each other peer with requests waiting, however many
 * those peers queued. A peer key may have at most {@link MAX_QUEUED_PROOF_REQUESTS_PER_PEER}
 * waiting or being served; beyond that its request is refused with
 * {@link ProofRequestsBusyError} (`proof_requests_busy`), an error, never "none": a validator
 * takes an error as no answer on that route and asks again, so a refusal is no withholding
 * unless nothing signed arrives by the deadline. Not part of the public API.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";

/** Most proof requests of one peer key waiting or being served at once (all its connections). */
export const MAX_QUEUED_PROOF_REQUESTS_PER_PEER = 256;
/** Requests handed to the prover at once (it answers one at a time; a few keep it busy). */
export const PROOF_REQUESTS_AT_ONCE = 4;

/** A peer that already has its share of proof requests waiting (it may ask again later). */
export class ProofRequestsBusyError extends VeriflowError {
  constructor(limit: number) {
    super(
      "proof_requests_busy",
      `this peer already has ${limit} proof requests waiting here; ask again later`,
    );
  }
}

interface Waiter {
  start: () => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** Options of {@link ProofRequestQueue}. */
export interface ProofRequestQueueOptions {
  /** Per peer key: default {@link MAX_QUEUED_PROOF_REQUESTS_PER_PEER}. */
  perPeer?: number;
  /** Served at once: default {@link PROOF_REQUESTS_AT_ONCE}. */
  atOnce?: number;
}

/** Round-robin over peer keys, a bounded queue each (see the module doc). */
export class ProofRequestQueue {
  readonly #perPeer: number;
  readonly #atOnce: number;
  /** Waiting requests by peer, in turn order (a served peer goes to the back). */
  readonly #waiting = new Map<string, Waiter[]>();
  /** Requests waiting or being served, by peer. */
  readonly #held = new Map<string, number>();
  #running = 0;

  constructor(options: ProofRequestQueueOptions = {}) {
    this.#perPeer = options.perPeer ?? MAX_QUEUED_PROOF_REQUESTS_PER_PEER;
    this.#atOnce = options.atOnce ?? PROOF_REQUESTS_AT_ONCE;
  }

  /**
   * Run `task` for `peer` in its turn. Rejects with {@link ProofRequestsBusyError} at once when
   * the peer has its limit held, or with the signal's reason when it aborts while waiting.
   */
  run<T>(peer: string, task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const held = this.#held.get(peer) ?? 0;
    if (held >= this.#perPeer) return Promise.reject(new ProofRequestsBusyError(this.#perPeer));
    this.#held.set(peer, held + 1);
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        start: () => {
          this.#running++;
          Promise.resolve().then(task).then(resolve, reject).finally(() => {
            this.#running--;
            this.#release(peer);
            this.#pump();
          });
        },
        signal,
      };
      if (signal !== undefined) {
        waiter.onAbort = () => {
          const queue = this.#waiting.get(peer);
          const at = queue?.indexOf(waiter) ?? -1;
          if (at < 0) return; // already started: the task sees the signal itself
          queue!.splice(at, 1);
          if (queue!.length === 0) this.#waiting.delete(peer);
          this.#release(peer);
          reject(signal.reason);
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      const queue = this.#waiting.get(peer);
      if (queue === undefined) this.#waiting.set(peer, [waiter]);
      else queue.push(waiter);
      this.#pump();
    });
  }

  #release(peer: string): void {
    const held = (this.#held.get(peer) ?? 1) - 1;
    if (held <= 0) this.#held.delete(peer);
    else this.#held.set(peer, held);
  }

  /** Start the next peers' oldest requests, in turn, while there is room. */
  #pump(): void {
    while (this.#running < this.#atOnce && this.#waiting.size > 0) {
      const [peer, queue] = this.#waiting.entries().next().value!;
      const waiter = queue.shift()!;
      this.#waiting.delete(peer);
      if (queue.length > 0) this.#waiting.set(peer, queue); // to the back of the turn
      if (waiter.onAbort !== undefined) {
        waiter.signal!.removeEventListener("abort", waiter.onAbort);
      }
      waiter.start();
    }
  }
}
