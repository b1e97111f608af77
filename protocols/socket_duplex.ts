/**
 * A byte duplex over one stream socket (TCP or Unix domain), closing politely. The TCP
 * transport (`tcp_transport.ts`) and the Unix transport (`unix_transport.ts`) wrap their
 * sockets with it.
 *
 * The one thing it does beyond moving bytes is closing politely. Deno's `conn.readable` and
 * `conn.writable` close the whole socket when either ends; closing a socket that still has
 * unread bytes from the peer makes the kernel send RST, and a RST makes the peer's kernel
 * throw away what it had received and not yet read — in our tests, the last `error` frame a
 * `Connection` sends before closing was lost in 80 of 80 tries. So here:
 *
 * - closing the writable half-closes (`closeWrite()`: FIN after the last byte we wrote);
 * - cancelling the readable does not close the socket: it keeps reading (and discarding)
 *   until the peer's EOF, up to `lingerMs`, so the socket is never closed with unread bytes;
 * - the socket is closed once both halves are done. `close()` cuts it at once.
 *
 * The readable is a byte stream: a reader in BYOB mode (`getReader({ mode: "byob" })`, as a
 * `Connection` takes it) gets the socket's bytes read straight into its own buffer, with no
 * buffer allocated per read; a default reader gets each read as a new chunk of its own.
 *
 * @example
 * ```ts
 * import { socketDuplex } from "./socket_duplex.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = socketDuplex(await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }));
 * const server = socketDuplex(await listener.accept());
 * const writer = client.writable.getWriter();
 * await writer.write(new TextEncoder().encode("hi"));
 * await writer.close();
 * for await (const bytes of server.readable) console.log(new TextDecoder().decode(bytes)); // hi
 * client.close();
 * server.close();
 * listener.close();
 * ```
 *
 * @module
 */
import type { ByteDuplex } from "./memory_duplex.ts";

/** Options of a socket duplex. */
export interface SocketDuplexOptions {
  /**
   * After our reader gave up, how long to keep draining the peer's bytes waiting for its EOF
   * before closing anyway (default 2 s, a connection's close grace: long enough for a live
   * peer to finish, short enough that a stuck one does not hold the socket).
   */
  lingerMs?: number;
  /**
   * Most bytes taken from the socket per read by a default reader (default 64 KiB, one TCP
   * socket buffer's worth). A bulk link between two local processes (the swarm host's) reads
   * more per wake-up with a larger buffer; each chunk handed on is copied out of it, so it
   * costs memory only once (and only once a default read or the drain needs it). A BYOB
   * reader reads into its own buffer instead, as much as it offers.
   */
  readBufferBytes?: number;
}

/** Options of a socket listener (TCP, Unix): its accepted duplexes', and its log. */
export interface ListenOptions extends SocketDuplexOptions {
  /**
   * Hears accepts that fail and are retried (out of file descriptors, a connection reset
   * before it was accepted): a run of failures as its first error, a reminder about once a
   * minute while it lasts, and the first accept that works again.
   */
  log?: (line: string) => void;
}

/** A byte duplex over one stream socket. */
export interface SocketDuplex extends ByteDuplex {
  /** Resolves once the socket is closed. */
  readonly closed: Promise<void>;
  /** Close the socket now, both ways (unsent and unread bytes are lost). */
  close(): void;
  /** Bytes the socket has taken so far, counted per socket write (see {@link ByteDuplex}). */
  readonly bytesWritten: number;
}

/** Bytes read from the socket per read by default: one TCP socket buffer's worth. */
export const DEFAULT_READ_BUFFER_BYTES = 64 * 1024;
const DEFAULT_LINGER_MS = 2_000;
/**
 * Most bytes gathered into one socket write before a writer waits: 64 KiB, one socket
 * buffer's worth, so a batch goes out in one syscall and this buffer stays small beside the
 * connection's own budget.
 */
const MAX_COALESCED_BYTES = 64 * 1024;

/**
 * A chunk this large is written from its own buffer, never copied into a batch: copying it
 * (a frame's 256 KiB storage chunk) costs more than the one socket write it would save.
 */
const MIN_UNBATCHED_BYTES = 16 * 1024;

/**
 * The writes that send `parts` in order: each run of small parts joined into one buffer (or
 * the part itself, alone), each large part on its own.
 */
function batches(parts: Uint8Array[]): Uint8Array[] {
  if (parts.length === 1) return parts;
  const out: Uint8Array[] = [];
  let run: Uint8Array[] = [];
  let runBytes = 0;
  const endRun = () => {
    if (run.length === 1) out.push(run[0]);
    else if (run.length > 1) {
      const joined = new Uint8Array(runBytes);
      let at = 0;
      for (const part of run) {
        joined.set(part, at);
        at += part.byteLength;
      }
      out.push(joined);
    }
    run = [];
    runBytes = 0;
  };
  for (const part of parts) {
    if (part.byteLength >= MIN_UNBATCHED_BYTES) {
      endRun();
      out.push(part);
    } else {
      run.push(part);
      runBytes += part.byteLength;
    }
  }
  endRun();
  return out;
}

/**
 * Wrap an open stream socket as a {@link SocketDuplex} with half-close (see the module doc).
 * A TCP socket gets no Nagle delay (frames are small and latency-bound).
 * @param conn The socket; the duplex owns it from now on.
 * @param options Linger time, read size.
 * @returns The duplex.
 */
