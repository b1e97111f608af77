/**
 * A bare `Deno.serve` on 127.0.0.1 that upgrades every request to a WebSocket and records each
 * socket's `onclose` codes, for the tests of `server/websocket_drop.ts` and
 * `server/websocket_memory_guard.ts`; and {@link connectionEnd}, which waits for a raw client's
 * connection to be closed by the server. Waits give up after `EVENTUALLY_GIVE_UP_MS` (a liveness
 * guard, so a socket that is never dropped fails its test instead of hanging the suite).
 *
 * @module
 */
import { EVENTUALLY_GIVE_UP_MS } from "../_helpers/wait.ts";
import type { RawSocket } from "./_raw_ws.ts";

/** A running upgrade server. */
export interface UpgradeServer {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** The next socket to open (in order of opening). */
  opened(): Promise<WebSocket>;
  /** The `onclose` codes `socket` has seen so far. */
  closes(socket: WebSocket): number[];
  /** Resolves with `socket`'s `onclose` codes once it has seen one. */
  closed(socket: WebSocket): Promise<number[]>;
  /** Stop the server (what is still open is closed). */
  shutdown(): Promise<void>;
}

/** Start an {@link UpgradeServer}. */
export function upgradeServer(): UpgradeServer {
  const codes = new Map<WebSocket, number[]>();
  const waiters = new Map<WebSocket, () => void>();
  const opens: WebSocket[] = [];
  let wake: (() => void) | undefined;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    codes.set(socket, []);
    socket.onopen = () => {
      opens.push(socket);
      wake?.();
    };
    socket.onclose = (event) => {
      codes.get(socket)!.push(event.code);
      waiters.get(socket)?.();
    };
    return response;
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    opened: () =>
      guarded(
        (async () => {
          while (opens.length === 0) await new Promise<void>((resolve) => wake = resolve);
          return opens.shift()!;
        })(),
        "a socket to open",
      ),
    closes: (socket) => [...(codes.get(socket) ?? [])],
    closed: (socket) =>
      guarded(
        new Promise<number[]>((resolve) => {
          const done = () => resolve([...codes.get(socket)!]);
          if (codes.get(socket)!.length > 0) done();
          else waiters.set(socket, done);
        }),
        "the socket's onclose",
      ),
    shutdown: () => server.shutdown(),
  };
}

/** Resolves once the server has closed `socket`'s TCP connection (its reads end). */
export function connectionEnd(socket: RawSocket): Promise<void> {
  return guarded(
    (async () => {
      const buffer = new Uint8Array(1 << 16);
      while (true) {
        try {
          if (await socket.conn.read(buffer) === null) return;
        } catch {
          return; // reset: gone too
        }
      }
    })(),
    "the server to close the connection",
  );
}

/** `work`, or an error after `EVENTUALLY_GIVE_UP_MS` naming `what`. */
async function guarded<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const giveUp = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${what}`)),
      EVENTUALLY_GIVE_UP_MS,
    );
  });
  try {
    return await Promise.race([work, giveUp]);
  } finally {
    clearTimeout(timer);
  }
}
