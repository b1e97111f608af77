/**
 * The framing streams as a pipeline stage: a slow reader holds the writer back, cancelling
 * either end reaches the other, and a stream cut inside a prefix or a payload ends with
 * `truncated_frame` naming what was missing.
 */
import assert from "node:assert/strict";
import { encodeFrame, LengthPrefixedDecoderStream } from "../../streams/length_prefixed_stream.ts";
import { TruncatedFrameError } from "../../protocols/protocol_errors.ts";
import { delay } from "../_helpers/wait.ts";

Deno.test("a decoder whose reader reads nothing makes its writer wait after a frame or two, not buffer what it is given", async () => {
  const decoder = new LengthPrefixedDecoderStream();
  const writer = decoder.writable.getWriter();
  let accepted = 0;
  for (let i = 0; i < 100; i++) {
    void writer.write(encodeFrame(new Uint8Array(1000), 1 << 20)).then(() => accepted++, () => {});
  }
  await delay(0);
  assert.ok(accepted <= 2, `${accepted} writes accepted with nobody reading`);
  assert.ok((writer.desiredSize ?? 0) <= 0, "the writer is told to wait");
  // Reading lets the writes through, in order.
  const reader = decoder.readable.getReader();
  for (let i = 0; i < 100; i++) assert.equal((await reader.read()).value?.byteLength, 1000);
  await writer.close();
  assert.equal((await reader.read()).done, true);
});

Deno.test("cancelling the frames cancels the byte source; aborting the bytes errors the frames", async () => {
  let cancelled: unknown = undefined;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(encodeFrame(new Uint8Array([1]), 1 << 20));
    },
    cancel(reason) {
      cancelled = reason;
    },
  });
  const frames = source.pipeThrough(new LengthPrefixedDecoderStream()).getReader();
  await frames.read();
  const reason = new Error("connection closed");
  await frames.cancel(reason);
  assert.equal(cancelled, reason);

  const decoder = new LengthPrefixedDecoderStream();
  const writer = decoder.writable.getWriter();
  const reader = decoder.readable.getReader();
  const failure = new Error("socket reset");
  await writer.abort(failure);
  await assert.rejects(reader.read(), (e) => e === failure);
});

Deno.test("a stream cut inside the prefix or the payload ends with truncated_frame naming the bytes missing", async () => {
  const wire = encodeFrame(new Uint8Array(10), 1 << 20); // 4 + 10 bytes
  for (const [cut, missing] of [[1, 3], [3, 1], [4, 10], [9, 5], [13, 1]]) {
    const pieces = Array.from({ length: cut }, (_, i) => wire.slice(i, i + 1));
    await assert.rejects(
      Array.fromAsync(ReadableStream.from(pieces).pipeThrough(new LengthPrefixedDecoderStream())),
      (e: unknown) =>
        e instanceof TruncatedFrameError && e.code === "truncated_frame" &&
        e.message.includes(` ${missing} bytes short`),
      `cut after ${cut} bytes`,
    );
  }
});
