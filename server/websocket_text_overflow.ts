/**
 * One WebSocket text message must not stop the node. Deno 2.9 bounds no message (its 64 MiB limit
 * is per frame; a fragmented message has none, denoland/deno#15809), and a text message past V8's
 * longest string (2^29 − 24 characters, about 512 MiB) makes Deno's own WebSocket event loop reject
 * with `TypeError: failed to allocate string; buffer exceeds maximum length`, a promise nothing can
 * catch: the process exited. Measured on the node (`tmp/s76/wsfix/report.md`): a keyless tool, any
 * API key, or a dashboard page before its `auth` stopped it with one 512 MiB message in about 3 s.
 *
 * {@link containWebSocketTextOverflow} handles exactly that rejection (by its type, message and
 * Deno's WebSocket code in its stack; any other unhandled rejection still ends the process) and
 * logs one line. The message is gone, and its memory with it (measured: RSS 561 → 50 MiB). The
 * socket it came on reads nothing more and never fires `onclose` (its event loop is dead), but it
 * is still `OPEN`: the node ends it at its next close (the idle close, the dashboard's `auth`
 * deadline, the memory guard), where `dropWebSocket` (`websocket_drop.ts`) drops it and fires the
 * `close` Deno no longer will, so its places come back. A dashboard socket that has its key is
 * never closed by the node, so such a one keeps its place until the node stops or the memory guard
 * drops it (whether its client's leaving ends it was not measured).
 *
 * @module
 */

/** What Deno's WebSocket event loop rejects with for a text message past V8's longest string. */
const OVERFLOW_MESSAGE = "failed to allocate string; buffer exceeds maximum length";

/** Where the rejection comes from: Deno's WebSocket code (`ext:deno_websocket/01_websocket.js`). */
const DENO_WEBSOCKET_SOURCE = "deno_websocket";

/** Whether the handler is installed (once per process: the rejection is the process's). */
let installed = false;

/**
 * Whether `reason` is Deno's WebSocket event loop failing on a text message past V8's longest
 * string.
 *
 * @param reason An unhandled rejection's reason.
 * @returns Whether it is that failure and nothing else.
 */
export function isWebSocketTextOverflow(reason: unknown): boolean {
  return reason instanceof TypeError && reason.message === OVERFLOW_MESSAGE &&
    (reason.stack ?? "").includes(DENO_WEBSOCKET_SOURCE);
}

/**
 * Keep the process alive when a WebSocket client sends a text message past V8's longest string
 * (see the module's text). Installed once per process, at the edge's start; later calls do nothing.
 *
 * @example
 * ```ts
 * import { containWebSocketTextOverflow } from "./websocket_text_overflow.ts";
 * containWebSocketTextOverflow(console.log);
 * ```
 *
 * @param log Where the line per such message goes; default `console.warn`.
 */
export function containWebSocketTextOverflow(
  log: (line: string) => void = console.warn,
): void {
  if (installed) return;
  installed = true;
  globalThis.addEventListener("unhandledrejection", (event) => {
    if (!isWebSocketTextOverflow(event.reason)) return;
    event.preventDefault();
    log(
      "warning: a WebSocket client sent a text message past V8's longest string (about 512 MiB): " +
        "Deno could not deliver it and its socket reads nothing more; the node ends that socket " +
        "at its next close (server/websocket_text_overflow.ts)",
    );
  });
}
