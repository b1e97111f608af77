/**
 * Review of stop 39's changes (`git diff 666fccb..eb3eb97`): regressions found, each pinned by a
 * test that failed on that code.
 */
import assert from "node:assert/strict";
import { socketDuplex } from "../protocols/socket_duplex.ts";

/**
 * A socket stand-in: each read gets the next of `chunks` (then EOF) and records the buffer it
 * was offered.
 */
function fakeConn(chunks: Uint8Array[]) {
  const offered: Uint8Array[] = [];
  const conn = {
    read(into: Uint8Array): Promise<number | null> {
      offered.push(into);
      const next = chunks.shift();
      if (next === undefined) return Promise.resolve(null);
      into.set(next);
      return Promise.resolve(next.byteLength);
    },
    write: (bytes: Uint8Array) => Promise.resolve(bytes.byteLength),
    closeWrite: () => Promise.resolve(),
    close() {},
    localAddr: { transport: "unix", path: "" },
  };
  return { conn: conn as unknown as Deno.Conn, offered };
}

Deno.test("socket duplex: once a BYOB reader reads it, the buffer of the default reads before (the handshake's) is let go: one read buffer per connection", async () => {
  const readBufferBytes = 256 * 1024; // the swarm link's
  const { conn, offered } = fakeConn([
    new Uint8Array([1]),
    new Uint8Array([2]),
    new Uint8Array([3]),
  ]);
  const duplex = socketDuplex(conn, { readBufferBytes, lingerMs: 0 });
  // The handshake reads with a default reader, then a Connection takes a BYOB one.
  const handshake = duplex.readable.getReader();
  assert.deepEqual((await handshake.read()).value, new Uint8Array([1]));
  handshake.releaseLock();
  const byob = duplex.readable.getReader({ mode: "byob" });
  const { value } = await byob.read(new Uint8Array(64 * 1024));
  assert.equal(value?.[0], 2);
  byob.releaseLock();
  // A default read now (or the drain) needs a buffer again: a new one, since the first was
  // not kept alive through the BYOB reads.
  const later = duplex.readable.getReader();
  assert.deepEqual((await later.read()).value, new Uint8Array([3]));
  assert.equal(offered.length, 3);
  assert.equal(offered[0].byteLength, readBufferBytes);
  assert.notEqual(offered[2].buffer, offered[0].buffer, "the scratch buffer was kept");
  await later.cancel();
  duplex.close?.();
});
