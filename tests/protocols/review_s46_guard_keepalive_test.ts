import assert from "node:assert/strict";
import { z } from "zod";
import { encodeCbor } from "../../protocols/cbor.ts";
import { cidOf, RAW_CODEC } from "../../protocols/cid.ts";
import { Connection } from "../../protocols/connection.ts";
import {
  decodeManifest,
  encodeManifest,
  InvalidManifestError,
  isManifest,
  type PublicManifest,
} from "../../protocols/manifest.ts";
import { defineMessage } from "../../protocols/message_registry.ts";
import { PeerTimeoutError } from "../../protocols/protocol_errors.ts";
import { socketDuplex } from "../../protocols/socket_duplex.ts";
import { chunksReferencedBy } from "../../storage/dag_links.ts";
import { ManualTimers, settle } from "./_helpers.ts";
import { SlowConn } from "./_slow_conn.ts";

// --- (1) manifests are untrusted CBOR: the wire's structure guard applies to them too ---

const CHUNK = cidOf(new Uint8Array([1]), RAW_CODEC);

/**
 * A public manifest of 2^levels chunks in well under a kilobyte: cbor-x's packed-value tables
 * (tag 51) nest, and a prefix tag (225) applied to a packed reference (tag 6) concatenates two
 * arrays, so each table doubles the array the next one can name.
 */
function amplifiedManifest(levels: number): Uint8Array {
  const out: number[] = [];
  const table = (value: number[]) => {
    out.push(0xd8, 0x33, 0x84); // tag 51, [values, prefixes, suffixes, rump]
    out.push(0x91, ...new Array(16).fill(0xf6), ...value); // 16 nulls, then packed value 16
    out.push(0x82, 0xf6, 0xc6, 0x00); // prefixes: [null, ref(value 16)]
    out.push(0x80); // suffixes: []
  };
  table([0x81, ...encodeCbor(CHUNK)]);
  for (let k = 0; k < levels; k++) table([0xd8, 0xe1, 0xc6, 0x00]); // prefix 1 ++ ref(value 16)
  const fields = {
    type: "veriflow/manifest",
    v: 1,
    tier: "public",
    size: 2 ** levels,
    chunkSize: 1,
  };
  out.push(0xa6);
  for (const [k, v] of Object.entries(fields)) out.push(...encodeCbor(k), ...encodeCbor(v));
  out.push(...encodeCbor("chunks"), 0xc6, 0x00); // chunks: ref(value 16)
  return new Uint8Array(out);
}

Deno.test("a manifest of a few hundred bytes cannot name a million chunks through cbor-x tags", () => {
  const bytes = amplifiedManifest(20);
  assert.ok(bytes.length < 1024, `${bytes.length} bytes`);
  let chunks = -1;
  try {
    chunks = decodeManifest(bytes).chunks.length;
  } catch (error) {
    assert.ok(error instanceof InvalidManifestError, String(error));
  }
  assert.equal(chunks, -1, `decoded as a manifest of ${chunks} chunks`);
  assert.deepEqual(chunksReferencedBy(bytes), []);
});

Deno.test("readers and GC agree: a manifest wrapped in a CBOR tag is no manifest to either", () => {
  const manifest: PublicManifest = {
    type: "veriflow/manifest",
    v: 1,
    tier: "public",
    size: 2,
    chunkSize: 1,
    chunks: [CHUNK, CHUNK],
  };
  const plain = encodeManifest(manifest);
  assert.equal(isManifest(plain), true);
  assert.deepEqual(chunksReferencedBy(plain), [CHUNK, CHUNK]);
  // Tag 55799 (self-described CBOR) around it: GC sees no map, so no links, and would collect
  // the chunks of a file that the readers still serve.
  const wrapped = new Uint8Array([0xd9, 0xd9, 0xf7, ...plain]);
  assert.deepEqual(chunksReferencedBy(wrapped), []);
  assert.equal(isManifest(wrapped), false, "a reader takes it for a manifest GC does not walk");
});

// --- (2) keepalive on a slow link: partial progress of the transport counts ---

const Payload = defineMessage("test.payload", z.object({ data: z.instanceof(Uint8Array) }));
const Fetch = defineMessage("test.fetch", z.object({ size: z.number().int() }), {
  reply: Payload,
});

async function slowLink(bytesPerWrite: number, writeMs: number) {
  const timers = new ManualTimers();
  const conn = new SlowConn(timers, bytesPerWrite, writeMs);
  const duplex = socketDuplex(conn as unknown as Deno.Conn, { lingerMs: 0 });
  const connection = new Connection(duplex, {
    timers,
    keepaliveMs: 1_000,
    idleTimeoutMs: 5_000,
  });
  connection.handle(Fetch, ({ size }) => ({ data: new Uint8Array(size) }));
  conn.push({ v: 1, type: Fetch.type, id: 1, body: { size: 256 * 1024 } });
  await settle();
  const end = async () => {
    duplex.close();
    await timers.advance(10_000);
    await connection.closed;
  };
  return { timers, conn, connection, end };
}

Deno.test("a peer reading steadily at 32 KiB/s is not cut off while a 256 KiB chunk goes out", async () => {
  // 8 KiB per 250 ms: the chunk takes 8 s, longer than the 5 s idle timeout.
  const { timers, conn, connection, end } = await slowLink(8 * 1024, 250);
  for (let t = 1; t <= 9; t++) {
    await timers.advance(1_000);
    conn.push({ v: 1, type: "ping", id: 100 + t, body: { nonce: t } }); // the peer is alive
    assert.equal(connection.closeReason, null, `cut off at ${t} s: ${connection.closeReason}`);
  }
  assert.ok(conn.written > 256 * 1024, `${conn.written} bytes taken`);
  await end();
});

Deno.test("a peer that stops reading midway through a large chunk is still cut off", async () => {
  const { timers, conn, connection, end } = await slowLink(8 * 1024, 250);
  await timers.advance(2_000); // 64 KiB of the chunk taken
  conn.stall();
  for (let t = 1; t <= 12 && connection.closeReason === null; t++) {
    await timers.advance(1_000);
    conn.push({ v: 1, type: "ping", id: 100 + t, body: { nonce: t } });
  }
  assert.ok(connection.closeReason instanceof PeerTimeoutError, String(connection.closeReason));
  assert.match(connection.closeReason.message, /not read/);
  await end();
});

Deno.test("a peer taking a trickle (16 bytes a second) of a large chunk is still cut off: partial progress counts only in whole KiBs", async () => {
  // Any growth counted, a peer reading a few bytes per ping interval held a 256 KiB write (and
  // its connection) open for good.
  const { timers, conn, connection, end } = await slowLink(16, 1_000);
  for (let t = 1; t <= 12 && connection.closeReason === null; t++) {
    await timers.advance(1_000);
    conn.push({ v: 1, type: "ping", id: 100 + t, body: { nonce: t } });
  }
  assert.ok(connection.closeReason instanceof PeerTimeoutError, String(connection.closeReason));
  assert.ok(conn.written < 1024, `${conn.written} bytes taken`);
  await end();
});
