/** Shared fixtures of the protocol tests: a connected pair and a few message types. */
import { z } from "zod";
import {
  Connection,
  type ConnectionOptions,
  type OpenConnectionOptions,
} from "../../protocols/connection.ts";
import type { ConnectionTimers } from "../../protocols/connection_timers.ts";
import { RemoteError } from "../../protocols/protocol_errors.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  type ByteDuplex,
  type MemoryDuplexOptions,
  memoryDuplexPair,
} from "../../protocols/memory_duplex.ts";
import {
  runSessionHandshake,
  type Session,
  type SessionHandshakeOptions,
} from "../../protocols/session_handshake.ts";
import { defineMessage } from "../../protocols/message_registry.ts";
import { encodeCbor } from "../../protocols/cbor.ts";
import type { Envelope } from "../../protocols/envelope.ts";
import { EnvelopeDecoderStream } from "../../streams/cbor_stream.ts";
import { LengthPrefixedDecoderStream } from "../../streams/length_prefixed_stream.ts";

export const Echoed = defineMessage("test.echoed", z.object({ text: z.string(), n: z.number() }));
export const Echo = defineMessage(
  "test.echo",
  z.object({ text: z.string(), n: z.number().int() }),
  { reply: Echoed },
);
export const Count = defineMessage("test.count_item", z.object({ i: z.number().int() }));
export const CountTo = defineMessage(
  "test.count",
  z.object({ to: z.number().int().nonnegative() }),
  { chunk: Count },
);
export const Note = defineMessage("test.note", z.object({ text: z.string() }));

/** Two connections over an in-memory duplex. */
export function connectedPair(
  clientOptions?: ConnectionOptions,
  serverOptions?: ConnectionOptions,
  duplexOptions?: MemoryDuplexOptions,
): { client: Connection; server: Connection; close(): Promise<void> } {
  const [a, b] = memoryDuplexPair(duplexOptions);
  const client = new Connection(a, clientOptions);
  const server = new Connection(b, serverOptions);
  return {
    client,
    server,
    async close() {
      await client.close();
      await server.close();
    },
  };
}

/** A hand-driven peer: writes raw frames, reads decoded envelopes. For adversarial tests. */
export interface RawPeer {
  /** Write a frame whose payload is `payload` (bytes as-is, anything else CBOR-encoded). */
  send(payload: Uint8Array | unknown): Promise<void>;
  /** Write raw bytes with no framing (to break the framing). */
  sendBytes(bytes: Uint8Array): Promise<void>;
  /** The next envelope the connection sent us (skipping nothing). */
  next(): Promise<Envelope>;
  /** Close our writable end. */
  close(): Promise<void>;
}

/**
 * Liveness off unless a test asks: a raw peer sends no pings, and a ping from the connection
 * would land among the frames a test reads.
 */
const RAW_PEER_DEFAULTS: ConnectionOptions = { keepaliveMs: 0, idleTimeoutMs: 0 };

/** A Connection on one end of a duplex and a {@link RawPeer} on the other. */
export function connectionWithRawPeer(
  options?: ConnectionOptions,
  duplexOptions?: MemoryDuplexOptions,
): { connection: Connection; peer: RawPeer } {
  const [a, b] = memoryDuplexPair(duplexOptions);
  const connection = new Connection(a, { ...RAW_PEER_DEFAULTS, ...options });
  return { connection, peer: rawPeer(b) };
}

/**
 * A Connection opened with the session handshake, and on the other end a {@link RawPeer}
 * that ran the handshake itself (so it can send what an honest Connection never would).
 */
export async function openWithRawPeer(
  options: OpenConnectionOptions,
  peerOptions: SessionHandshakeOptions,
  duplexOptions?: MemoryDuplexOptions,
): Promise<{ connection: Connection; peer: RawPeer; session: Session }> {
  const [a, b] = memoryDuplexPair(duplexOptions);
  const [connection, raw] = await Promise.all([
    Connection.open(a, { ...RAW_PEER_DEFAULTS, ...options }),
    runSessionHandshake(b, peerOptions),
  ]);
  return { connection, peer: rawPeer(raw.duplex), session: raw.session };
}

/** Two connections opened with the handshake over an in-memory duplex. */
export async function openPair(
  clientOptions?: Partial<OpenConnectionOptions>,
  serverOptions?: Partial<OpenConnectionOptions>,
  duplexOptions?: MemoryDuplexOptions,
): Promise<{ client: Connection; server: Connection; close(): Promise<void> }> {
  const [a, b] = memoryDuplexPair(duplexOptions);
  const [client, server] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), ...clientOptions }),
    Connection.open(b, { identity: Identity.generate(), ...serverOptions }),
  ]);
  return {
    client,
    server,
    async close() {
      await client.close();
      await server.close();
    },
  };
}

/**
 * A fake clock: time moves only in {@link advance}, which fires due timers in order and lets
 * the streams run between them (real macrotasks, but no real time is waited on).
 */
export class ManualTimers implements ConnectionTimers {
  #now = 0;
  #nextHandle = 1;
  readonly #timers = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const handle = this.#nextHandle++;
    this.#timers.set(handle, { at: this.#now + Math.max(0, ms), callback });
    return handle;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Timers still armed. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Move the clock forward by `ms`, firing every timer that falls due, in order. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await settle();
    for (;;) {
      let due: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= end && (!due || entry[1].at < due[1].at)) due = entry;
      }
      if (!due) break;
      this.#timers.delete(due[0]);
      this.#now = due[1].at;
      due[1].callback();
      await settle();
    }
    this.#now = end;
    await settle();
  }
}

/** Let every pending stream hop and the connections' read loops run (a few macrotasks). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** A {@link RawPeer} on one end of a duplex. */
export function rawPeer(b: ByteDuplex): RawPeer {
  const writer = b.writable.getWriter();
  const framer = (payload: Uint8Array) => {
    const frame = new Uint8Array(4 + payload.byteLength);
    new DataView(frame.buffer).setUint32(0, payload.byteLength);
    frame.set(payload, 4);
    return frame;
  };
  const reader = b.readable
    .pipeThrough(new LengthPrefixedDecoderStream())
    .pipeThrough(new EnvelopeDecoderStream())
    .getReader();
  return {
    send: (payload) =>
      writer.write(framer(payload instanceof Uint8Array ? payload : encodeCbor(payload))),
    sendBytes: (bytes) => writer.write(bytes),
    async next() {
      const { done, value } = await reader.read();
      if (done) throw new Error("connection closed its end");
      if (!value.ok) throw value.error;
      return value.envelope;
    },
    close: () => writer.close(),
  };
}

/** Whether `promise` settled as a `busy` refusal. */
export async function refusedBusy(promise: Promise<unknown>): Promise<boolean> {
  try {
    await promise;
    return false;
  } catch (error) {
    return error instanceof RemoteError && error.code === "busy";
  }
}
