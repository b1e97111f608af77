/**
 * A WebSocket client over raw TCP that does only what a test tells it: the handshake, frames
 * written by hand, and nothing else. It never answers a close frame (a browser's or Deno's client
 * would), so a test can hold a socket the node has closed but whose close handshake never ends,
 * as a client that stopped reading does.
 *
 * @module
 */
import { concatBytes as concat } from "../_helpers/bytes.ts";

/** One raw connection, after its handshake was answered. */
export interface RawSocket {
  /** The TCP connection; close it to drop the socket without a close frame. */
  conn: Deno.TcpConn;
  /** The answer's status (101 when upgraded). */
  status: number;
  /** The answer's headers, names lower-cased. */
  headers: Map<string, string>;
  /** Bytes read past the answer's head (the first frames, or the refusal's body). */
  rest: Uint8Array;
}

/** Largest answer head read before giving up: a 101 or a refusal's head is a few hundred bytes. */
const MAX_HEAD_BYTES = 16 << 10;

/**
 * Send a WebSocket handshake for `path` to `url`'s host with `headers` added, and read the answer's
 * head. The connection stays open whatever the status.
 */
export async function rawUpgrade(
  url: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<RawSocket> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${hostname}:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  await writeAll(conn, new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
  let read: Uint8Array = new Uint8Array(0);
  let end = -1;
  while (end < 0) {
    const more = await readSome(conn);
    if (more === null || read.length > MAX_HEAD_BYTES) {
      conn.close();
      throw new Error(`no answer to the handshake for ${path}`);
    }
    read = concat(read, more);
    end = new TextDecoder().decode(read).indexOf("\r\n\r\n");
  }
  const head = new TextDecoder().decode(read.subarray(0, end)).split("\r\n");
  const status = Number(head[0].split(" ")[1]);
  const answer = new Map<string, string>();
  for (const line of head.slice(1)) {
    const colon = line.indexOf(":");
    answer.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { conn, status, headers: answer, rest: read.subarray(end + 4) };
}

/** A masked client text frame (mask all zero, so the payload goes as is) of `text`. */
export function textFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const head = payload.length < 126
    ? [0x81, 0x80 | payload.length]
    : [0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff];
  if (payload.length >= 1 << 16) throw new Error("textFrame: up to 64 KiB");
  return concat(new Uint8Array([...head, 0, 0, 0, 0]), payload);
}

/**
 * Read frames from `socket` until a close frame arrives, and return its code (the frames before it
 * are skipped; server frames are unmasked). Throws if the connection ends first.
 */
export async function closeCodeOf(socket: RawSocket): Promise<number> {
  let bytes = socket.rest;
  while (true) {
    // Walk the whole frames read so far.
    let at = 0;
    while (bytes.length - at >= 2) {
      const opcode = bytes[at] & 0x0f;
      let length = bytes[at + 1] & 0x7f;
      let start = at + 2;
      if (length === 126) {
        if (bytes.length - at < 4) break;
        length = (bytes[at + 2] << 8) | bytes[at + 3];
        start = at + 4;
      } else if (length === 127) throw new Error("closeCodeOf: frames up to 64 KiB");
      if (bytes.length < start + length) break;
      if (opcode === 0x8) return (bytes[start] << 8) | bytes[start + 1];
      at = start + length;
    }
    const more = await readSome(socket.conn);
    if (more === null) throw new Error("the connection ended without a close frame");
    bytes = concat(bytes, more);
  }
}

/** Drop every connection of `sockets` without a close frame (one closed already is skipped). */
export function dropAll(sockets: Iterable<RawSocket>): void {
  for (const socket of sockets) {
    try {
      socket.conn.close();
    } catch {
      // closed by the test already
    }
  }
}

/** Write all of `data`. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) written += await conn.write(data.subarray(written));
}

async function readSome(conn: Deno.Conn): Promise<Uint8Array | null> {
  const buffer = new Uint8Array(4096);
  const n = await conn.read(buffer);
  return n === null ? null : buffer.subarray(0, n);
}
