/**
 * Dropping a server WebSocket the node is done with, which Deno 2.9 has no public way to do.
 *
 * After the node calls `socket.close()`, Deno waits for the client's close frame with no timeout:
 * a client that never answers keeps the connection, the partial message Deno is reading for it
 * (a fragmented message has no size limit, denoland/deno#15809) and, until its `onclose`, its
 * place among the node's sockets, for as long as it likes; Deno's `idleTimeout` ping stops once the
 * close is sent (denoland/deno#27924; measured in `tmp/s76/wsdrop/report.md`). The one per-socket
 * lever is internal: closing the socket's resource (`Deno[Deno.internal].core.tryClose(rid)`, what
 * Deno's own idle timeout does) cancels its read, so `onclose` fires (1005), the TCP connection
 * closes and the partial message is freed, all in the same turn.
 *
 * {@link closeThenDrop} is how the node closes a socket: it sends the close and, if `onclose` has
 * not fired after {@link WS_CLOSE_GRACE_MS}, drops the socket with {@link dropServerWebSocket}.
 *
 * Not an API: `Deno.internal`, `core.tryClose` and the `[[rid]]` symbol may change in any Deno
 * release. The lever is looked up once, when this module loads; {@link checkWebSocketDrop} (at the
 * edge's start) logs one warning when it is gone, and the node then behaves as before (the socket
 * is closed and waits for its client); nothing throws. `tests/server/websocket_drop_test.ts` pins
 * it, so an upgrade that removes it fails loudly.
 *
 * What the lever cannot do: drop a socket whose writes are stuck (a client that stopped reading
 * after the node filled its TCP buffers). `onclose` fires, but the queued writes hold the
 * connection and its buffers until the client goes (measured, same report), so the socket's place
 * would come back while its connection stays, and the client could pile up such connections, one
 * place at a time. {@link closeThenDrop} therefore leaves a socket with more than
 * {@link STUCK_WRITE_BYTES} unsent at its close as Deno leaves it: it keeps its place until its
 * client goes, as before, and only the caps on sockets bound them.
 *
 * @module
 */
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";

/**
 * How long a client may take to answer the node's close frame before its socket is dropped. An
 * honest client answers within one round trip (well under a second even across continents); 5 s
 * also covers a slow mobile link and a busy client event loop, while a client that never answers
 * holds its connection, and whatever it pushes meanwhile, for no more than this.
 */
export const WS_CLOSE_GRACE_MS = 5_000;

/**
 * Bytes left unsent at the close past which a socket's writes count as stuck and it is not dropped
 * (see the module's text). Well above what one turn sends before a close (a refusal, a dashboard
 * snapshot of tens of KiB, a job's last tokens), and below the 1 MiB at which `/v1/stream` pauses a
 * job for a client that does not read (`WS_HIGH_WATER_BYTES`): the cut-offs for not reading leave
 * more than that unsent, and they are the sockets whose writes are stuck.
 */
export const STUCK_WRITE_BYTES = 256 << 10;

/**
 * How long after a drop the socket's `onclose` may take before the node fires one itself. It comes
 * in the same turn as the drop (measured, `tmp/s76/wsdrop/report.md`), except for a socket whose
 * Deno event loop has died (a text message past V8's longest string, `websocket_text_overflow.ts`):
 * its `onclose` never comes, and without one its places would never be given back. A second is far
 * beyond the first and costs nothing in the second.
 */
export const DROPPED_CLOSE_WAIT_MS = 1_000;

/** Why {@link dropServerWebSocket} could not drop a socket; stable `code` strings. */
export type WebSocketDropRefusal =
  /** The node has not closed the socket (or it has closed already): nothing to drop. */
  | "not_closing"
  /** The socket has no `[[rid]]` own symbol holding a number (a Deno that changed it; a stand-in). */
  | "no_rid"
  /** `Deno[Deno.internal].core.tryClose` is not there (a Deno that changed it). */
  | "no_core";

