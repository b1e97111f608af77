/** Shared fixtures of the protocol tests: a connected pair and a few message types. */
import { z } from "zod";
import { Connection, type ConnectionOptions } from "../../protocols/connection.ts";
import { type MemoryDuplexOptions, memoryDuplexPair } from "../../protocols/memory_duplex.ts";
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

/** Resolve after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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

/** A Connection on one end of a duplex and a {@link RawPeer} on the other. */
export function connectionWithRawPeer(
  options?: ConnectionOptions,
  duplexOptions?: MemoryDuplexOptions,
): { connection: Connection; peer: RawPeer } {
  const [a, b] = memoryDuplexPair(duplexOptions);
  const connection = new Connection(a, options);
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
    connection,
    peer: {
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
    },
  };
}
