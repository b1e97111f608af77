/**
 * Test fixture: two connections over an in-memory pair where one side (the client) reads nothing of
 * what the other (the server) sends until the test says (a congested link, a large transfer from
 * the peer), so that what the server owes it piles up in the server's write budget. For the tests
 * of a `busy` refusal made while that budget is full (`connection_busy_test.ts`,
 * `tests/network/busy_announcements_test.ts`).
 *
 * @module
 */
import { Connection } from "../../protocols/connection.ts";
import type { ConnectionOptions } from "../../protocols/connection_options.ts";
import type { ConnectionTimers } from "../../protocols/connection_timers.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { Note } from "./_helpers.ts";

/** The two ends of {@link slowReaderPair}. */
export interface SlowReaderPair {
  /** Reads nothing from the server until {@link open}; takes `Note`s (and drops them). */
  client: Connection;
  /** Its writes to the client wait in its write budget until the client reads. */
  server: Connection;
  /** The client starts reading. */
  open: () => void;
  /** The client reads, and both ends close. */
  close: () => Promise<void>;
}

/**
 * A client that reads nothing until `open()` and a server, both on `timers` with nothing else
 * due (no keepalive, no idle timeout; the client's request timeout the default 30 s a lost
 * refusal runs into), over a pair whose streams buffer 4 KiB. `serverOptions` go to the server
 * (its write budget `maxQueuedBytes`, its `maxInboundRequests`).
 */
export function slowReaderPair(
  timers: ConnectionTimers,
  serverOptions: ConnectionOptions = {},
): SlowReaderPair {
  const quiet = { timers, keepaliveMs: 0, idleTimeoutMs: 0 };
  const [a, b] = memoryDuplexPair({ highWaterMarkBytes: 4 * 1024 });
  const gate = Promise.withResolvers<void>();
  const readable = a.readable.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      async transform(chunk, controller) {
        await gate.promise;
        controller.enqueue(chunk);
      },
    }),
  );
  const client = new Connection(
    { readable, writable: a.writable },
    { ...quiet, requestTimeoutMs: 30_000 },
  );
  const server = new Connection(b, { ...quiet, ...serverOptions });
  client.handle(Note, () => {});
  return {
    client,
    server,
    open: () => gate.resolve(),
    async close() {
      gate.resolve();
      await client.close();
      await server.close();
    },
  };
}
