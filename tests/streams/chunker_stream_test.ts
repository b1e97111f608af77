import assert from "node:assert/strict";
import { ChunkerStream } from "../../streams/chunker_stream.ts";
import { collect, pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";

Deno.test("ChunkerStream emits fixed-size chunks and a short tail, preserving bytes", async () => {
  const input = pseudoRandomBytes(10_000);
  for (const piece of [1, 7, 1000, 4096, 20_000]) {
    const chunks = await Array.fromAsync(
      streamOf(input, piece).pipeThrough(new ChunkerStream({ chunkSize: 4096 })),
    );
    assert.deepEqual(chunks.map((c) => c.length), [4096, 4096, 1808], `piece ${piece}`);
    assert.deepEqual(await collect(ReadableStream.from(chunks)), input);
  }
});

Deno.test("ChunkerStream yields nothing for an empty stream and rejects a bad size", async () => {
  const chunks = await Array.fromAsync(
    ReadableStream.from<Uint8Array>([]).pipeThrough(new ChunkerStream({ chunkSize: 8 })),
  );
  assert.equal(chunks.length, 0);
  assert.throws(() => new ChunkerStream({ chunkSize: 0 }), RangeError);
});
