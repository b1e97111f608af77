/**
 * Goodbyes: what a node says to its peers when it stops cleanly, so they can tell a stop from a
 * crash.
 *
 * Without it a peer sees only the connection drop, the same as when the node dies: its log said
 * `peer down … connection closed`, and it kept the peer in its table until the close reached it. A stopping node sends `peer.goodbye` with a
 * reason to every peer that offered {@link GOODBYE_PROTOCOL}, waits a bounded while for the
 * frames to be written, then closes its connections as before. A peer that receives it closes
 * that connection at once with a {@link PeerStoppedError}: everything pending on it fails with
 * that error (a router's jobs fail over as on any lost worker, and the worker is asked last for a
 * while as any lost one: a goodbye costs nothing to say; its track record counts the goodbye as
 * no failure only within an allowance, `network/worker_record.ts`), and the peer is dropped from the table with one line, `peer KEY stopped
 * (stopping)`. It redials a static peer by its usual backoff.
 *
 * The frame is not signed: the connection's handshake proved the peer's key, and a goodbye says
 * nothing to anyone but the peer on the other end. It travels in a protocol of its own, offered
 * in the handshake, so a node that does not know it (older than review s62) is never sent one:
 * its peers see its connections drop, as before. A reason this node does not know is still a
 * stop: a newer node may name more (see {@link GOODBYE_REASONS}).
 *
 * @example
 * ```ts
 * import { GOODBYE_PROTOCOL, PeerGoodbyeMessage, PeerStoppedError } from "./peer_goodbye.ts";
 * console.log(GOODBYE_PROTOCOL.name, PeerGoodbyeMessage.type); // peer.goodbye peer.goodbye
 * const error = new PeerStoppedError("stopping");
 * console.log(error.code, error.message); // connection_closed peer stopped (stopping)
 * ```
 *
 * @module
 */
import { z } from "zod";
import { defineMessage, type MessageDefinition } from "./message_registry.ts";
import { defineProtocol, type Protocol } from "./connection_protocols.ts";
import { ConnectionClosedError } from "./protocol_errors.ts";

/**
 * The reasons this node gives: `stopping`, the node is shutting down (Ctrl-C, `shutdown()`). A
 * node that restarts says `stopping` too: to its peers it is gone until it dials back in.
 */
export const GOODBYE_REASONS = ["stopping"] as const;
/** One of {@link GOODBYE_REASONS}. */
export type GoodbyeReason = typeof GOODBYE_REASONS[number];

/** Longest reason accepted on the wire (a code, not prose). */
export const MAX_GOODBYE_REASON_LENGTH = 64;

/** Body of `peer.goodbye`. */
export interface PeerGoodbyeBody {
  /** Why the peer leaves: one of {@link GOODBYE_REASONS}, or a newer node's own. */
  reason: string;
}

/** `peer.goodbye`: the peer is about to close this connection, and why (one-way). */
export const PeerGoodbyeMessage: MessageDefinition<PeerGoodbyeBody> = defineMessage(
  "peer.goodbye",
  z.object({
    reason: z.string().max(MAX_GOODBYE_REASON_LENGTH).regex(/^[a-z][a-z0-9_]*$/),
  }),
);

/** Goodbyes, version 1: offered by every node since review s62. */
export const GOODBYE_PROTOCOL: Protocol = defineProtocol("peer.goodbye", 1, [PeerGoodbyeMessage]);

/**
 * The peer said goodbye (it stopped cleanly) and the connection was closed for it. Its code is
 * `connection_closed`, as for any closed connection: whatever fails over, retries or answers a
 * client on a closed connection does the same for a peer that left; the class tells why, for
 * what should not count a clean stop as a failure (a router's bookkeeping of its workers, the
 * log).
 */
export class PeerStoppedError extends ConnectionClosedError {
  /** The reason the peer gave (`stopping`, or a newer node's own). */
  readonly reason: string;

  /**
   * Creates the error.
   * @param reason The reason the peer's goodbye gave.
   */
  constructor(reason: string) {
    super(`peer stopped (${reason})`);
    this.reason = reason;
  }
}
