/**
 * `ChunkerStream` (`streams/chunker_stream.ts`): a byte stream cut into chunks of one size.
 */
import assert from "node:assert/strict";
import { ChunkerStream } from "../../streams/chunker_stream.ts";
import { joinBytes } from "../_helpers/bytes.ts";
import { collect, pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";

// ---- chunks of one size -------------------------------------------------------------------------

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

// ---- edges --------------------------------------------------------------------------------------
//
// `ChunkerStream` edges: a source that hands over a large piece at once (a model put with
// `put_bytes`, which streams one `Uint8Array`), exact multiples of the chunk size, pieces that
// straddle chunk boundaries, and a source that fails.

function payloadOf(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 131 + seed) & 0xff);
}

/** Heap and ArrayBuffer bytes in use now. */
function inUse(): number {
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
}

Deno.test("a piece of many chunks is not copied into the chunker's queue ahead of its reader", async () => {
  const chunkSize = 256 * 1024;
  const piece = new Uint8Array(64 * 1024 * 1024).fill(7);
  const before = inUse();
  const reader = ReadableStream.from([piece]).pipeThrough(new ChunkerStream({ chunkSize }))
    .getReader();
  const first = await reader.read();
  const grown = inUse() - before;
  // The reader took one chunk and asks for no more (a file put with 16 chunks in flight): the
  // chunker must not hold a copy of the rest. Copying made it hold another 64 MiB at once.
  assert.ok(grown < 16 * 1024 * 1024, `holds ${(grown / 2 ** 20).toFixed(1)} MiB more`);
  assert.equal(first.value?.byteLength, chunkSize);
  let total = first.value!.byteLength;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    assert.equal(value.byteLength, chunkSize);
    assert.equal(value[0], 7);
    total += value.byteLength;
  }
  assert.equal(total, piece.byteLength);
});

Deno.test("the chunker cuts the same chunks whatever the pieces: exact multiples, straddles, empties", async () => {
  const chunkSize = 1000;
  for (const size of [0, 1, 999, 1000, 1001, 3000, 3001]) {
    const input = payloadOf(size, size);
    const expected: Uint8Array[] = [];
    for (let at = 0; at < size; at += chunkSize) expected.push(input.slice(at, at + chunkSize));
    for (const cuts of [[], [1], [999], [1000], [1000, 2000], [500, 1500, 2500], [1, 2, 2999]]) {
      const pieces: Uint8Array[] = [];
      let from = 0;
      for (const to of [...cuts.filter((c) => c < size), size]) {
        pieces.push(input.slice(from, to), new Uint8Array(0));
        from = to;
      }
      const out = await Array.fromAsync(
        ReadableStream.from(pieces).pipeThrough(new ChunkerStream({ chunkSize })),
      );
      assert.deepEqual(out, expected, `size ${size}, cuts ${cuts}`);
      assert.deepEqual(joinBytes(out), input);
    }
  }
});

Deno.test("a source that fails mid-chunk fails the chunked stream with its error, nothing short emitted", async () => {
  const failure = new Error("disk read failed");
  const source = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(payloadOf(1500, 1));
    },
    pull(controller) {
      controller.error(failure);
    },
  });
  const reader = source.pipeThrough(new ChunkerStream({ chunkSize: 1000 })).getReader();
  assert.equal((await reader.read()).value?.byteLength, 1000);
  await assert.rejects(reader.read(), (e) => e === failure);
});

Deno.test("cancelling the chunked stream cancels its source with the reason", async () => {
  let cancelled: unknown = undefined;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(new Uint8Array(600));
    },
    cancel(reason) {
      cancelled = reason;
    },
  });
  const reader = source.pipeThrough(new ChunkerStream({ chunkSize: 1000 })).getReader();
  await reader.read();
  const reason = new Error("put aborted");
  await reader.cancel(reason);
  assert.equal(cancelled, reason);
});