/** What {@link dropServerWebSocket} did. */
export type WebSocketDropResult =
  | { dropped: true }
  | { dropped: false; code: WebSocketDropRefusal };

/** What closing and dropping needs of a socket (a `WebSocket`; tests pass stand-ins too). */
export interface DroppableSocket {
  /** `WebSocket.CLOSING` once the node has sent its close and no answer has come. */
  readonly readyState: number;
  /** Bytes queued for sending (a real socket's reads 0 once it is not `OPEN`). */
  readonly bufferedAmount?: number;
  /** Send the close frame. */
  close(code?: number, reason?: string): void;
  /** A real socket's: lets {@link closeThenDrop} disarm its timer once `onclose` fires. */
  addEventListener?(type: "close", listener: () => void, options?: { once?: boolean }): void;
  /** A real socket's: fires the `close` Deno's dead event loop no longer will. */
  dispatchEvent?(event: Event): boolean;
}

/** Options of {@link closeThenDrop}. */
export interface CloseThenDropOptions {
  /** How long the client may take to answer the close; default {@link WS_CLOSE_GRACE_MS}. */
  graceMs?: number;
  /** Where the one warning goes if the lever turns out to be missing; default `console.warn`. */
  log?: (line: string) => void;
}

/** `core.tryClose`, looked up once: the internals do not change while the process runs. */
const TRY_CLOSE: ((rid: number) => void) | undefined = findTryClose();

/** The `[[rid]]` own symbol of Deno's `WebSocket`, found on the first socket dropped. */
let ridSymbol: symbol | undefined;

/** Whether the one warning that the lever is gone has been logged (once per process). */
let warned = false;

function findTryClose(): ((rid: number) => void) | undefined {
  const internal = (Deno as unknown as { internal?: unknown }).internal;
  if (typeof internal !== "symbol") return undefined;
  const internals = (Deno as unknown as Record<symbol, unknown>)[internal] as
    | { core?: { tryClose?: unknown } }
    | undefined;
  const tryClose = internals?.core?.tryClose;
  return typeof tryClose === "function" ? (tryClose as (rid: number) => void) : undefined;
}

function ridOf(socket: object): number | undefined {
  ridSymbol ??= Object.getOwnPropertySymbols(socket).find((s) => s.description === "[[rid]]");
  if (ridSymbol === undefined) return undefined;
  const rid = (socket as Record<symbol, unknown>)[ridSymbol];
  return typeof rid === "number" ? rid : undefined;
}

function warnOnce(log: (line: string) => void, code: WebSocketDropRefusal): void {
  if (warned) return;
  warned = true;
  log(
    `warning: this Deno (${Deno.version.deno}) has no way to drop a WebSocket (${code}): a ` +
      "client that never answers the node's close keeps its socket until it leaves " +
      "(server/websocket_drop.ts)",
  );
}

/**
 * Whether this Deno has the lever, checked once at the edge's start: if not, one warning goes to
 * `log` and sockets are closed as before, waiting for their clients.
 *
 * @example
 * ```ts
 * import { checkWebSocketDrop } from "./websocket_drop.ts";
 * console.log(checkWebSocketDrop()); // true on Deno 2.9.6
 * ```
 *
 * @param log Where the warning goes; default `console.warn`.
 * @returns Whether {@link dropServerWebSocket} can drop sockets.
 */
export function checkWebSocketDrop(log: (line: string) => void = console.warn): boolean {
  if (TRY_CLOSE !== undefined) return true;
  warnOnce(log, "no_core");
  return false;
}

/**
 * Drop a server socket the node has closed (`CLOSING`): close its resource, so its `onclose` fires
 * (1005) and its connection and partial message go, without waiting for the client. Never throws.
 *
 * @example
 * ```ts ignore
 * socket.close(1008, "go away");
 * dropServerWebSocket(socket); // { dropped: true }
 * ```
 *
 * @param socket A socket from `Deno.upgradeWebSocket`.
 * @returns Whether it was dropped, or why not (the socket is then left as it was).
 */
