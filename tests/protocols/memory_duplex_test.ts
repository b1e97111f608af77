import assert from "node:assert/strict";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";

Deno.test("bytes written on one end come out of the other, both ways", async () => {
  const [a, b] = memoryDuplexPair();
  const aw = a.writable.getWriter();
  const bw = b.writable.getWriter();
  await aw.write(new Uint8Array([1]));
  await bw.write(new Uint8Array([2]));
  assert.deepEqual((await b.readable.getReader().read()).value, new Uint8Array([1]));
  assert.deepEqual((await a.readable.getReader().read()).value, new Uint8Array([2]));
});

Deno.test("a writer sees backpressure once highWaterMarkBytes are unread", async () => {
  const [a, b] = memoryDuplexPair({ highWaterMarkBytes: 1024 });
  const writer = a.writable.getWriter();
  let accepted = 0;
  for (let i = 0; i < 100; i++) {
    if (writer.desiredSize !== null && writer.desiredSize <= 0) break;
    writer.write(new Uint8Array(100));
    accepted += 100;
    await Promise.resolve();
  }
  assert.ok(accepted <= 1024 + 200, `accepted ${accepted} bytes without a reader`);
  assert.ok((writer.desiredSize ?? 1) <= 0);
  // Reading drains the queue and releases the writer.
  const reader = b.readable.getReader();
  for (let got = 0; got < accepted;) got += (await reader.read()).value!.byteLength;
  await writer.ready;
});

Deno.test("closing one end's writable ends the other end's readable", async () => {
  const [a, b] = memoryDuplexPair();
  await a.writable.close();
  assert.equal((await b.readable.getReader().read()).done, true);
});
