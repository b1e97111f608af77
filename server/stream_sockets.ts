/**
 * How many `/v1/stream` sockets the node holds open: each client (`queueClient`: an API key, a
 * keyless client elsewhere by its address, this machine's tools together) at most
 * {@link MAX_STREAM_SOCKETS_PER_CLIENT}, and the node {@link MAX_STREAM_SOCKETS}; past either the
 * upgrade is refused, 429 `too_many_sockets` with `Retry-After`, its message naming the limit. The
 * counting is the dashboard's (`OpenSockets`, `dashboard_socket_caps.ts`), not a new mechanism.
 *
 * A socket from this machine (`fromThisMachine`: the operator's tools, `cli.ts infer`) takes a node
 * place while one is free, and else one of {@link MAX_STREAM_SOCKETS_THIS_MACHINE} places kept for
 * this machine alone: four remote clients can fill {@link MAX_STREAM_SOCKETS} (review s75 verify
 * F1), and they must not shut the operator out of the node it runs. Each of this machine's clients
 * keeps its per-client cap.
 *
 * Why a cap and not a message size: Deno 2.9's `Deno.upgradeWebSocket` takes no largest message
 * (its options are `protocol`, `idleTimeout` and `socket`), and its own limit,
 * {@link DENO_MAX_WS_FRAME_BYTES}, is per frame: a message sent in fragments has no limit at all
 * (denoland/deno#15809). Deno reads the whole message before the session sees it and refuses it
 * over `http.maxRequestBytes` (close 1009): 256 MiB sent in 1 MiB fragments was read whole (RSS
 * 181 → 696 MiB), and a 512 MiB text message, past V8's longest string, killed the node
 * (`tmp/s76/wsfix/report.md`; now contained, `websocket_text_overflow.ts`). The caps bound how many sockets there are, not what each holds;
 * that is bounded only by how long a socket lives while its client sends: the node drops a socket
 * it has closed after the close's grace (`websocket_drop.ts`) and, past `server.wsMemoryLimitBytes`,
 * every socket running no job, then at the next check still over the rest
 * (`websocket_memory_guard.ts`).
 *
 * A socket holds its place from the upgrade until its `onclose` has really fired
 * (`StreamSession.closed`), not when the node calls `close()`: a client that never answers the close
 * keeps counting against its client until it is dropped, `WS_CLOSE_GRACE_MS` later
 * (`websocket_drop.ts`; Deno's `idleTimeout` ping stops once the node has sent its close), or, cut
 * off for not reading (1008), until it goes: its stuck writes hold the connection whatever the node
 * does, so it must keep counting.
 *
 * @module
 */
import type { ClientIdentity } from "./client_identity.ts";
import { OpenSockets } from "./dashboard_socket_caps.ts";
import { EdgeError } from "./http_errors.ts";
import { queueClient } from "./inference_gateway.ts";

/**
 * Deno's own largest WebSocket frame, in bytes (not settable in Deno 2.9; fastwebsockets'
 * `max_message_size`, checked per frame). Not a bound on a message: the frames of a fragmented
 * message are appended with no total limit (see the module's text).
 */
export const DENO_MAX_WS_FRAME_BYTES = 64 << 20;

/**
 * Most `/v1/stream` sockets open on the whole node. Each holds its unread replies (2 MiB,
 * `WS_MAX_BUFFERED_BYTES`), the kernel's send buffer (about 2 MiB, measured in review s75) and
 * whatever partial message its client is sending, which only the socket's end bounds (see the
 * module's text). One socket carries any number of jobs, and the node runs a handful at once, so
 * 32 is room for dozens of streaming clients.
 */
export const MAX_STREAM_SOCKETS = 32;

/**
 * Most `/v1/stream` sockets one client may hold open: a quarter of the node's, so one client (a
 * key, or every tool on this machine together) cannot take every place. A client needs one socket
 * for all its jobs; 8 leaves room for a few processes or tabs, and for sockets cut off whose close
 * is still unanswered (within the close's grace).
 */
export const MAX_STREAM_SOCKETS_PER_CLIENT = 8;

/**
 * Places kept for sockets from this machine, beyond {@link MAX_STREAM_SOCKETS}, taken once those
 * are full: one client's share, as this machine's keyless tools together are one client.
 */
