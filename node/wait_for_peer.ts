/**
 * Waiting for a peer: {@link waitForPeer} is `VeriflowNode.waitForPeer`, for a program that needs
 * a peer before it goes on (one that serves a model it will forward jobs for, a configured peer's
 * first connection) and would otherwise poll `peers()` itself.
 *
 * It looks at the node's peer table (`peers()`, the NetworkActor's answer) at once and then every
 * {@link PEER_WAIT_POLL_MS}, and resolves with the first peer that matches: one connected before
 * the call, or one that connects, lists its models or says its hello later. It rejects when the
 * caller's signal aborts (with the signal's reason) or when the node stops
 * ({@link NodeStoppedError}), and looks no more after either. The table has no change event to
 * wait on: one `peers` ask per wait per interval is what a look costs, an in-process message.
 *
 * @example
 * ```ts ignore
 * import { parseNodeConfig, startNode } from "../mod.ts";
 *
 * await using node = await startNode(parseNodeConfig({ network: { peers: ["10.0.0.2:7700"] } }));
 * // The first peer that serves a model, within a minute.
 * const worker = await node.waitForPeer((peer) => peer.models.length > 0, {
 *   signal: AbortSignal.timeout(60_000),
 * });
 * console.log(`worker ${worker.key} serves ${worker.models.join(", ")}`);
 * ```
 *
 * @module
 */
import type { PeerInfo } from "../network/network_actor.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";

/**
 * Between two looks at the peer table. A peer's models come one round trip after its handshake
 * and its hello at once: a quarter second is below what a program waiting on a peer notices, and
 * four asks a second is nothing to the NetworkActor.
 */
export const PEER_WAIT_POLL_MS = 250;

/** The node stopped (or was stopping) while something waited on it. Code `node_stopped`. */
export class NodeStoppedError extends VeriflowError {
  /**
   * Creates the error.
   * @param what What was waited on, for the message.
   */
  constructor(what = "a peer") {
    super("node_stopped", `the node stopped while waiting for ${what}`);
  }
}

/** Options of `VeriflowNode.waitForPeer`. */
export interface WaitForPeerOptions {
  /** Aborting it rejects the wait with the signal's reason (`AbortSignal.timeout(ms)`: a bound). */
  signal?: AbortSignal;
}

/** What {@link waitForPeer} looks at: a node's peer table and its stop. */
export interface PeerTable {
  /** The peers connected now (`VeriflowNode.peers`). */
  peers(): Promise<PeerInfo[]>;
  /** Aborted when the node begins to stop. */
  stopping: AbortSignal;
  /** The clock of the looks (default the real one; tests pass fake timers). */
  timers?: ConnectionTimers;
}

/**
 * Resolve with the first peer in `table` that `predicate` accepts, now or later; see the module
 * doc.
 * @param table The node's peers and its stop.
 * @param predicate Which peer (default: any).
 * @param options The caller's signal.
 * @returns The peer, as the table showed it when it matched.
 * @throws {NodeStoppedError} the node stopped first.
 * @throws the signal's reason when it aborted first, or what `predicate` threw.
 */
export function waitForPeer(
  table: PeerTable,
  predicate: (peer: PeerInfo) => boolean = () => true,
  options?: WaitForPeerOptions,
): Promise<PeerInfo> {
  const signal = options?.signal;
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (table.stopping.aborted) return Promise.reject(new NodeStoppedError());
  const timers = table.timers ?? SYSTEM_TIMERS;
  const { promise, resolve, reject } = Promise.withResolvers<PeerInfo>();
  let ended = false;
  let timer: unknown;
  const end = (settle: () => void) => {
    if (ended) return;
    ended = true;
    timers.clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    table.stopping.removeEventListener("abort", onStop);
    settle();
  };
  const onAbort = () => end(() => reject(signal!.reason));
  const onStop = () => end(() => reject(new NodeStoppedError()));
  signal?.addEventListener("abort", onAbort, { once: true });
  table.stopping.addEventListener("abort", onStop, { once: true });
  const look = async () => {
    let peers: PeerInfo[] = [];
    try {
      peers = await table.peers();
    } catch {
      // The NetworkActor is restarting (its supervisor's doing): the next look asks again.
    }
    if (ended) return;
    let found: PeerInfo | undefined;
    try {
      found = peers.find(predicate);
    } catch (error) {
      return end(() => reject(error));
    }
    if (found !== undefined) return end(() => resolve(found));
    timer = timers.setTimeout(() => void look(), PEER_WAIT_POLL_MS);
  };
  void look();
  return promise;
}
