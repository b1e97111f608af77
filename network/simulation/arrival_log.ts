/**
 * When each simulated node first learned something: a receipt, a verdict. A node's validator
 * passes a peer's receipt or verdict on to its other peers exactly when it is new to its ledger
 * (gossip), and publishes its own verdict when it signs it — so the moment it tells its
 * NetworkActor to send one is the moment that node has it. An {@link ArrivalTap} stands between
 * each validator and its NetworkActor, notes those moments in the shared {@link ArrivalLog},
 * and forwards every message unchanged.
 *
 * @example
 * ```ts
 * import { ArrivalLog } from "./arrival_log.ts";
 * const log = new ArrivalLog(2);
 * log.record("receipt", 0);
 * log.record("receipt", 1);
 * log.complete("receipt"); // true
 * ```
 *
 * @module
 */
import type { Actor, ActorContext } from "../../actors/actor.ts";
import type { NetworkMessage } from "../network_actor.ts";
import { verdictId } from "../../protocols/verdict.ts";

/** Key of the (one) job's receipt in the log. */
export const RECEIPT_KEY = "receipt";

/** Key of a verdict in the log. */
export function verdictKey(id: string): string {
  return `verdict:${id}`;
}

/** First-arrival times (`performance.now()`) per key and node. */
export class ArrivalLog {
  readonly #nodes: number;
  readonly #times = new Map<string, Float64Array>();
  readonly #counts = new Map<string, number>();
  readonly #first = new Map<string, number>();
  #changed = Promise.withResolvers<void>();

  /** @param nodes How many nodes report. */
  constructor(nodes: number) {
    this.#nodes = nodes;
  }

  /** Node `node` has `key` now (later reports of the same pair are ignored). */
  record(key: string, node: number): void {
    let times = this.#times.get(key);
    if (times === undefined) {
      times = new Float64Array(this.#nodes).fill(NaN);
      this.#times.set(key, times);
      this.#first.set(key, node);
    }
    if (!Number.isNaN(times[node])) return;
    times[node] = performance.now();
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }

  /** Nodes that have `key`. */
  count(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Whether every node has `key`. */
  complete(key: string): boolean {
    return this.count(key) === this.#nodes;
  }

  /** Every key recorded so far that starts with `prefix`. */
  keys(prefix = ""): string[] {
    return [...this.#times.keys()].filter((k) => k.startsWith(prefix));
  }

  /**
   * The node that reported `key` first, in the order of the reports (not of their times, which
   * may tie): its origin, since a node reports its own receipt or verdict before sending it.
   */
  first(key: string): number | undefined {
    return this.#first.get(key);
  }

  /** The arrival times of `key` (NaN: not arrived). */
  times(key: string): Float64Array {
    return this.#times.get(key) ?? new Float64Array(this.#nodes).fill(NaN);
  }

  /** Resolves at the next arrival. */
  next(): Promise<void> {
    return this.#changed.promise;
  }

  /** Resolves once `done()` holds, checked at every arrival. */
  async until(done: () => boolean): Promise<void> {
    while (!done()) await this.next();
  }
}

/** Messages the validator only tells the network (no answer expected). */
const TOLD = new Set<NetworkMessage["type"]>([
  "announce_receipt",
  "publish_verdict",
  "publish_fraud_proof",
  "publish_stream_proof",
  "peer_convicted",
]);

/**
 * Stands under the name a validator tells its network by: notes arrivals in the log, then
 * forwards each message to the real NetworkActor (registered as `network`).
 */
export class ArrivalTap implements Actor<NetworkMessage> {
  readonly #network: string;
  readonly #node: number;
  readonly #log: ArrivalLog;

  /**
   * @param network Registry name of the node's NetworkActor.
   * @param node The node's index in the log.
   * @param log Where arrivals go.
   */
  constructor(network: string, node: number, log: ArrivalLog) {
    this.#network = network;
    this.#node = node;
    this.#log = log;
  }

  /** Note, then forward. */
  receive(message: NetworkMessage, ctx: ActorContext<NetworkMessage>): unknown {
    if (message.type === "announce_receipt") this.#log.record(RECEIPT_KEY, this.#node);
    if (message.type === "publish_verdict") {
      this.#log.record(verdictKey(verdictId(message.verdict)), this.#node);
    }
    const network = ctx.system.lookup<NetworkMessage>(this.#network);
    if (network === undefined) return undefined;
    return TOLD.has(message.type) ? network.tell(message) : network.ask(message);
  }
}