export function dropServerWebSocket(socket: DroppableSocket): WebSocketDropResult {
  // Only a socket the node closed itself: dropping an open one would skip its close frame.
  if (socket.readyState !== WebSocket.CLOSING) return { dropped: false, code: "not_closing" };
  if (TRY_CLOSE === undefined) return { dropped: false, code: "no_core" };
  const rid = ridOf(socket);
  if (rid === undefined) return { dropped: false, code: "no_rid" };
  try {
    // deno_core never reuses a resource id, so a socket closed meanwhile closes nothing else.
    TRY_CLOSE(rid);
  } catch {
    return { dropped: false, code: "no_core" };
  }
  return { dropped: true };
}

/**
 * Drop a socket the node has closed ({@link dropServerWebSocket}) and make sure its `close` event
 * comes: if it has not within {@link DROPPED_CLOSE_WAIT_MS}, one (1006) is dispatched on it, so
 * whatever is given back at its `onclose` is. Never throws.
 *
 * @param socket The socket, `CLOSING`.
 * @param timers The clock of the wait.
 * @returns What {@link dropServerWebSocket} did.
 */
export function dropWebSocket(
  socket: DroppableSocket,
  timers: Pick<ConnectionTimers, "setTimeout" | "clearTimeout"> = SYSTEM_TIMERS,
): WebSocketDropResult {
  const result = dropServerWebSocket(socket);
  if (!result.dropped || socket.dispatchEvent === undefined) return result;
  const timer = timers.setTimeout(() => {
    if (socket.readyState === WebSocket.CLOSED) return;
    socket.dispatchEvent?.(
      new CloseEvent("close", { code: 1006, reason: "dropped by the node", wasClean: false }),
    );
  }, DROPPED_CLOSE_WAIT_MS);
  socket.addEventListener?.("close", () => timers.clearTimeout(timer), { once: true });
  return result;
}

/**
 * Close `socket` with `code` and `reason` and, if its `onclose` has not fired within the grace
 * ({@link WS_CLOSE_GRACE_MS}), drop it ({@link dropWebSocket}). A socket already closing or
 * closed is left alone (its first close armed the drop), and so is one with more than
 * {@link STUCK_WRITE_BYTES} unsent (the drop could not end its connection: see the module's text).
 * Where the lever is missing, one warning is logged and the socket waits for its client, as before.
 *
 * @example
 * ```ts ignore
 * closeThenDrop(socket, 1008, "read nothing for 30000 ms", SYSTEM_TIMERS);
 * ```
 *
 * @param socket The socket.
 * @param code The close code.
 * @param reason The close reason (at most 123 bytes of UTF-8).
 * @param timers The clock of the grace; default the system's.
 * @param options The grace, and where a missing lever is reported.
 */
export function closeThenDrop(
  socket: DroppableSocket,
  code: number,
  reason: string,
  timers: Pick<ConnectionTimers, "setTimeout" | "clearTimeout"> = SYSTEM_TIMERS,
  options: CloseThenDropOptions = {},
): void {
  if (socket.readyState >= WebSocket.CLOSING) return;
  // Read before the close: it reads 0 once the socket is not `OPEN`.
  const unsent = socket.bufferedAmount ?? 0;
  socket.close(code, reason);
  if (socket.readyState !== WebSocket.CLOSING || unsent > STUCK_WRITE_BYTES) return;
  const timer = timers.setTimeout(() => {
    // Its `onclose` came (its client answered, or it failed): nothing to drop.
    if (socket.readyState !== WebSocket.CLOSING) return;
    const result = dropWebSocket(socket, timers);
    if (!result.dropped) warnOnce(options.log ?? console.warn, result.code);
  }, options.graceMs ?? WS_CLOSE_GRACE_MS);
  // Disarmed at `onclose`, so a closed socket leaves no timer behind (nor a test's sanitizer a leak).
  socket.addEventListener?.("close", () => timers.clearTimeout(timer), { once: true });
}
