/**
 * Waiting for a peer: {@link waitForPeer} is `VeriflowNode.waitForPeer`, for a program that needs
 * a peer before it goes on (one that serves a model it will forward jobs for, a configured peer's
 * first connection) and would otherwise poll `peers()` itself.
 *
 * It hears the NetworkActor's peer changes (`network/peer_changes.ts`: a peer up, its models
 * listed, its hello, its conviction) from the call on, reads the node's peer table (`peers()`)
 * once, and resolves with the first peer that matches: one in the table, or one a change shows
 * later. Nothing is asked again while it waits: a wait costs one read, and a test of the predicate
 * per change (run as the change is told: keep the predicate quick). A read that fails (the
 * NetworkActor restarting, whose new connections are told as changes anyway, or one that did not
 * answer an ask in time) is made again after {@link PEER_TABLE_RETRY_MS}. It rejects when the
 * caller's signal aborts (with the signal's reason) or when the node stops
 * ({@link NodeStoppedError}), and hears no more after either.
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
import type { PeerChange, PeerChangeSource } from "../network/peer_changes.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";

/**
 * Before a failed read of the peer table is made again. It fails only when the NetworkActor is
 * restarting (its new connections are heard as changes meanwhile) or did not answer an ask in
 * time: a second later is soon enough for a peer that was there all along, and no load on an
 * actor that is struggling.
 */
export const PEER_TABLE_RETRY_MS = 1_000;

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

/** What {@link waitForPeer} looks at: a node's peer table, its changes and its stop. */
export interface PeerTable {
  /** The peers connected now (`VeriflowNode.peers`). */
  peers(): Promise<PeerInfo[]>;
  /** The table's changes as the NetworkActor tells them (the node's `PeerChanges`). */
  changes: PeerChangeSource;
  /** Aborted when the node begins to stop. */
  stopping: AbortSignal;
  /** The clock of a failed read's retry (default the real one; tests pass fake timers). */
  timers?: ConnectionTimers;
}

/**
 * Resolve with the first peer in `table` that `predicate` accepts, now or later; see the module
 * doc.
 * @param table The node's peers, their changes and its stop.
 * @param predicate Which peer (default: any).
 * @param options The caller's signal.
 * @returns The peer, as the table or the change showed it when it matched.
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
    unsubscribe();
    signal?.removeEventListener("abort", onAbort);
    table.stopping.removeEventListener("abort", onStop);
    settle();
  };
  /** Resolve with the first of `peers` that matches, if one does. */
  const test = (peers: readonly PeerInfo[]) => {
    let found: PeerInfo | undefined;
    try {
      found = peers.find(predicate);
    } catch (error) {
      return end(() => reject(error));
    }
    if (found !== undefined) end(() => resolve(found));
  };
  const onAbort = () => end(() => reject(signal!.reason));
  const onStop = () => end(() => reject(new NodeStoppedError()));
  // Heard before the table is read: a peer that changes while the read is under way is not
  // missed between the two.
  const unsubscribe = table.changes.subscribe((change: PeerChange) => {
    if (!ended && change.type !== "down") test([change.peer]);
  });
  signal?.addEventListener("abort", onAbort, { once: true });
  table.stopping.addEventListener("abort", onStop, { once: true });
  const read = async () => {
    let peers: PeerInfo[];
    try {
      peers = await table.peers();
    } catch {
      if (!ended) timer = timers.setTimeout(() => void read(), PEER_TABLE_RETRY_MS);
      return;
    }
    if (!ended) test(peers);
  };
  void read();
  return promise;
}