export function socketDuplex(conn: Deno.Conn, options?: SocketDuplexOptions): SocketDuplex {
  const lingerMs = options?.lingerMs ?? DEFAULT_LINGER_MS;
  const readBufferBytes = options?.readBufferBytes ?? DEFAULT_READ_BUFFER_BYTES;
  // Allocated at the first default read (or drain): a BYOB reader never needs it.
  let scratch: Uint8Array | null = null;
  const closed = Promise.withResolvers<void>();
  let readDone = false;
  let writeDone = false;
  let socketClosed = false;
  let cancelled = false;
  let reading: Promise<number | null> | null = null;
  let lingerTimer: ReturnType<typeof setTimeout> | undefined;

  const finish = () => {
    if (!readDone || !writeDone || socketClosed) return;
    socketClosed = true;
    clearTimeout(lingerTimer);
    try {
      conn.close();
    } catch {
      // already closed
    }
    closed.resolve();
  };
  const cut = () => {
    readDone = writeDone = true;
    finish();
  };
  /**
   * One read at a time, shared by the reader and the drain: into `into` (a BYOB reader's
   * buffer) or else the scratch buffer.
   */
  const read = (into?: Uint8Array): Promise<number | null> => {
    reading ??= conn.read(into ?? (scratch ??= new Uint8Array(readBufferBytes))).finally(() =>
      reading = null
    );
    return reading;
  };
  const drain = async () => {
    lingerTimer = setTimeout(cut, lingerMs);
    try {
      while (!socketClosed && (await read()) !== null) {
        // discard: nobody reads any more, but the peer's bytes must not be left unread
      }
    } catch {
      // reset by the peer: nothing left to drain
    }
    readDone = true;
    finish();
  };

  const readable = new ReadableStream({
    type: "bytes",
    async pull(controller) {
      // A BYOB read offers its buffer: the socket reads into it, no copy and no allocation.
      // (Without `autoAllocateChunkSize` a default read comes without a request.)
      const request = controller.byobRequest;
      const into = request?.view
        ? new Uint8Array(request.view.buffer, request.view.byteOffset, request.view.byteLength)
        : undefined;
      // The default reads' buffer (the handshake's, the swarm link token's) is let go once a
      // BYOB reader reads: else every connection kept two read buffers, that one and its own.
      if (into !== undefined) scratch = null;
      let n: number | null;
      try {
        n = await read(into);
      } catch (error) {
        readDone = true;
        finish();
        throw error;
      }
      if (cancelled) return; // cancelled while the read was pending; the drain took over
      if (n === null) {
        readDone = true;
        controller.close();
        request?.respond(0); // a pending BYOB read resolves `done`
        finish();
        return;
      }
      if (request) request.respond(n);
      else controller.enqueue(scratch!.slice(0, n));
    },
    cancel() {
      cancelled = true;
      if (readDone) return;
      drain();
    },
  }, { highWaterMark: 0 });

  // Writes coalesce: while one socket write is in flight, later frames gather behind it and go
  // out together in the next (group commit, not a timer), so a busy connection pays one
  // syscall per batch instead of one per frame and an idle one still sends a frame at once.
  // Only small chunks are joined: a large one goes out from its own buffer (see `batches`).
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let flushing: Promise<void> | null = null;
  let writeFailure: unknown = null;
  // Progress within a chunk: a 256 KiB chunk on a slow link takes many socket writes, and its
  // own write resolves only after the last one (see `ByteDuplex.bytesWritten`).
  let bytesWritten = 0;
  const flushLoop = async () => {
    while (pending.length > 0) {
      const parts = pending;
      pending = [];
      pendingBytes = 0;
      for (const batch of batches(parts)) {
        for (let offset = 0; offset < batch.byteLength;) {
          const n = await conn.write(batch.subarray(offset));
          offset += n;
          bytesWritten += n;
        }
      }
    }
  };
  const flush = (): Promise<void> => {
    flushing ??= flushLoop().catch((error) => {
      writeFailure = error;
      cut();
    }).finally(() => {
      flushing = null;
      // A frame queued between the loop's last check and this turn must not wait for the
      // next write (which may be a keepalive seconds away).
      if (pending.length > 0 && writeFailure === null) flush();
    });
    return flushing;
  };
  const writable = new WritableStream<Uint8Array>({
    start(controller) {
      // An abort must not wait for a write the peer will never take (it stopped reading):
      // the stream calls `abort` only after the write in flight, so cut on the signal.
      controller.signal.addEventListener("abort", () => {
        pending = [];
        cut();
      }, { once: true });
    },
    async write(chunk) {
      if (writeFailure !== null) throw writeFailure;
      pending.push(chunk);
      pendingBytes += chunk.byteLength;
      const done = flush();
      // Beyond one batch, wait: the connection's budget, not this buffer, is what may grow. A
      // large chunk is written from its own buffer (not copied): its write resolves only once
      // the socket took all of it, so a writer may reuse a buffer whose write resolved.
      if (pendingBytes >= MAX_COALESCED_BYTES || chunk.byteLength >= MIN_UNBATCHED_BYTES) {
        await done;
      }
      if (writeFailure !== null) throw writeFailure;
    },
    async close() {
      await flush();
      if (writeFailure !== null) throw writeFailure;
      try {
        await conn.closeWrite(); // FIN after our last byte; the peer may still send
      } catch {
        // the peer already reset the connection
      }
      writeDone = true;
      finish();
    },
    abort() {
      pending = [];
      cut();
    },
  });

  if (conn.localAddr.transport === "tcp") {
    try {
      (conn as Deno.TcpConn).setNoDelay(true); // frames are small and latency-bound: no Nagle
    } catch {
      // not fatal
    }
  }
  return {
    readable,
    writable,
    closed: closed.promise,
    close: cut,
    get bytesWritten() {
      return bytesWritten;
    },
  };
}
