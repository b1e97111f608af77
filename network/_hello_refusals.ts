/**
 * A peer's refusal of this node's own hello, as a line in the operator's log. A peer that refuses
 * our hello (its grammar is another version's, it knows no such message, our hellos come faster
 * than its pace) answers with an `error` frame about it, which no request of ours waits on: until
 * stop 78 it reached the connection's `onRemoteError`, which the network did not hook, and the
 * node said nothing. A node refused by every peer (a version mismatch) then looked healthy in its
 * own log while no peer knew its roles, models or load, and none routed it a job.
 *
 * Each refusal is said once per connection and code, with the peer's key, the code and the peer's
 * words quoted (they set no level: `_peer_words.ts`), and what to do; a peer that keeps refusing
 * each hello adds nothing more, and the lines of many connections are the peer log's (a few per
 * 10 s, the rest counted: `log_limiter.ts`). A `busy` refusal is the peer's load, not a judgement
 * of the hello (the next one goes anyway), and is not said. Owned by `_peer_hellos.ts`; not part
 * of the public API.
 *
 * @module
 */
import type { Connection } from "../protocols/connection.ts";
import { toHex } from "../protocols/hash.ts";
import type { RemoteError } from "../protocols/protocol_errors.ts";
import { PeerHelloMessage } from "../protocols/peer_hello.ts";
import type { LogLimiter } from "./log_limiter.ts";
import { peerWords } from "./_peer_words.ts";

/**
 * The code a peer refuses a hello that came faster than its pace with (`HelloTooSoonError`). Its
 * refusal names no envelope (the pace refuses a hello, not one frame), so the code says it is ours.
 */
export const HELLO_TOO_SOON = "hello_too_soon";

/** The peer log's kind for these lines: their own few per window, apart from other kinds. */
export const OWN_HELLO_REFUSED = "own hello refused";

/** Codes that say the peer's version does not take ours: what its grammar or protocols refuse. */
const VERSION_CODES: ReadonlySet<string> = new Set([
  "invalid_body",
  "unknown_type",
  "unknown_version",
  "no_handler",
  "protocol_not_supported",
]);

/** `busy`: the peer's load, not its judgement of the hello. */
const BUSY = "busy";

/** What {@link OwnHelloRefusals} reads of this node. */
export interface OwnHelloRefusalsOptions {
  /** The peer log (`log_limiter.ts`). */
  peerLog: LogLimiter;
  /** This node's version as its hello states it (undefined before its first hello). */
  ownVersion: () => string | undefined;
  /** The version `connection`'s peer stated in its hello, when one was kept. */
  peerVersion: (connection: Connection) => string | undefined;
  /** This node's hello interval, ms (what a peer's pace refuses when shorter than its own). */
  intervalMs: () => number;
}

/** See the module doc. */
export class OwnHelloRefusals {
  readonly #o: OwnHelloRefusalsOptions;
  /** The code last said per connection: the same refusal again adds no line. */
  readonly #said = new WeakMap<Connection, string>();

  /** @param options See {@link OwnHelloRefusalsOptions}. */
  constructor(options: OwnHelloRefusalsOptions) {
    this.#o = options;
  }

  /**
   * `connection`'s peer sent `error`, which answers no request of ours: a line when it refuses
   * our hello (see the module doc).
   */
  refused(connection: Connection, error: RemoteError): void {
    const ours = error.envelopeType === PeerHelloMessage.type || error.code === HELLO_TOO_SOON;
    if (!ours || error.code === BUSY) return;
    if (this.#said.get(connection) === error.code) return;
    this.#said.set(connection, error.code);
    const key = connection.peerKey === undefined ? "?" : toHex(connection.peerKey).slice(0, 16);
    this.#o.peerLog.line(
      OWN_HELLO_REFUSED,
      `peer ${key}: refused our hello ${peerWords(`${error.code}: ${error.message}`)}: ` +
        this.#advice(connection, error.code),
    );
  }

  /** What the operator can do about a refusal with `code`. */
  #advice(connection: Connection, code: string): string {
    const unknown = "it knows nothing of this node's roles, models or load and routes it no jobs";
    if (code === HELLO_TOO_SOON) {
      return `our hellos come faster than its pace: this node's hello interval ` +
        `(${this.#o.intervalMs()} ms) is shorter than that peer's; use the network's (the default)`;
    }
    const ours = this.#o.ownVersion() ?? "?";
    const theirs = this.#o.peerVersion(connection);
    const versions = theirs === undefined ? `ours ${ours}` : `ours ${ours}, theirs ${theirs}`;
    if (VERSION_CODES.has(code)) {
      return `its version does not take ours (${versions}): run the network's version ` +
        `(upgrade the older node); until then ${unknown}`;
    }
    return `${unknown}; see that peer's log for why, and compare versions (${versions})`;
  }
}