export const MAX_STREAM_SOCKETS_THIS_MACHINE = MAX_STREAM_SOCKETS_PER_CLIENT;

/**
 * `Retry-After` of a refusal: a place comes back only when one of the client's sockets closes,
 * which a client that streams does after its jobs; 5 s spares the node a client retrying in a
 * tight loop while letting one that closed a socket back in soon.
 */
const RETRY_AFTER_S = 5;

/** Options of {@link StreamSockets}. */
export interface StreamSocketsOptions {
  /** Most sockets open on the node; default {@link MAX_STREAM_SOCKETS}. */
  maxSockets?: number;
  /** Most sockets one client may hold open; default {@link MAX_STREAM_SOCKETS_PER_CLIENT}. */
  maxSocketsPerClient?: number;
  /**
   * Places kept for this machine's sockets beyond `maxSockets`; default
   * {@link MAX_STREAM_SOCKETS_THIS_MACHINE}.
   */
  maxSocketsThisMachine?: number;
}

/**
 * The `/v1/stream` socket places of one node: see the module's text.
 *
 * @example
 * ```ts
 * import { StreamSockets } from "./stream_sockets.ts";
 * const sockets = new StreamSockets({ maxSocketsPerClient: 1 });
 * const release = sockets.take({ label: "loopback" });
 * // a second socket of the same client now throws 429 `too_many_sockets`
 * release(); // at the socket's `onclose`
 * ```
 */
export class StreamSockets {
  readonly #node: OpenSockets;
  /** The places kept for this machine, taken once the node's are full. */
  readonly #kept: OpenSockets;
  readonly #perClient: OpenSockets;

  /**
   * Create it.
   *
   * @param options The limits.
   */
  constructor(options: StreamSocketsOptions = {}) {
    const maxSockets = options.maxSockets ?? MAX_STREAM_SOCKETS;
    const maxPerClient = options.maxSocketsPerClient ?? MAX_STREAM_SOCKETS_PER_CLIENT;
    this.#node = new OpenSockets(maxSockets, (open) =>
      new EdgeError(
        "too_many_sockets",
        `this node already has ${open} /v1/stream sockets open, its limit of ${maxSockets}: ` +
          "retry after the Retry-After seconds",
        { retryAfterS: RETRY_AFTER_S },
      ));
    const maxThisMachine = options.maxSocketsThisMachine ?? MAX_STREAM_SOCKETS_THIS_MACHINE;
    this.#kept = new OpenSockets(maxThisMachine, (open) =>
      new EdgeError(
        "too_many_sockets",
        `this node already has ${maxSockets} /v1/stream sockets open, its limit of ` +
          `${maxSockets}, and this machine's tools ${open} more, the places kept for them: ` +
          "close one, or retry after the Retry-After seconds",
        { retryAfterS: RETRY_AFTER_S },
      ));
    this.#perClient = new OpenSockets(maxPerClient, (open) =>
      new EdgeError(
        "too_many_sockets",
        `this client already has ${open} /v1/stream sockets open, its limit of ${maxPerClient} ` +
          "(one socket carries any number of jobs): close one, or retry after the Retry-After " +
          "seconds",
        { retryAfterS: RETRY_AFTER_S },
      ));
  }

  /**
   * Take a place for one socket of `client`, or throw 429 `too_many_sockets` naming the limit it
   * met; call the result once the socket's `onclose` has fired (a second call does nothing).
   * `thisMachine` (`fromThisMachine`): the socket takes one of the places kept for this machine
   * when the node's are full.
   */
  take(client: ClientIdentity, thisMachine = false): () => void {
    const mine = this.#perClient.take(queueClient(client));
    try {
      const node = this.#nodePlace(thisMachine);
      return () => {
        node();
        mine();
      };
    } catch (error) {
      mine();
      throw error;
    }
  }

  /** A node place, or for this machine one kept for it once the node's are full. */
  #nodePlace(thisMachine: boolean): () => void {
    try {
      return this.#node.take();
    } catch (error) {
      if (!thisMachine) throw error;
      return this.#kept.take();
    }
  }
}
