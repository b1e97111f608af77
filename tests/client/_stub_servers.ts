/**
 * Stand-ins for a node that misbehaves, for the client tests: one that accepts connections and
 * never answers, one whose stream goes silent mid-job; and the frames a scripted stub sends.
 *
 * @module
 */

/** The `start` frame a stub server sends for job `id` (a one-token prompt on model `x`). */
export function startFrame(id: string): Record<string, unknown> {
  return {
    type: "start",
    id,
    job_id: "ab".repeat(32),
    model: "x",
    model_name: "x",
    execution_provider: "cpu",
    prompt_tokens: 1,
  };
}

/** The `done` frame a stub server ends job `id` with, after `completionTokens` tokens. */
export function doneFrame(
  id: string,
  completionTokens: number,
  finishReason = "length",
): Record<string, unknown> {
  return {
    type: "done",
    id,
    job_id: "ab".repeat(32),
    finish_reason: finishReason,
    usage: {
      prompt_tokens: 1,
      completion_tokens: completionTokens,
      total_tokens: 1 + completionTokens,
    },
    timings: { queue_ms: 0, ttft_ms: 0, tokens_per_s: 0, total_ms: 0 },
  };
}

/**
 * A port that accepts TCP connections and never answers: a stopped (SIGSTOP), swapped-out or
 * wedged node. `close` closes the listener and every connection it accepted.
 */
export function silentPort(): { port: number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) held.push(conn);
    } catch {
      // closed
    }
  })();
  return {
    port: listener.addr.port,
    close() {
      listener.close();
      for (const conn of held) conn.close();
      void accepting;
    },
  };
}

/**
 * A `/v1/stream` stand-in that starts each job and sends one token, then nothing more: a wedged
 * worker behind a live socket. `messages` has what clients sent.
 */
export function stallingServer(): Deno.HttpServer<Deno.NetAddr> & { messages: unknown[] } {
  const messages: unknown[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      messages.push(message);
      if (message.type !== "infer") return;
      socket.send(JSON.stringify(startFrame(message.id)));
      socket.send(
        JSON.stringify({ type: "token", id: message.id, index: 0, token_id: 65, text: "A" }),
      );
    };
    return response;
  });
  return Object.assign(server, { messages });
}

/** What {@link wedgedServer} gives a test. */
export interface WedgedServer {
  /** Its `ws://` URL. */
  url: string;
  /** The JSON messages clients sent, parsed. */
  messages: unknown[];
  /** Resolves once a client's close frame has arrived (it is never answered). */
  closeReceived: Promise<void>;
  /** Close the listener and every connection. */
  close(): void;
}

/** The GUID a WebSocket handshake's accept key is derived with (RFC 6455, 1.3). */
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Frame opcodes (RFC 6455, 5.2). */
const OPCODE_TEXT = 0x1;
const OPCODE_CLOSE = 0x8;

/**
 * A `/v1/stream` stand-in, written on raw TCP, that starts each job and sends one token, then
 * answers nothing, not even a close frame: a node that stopped (SIGSTOP) or wedged mid-job,
 * whose kernel still takes the bytes. `Deno.serve` would answer the close handshake itself.
 */
export function wedgedServer(): WedgedServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const messages: unknown[] = [];
  const closeReceived = Promise.withResolvers<void>();
  const encoder = new TextEncoder();
  const writeAll = async (conn: Deno.Conn, bytes: Uint8Array) => {
    for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
  };
  const serveConn = async (conn: Deno.Conn) => {
    let pending = new Uint8Array(0);
    const more = async (): Promise<boolean> => {
      const buffer = new Uint8Array(16 * 1024);
      const n = await conn.read(buffer);
      if (n === null) return false;
      const joined = new Uint8Array(pending.length + n);
      joined.set(pending);
      joined.set(buffer.subarray(0, n), pending.length);
      pending = joined;
      return true;
    };
    // The handshake.
    let end = -1;
    while ((end = new TextDecoder().decode(pending).indexOf("\r\n\r\n")) < 0) {
      if (!await more()) return;
    }
    const head = new TextDecoder().decode(pending.subarray(0, end));
    pending = pending.subarray(end + 4);
    const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1] ?? "";
    const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + WEBSOCKET_GUID));
    const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
    await writeAll(
      conn,
      encoder.encode(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
      ),
    );
    const send = (message: unknown) => {
      const payload = encoder.encode(JSON.stringify(message));
      // Unmasked, final, 16-bit length: the stub's messages are under 64 KiB.
      const head = Uint8Array.of(
        0x80 | OPCODE_TEXT,
        126,
        payload.length >> 8,
        payload.length & 0xff,
      );
      return writeAll(conn, Uint8Array.from([...head, ...payload]));
    };
    // Client frames: masked, short (a test's infer and cancel are under 64 KiB).
    while (true) {
      while (pending.length < 2) if (!await more()) return;
      const opcode = pending[0] & 0x0f;
      let length = pending[1] & 0x7f;
      let at = 2;
      if (length === 126) {
        while (pending.length < 4) if (!await more()) return;
        length = (pending[2] << 8) | pending[3];
        at = 4;
      }
      while (pending.length < at + 4 + length) if (!await more()) return;
      const mask = pending.subarray(at, at + 4);
      const payload = pending.slice(at + 4, at + 4 + length).map((b, i) => b ^ mask[i % 4]);
      pending = pending.subarray(at + 4 + length);
      if (opcode === OPCODE_CLOSE) {
        closeReceived.resolve();
        continue; // never answered
      }
      if (opcode !== OPCODE_TEXT) continue;
      const message = JSON.parse(new TextDecoder().decode(payload));
      messages.push(message);
      if (message.type !== "infer") continue;
      await send(startFrame(message.id));
      await send({ type: "token", id: message.id, index: 0, token_id: 65, text: "A" });
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        held.push(conn);
        serveConn(conn).catch(() => {}); // the test closed the connection
      }
    } catch {
      // closed
    }
  })();
  return {
    url: `ws://127.0.0.1:${listener.addr.port}`,
    messages,
    closeReceived: closeReceived.promise,
    close() {
      listener.close();
      for (const conn of held) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      void accepting;
    },
  };
}

/**
 * A `/v1/stream` stand-in that answers each job with `start`, then a `token` frame for each of
 * `tokens` (its index and text, as given: in order or not, as many as given), then `done`, or
 * the frame `end` makes of the job's id (an `error`, a `done` with more in it).
 */
export function scriptedServer(
  tokens: readonly { index: number; text: string }[],
  end?: (id: string) => Record<string, unknown>,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== "infer") return;
      const send = (frame: unknown) => socket.send(JSON.stringify(frame));
      send(startFrame(message.id));
      for (const { index, text } of tokens) {
        send({ type: "token", id: message.id, index, token_id: 65, text });
      }
      send(end?.(message.id) ?? doneFrame(message.id, tokens.length));
    };
    return response;
  });
}

/**
 * A `/v1/stream` stand-in that answers each `infer` with the frames `frames` makes of its id, as
 * they are: an object is sent as its JSON, a string as it is (a frame too long, or not JSON). A
 * faulty or hostile node: frames of the wrong shape, a `done` that miscounts.
 */
export function framesServer(
  frames: (id: string) => readonly (Record<string, unknown> | string)[],
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== "infer") return;
      for (const frame of frames(message.id)) {
        socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
      }
    };
    return response;
  });
}

/** The `token` frame a stub server sends as job `id`'s token `index`. */
export function tokenFrame(id: string, index: number, text = "A"): Record<string, unknown> {
  return { type: "token", id, index, token_id: 65, text };
}
