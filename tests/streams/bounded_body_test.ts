/**
 * `readBoundedBody` (`streams/bounded_body.ts`): an HTTP body read whole up to a limit on bytes.
 */
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { readBoundedBody } from "../../streams/bounded_body.ts";
import { delay } from "../_helpers/wait.ts";

// ---- a sender that cuts its body into tiny pieces -----------------------------------------------
//
// `readBoundedBody` against a sender that cuts its body into tiny pieces. Deno hands each read of
// an HTTP body (a request's, or a `fetch` response's) over as a view of a fresh 64 KiB buffer
// however few bytes came: a body sent in one-byte HTTP chunks arrives as one-byte views of 64 KiB
// buffers. The limit is on bytes, so what the reader holds must be about the bytes that arrived,
// not 64 KiB for each of them.

/** What Deno hands over per body read: a view of a fresh buffer of this size. */
const READ_BUFFER_BYTES = 64 * 1024;

/**
 * A body that delivers `bytes` one byte per read, each a view of its own
 * {@link READ_BUFFER_BYTES} buffer, then stalls (a sender that stops mid-body) until
 * `finish` is called. `stalled` resolves once every byte was read and the next read waits.
 */
function oneByteReads(bytes: Uint8Array) {
  const buffers: WeakRef<ArrayBuffer>[] = [];
  let at = 0;
  let finish = () => {};
  let stalledNow = () => {};
  const stalled = new Promise<void>((resolve) => stalledNow = resolve);
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at < bytes.byteLength) {
        const read = new Uint8Array(new ArrayBuffer(READ_BUFFER_BYTES), 0, 1);
        read[0] = bytes[at++];
        buffers.push(new WeakRef(read.buffer));
        controller.enqueue(read);
        return;
      }
      stalledNow();
      return new Promise<void>((resolve) => {
        finish = () => {
          controller.close();
          resolve();
        };
      });
    },
  }, { highWaterMark: 0 });
  return { body, buffers, stalled, finish: () => finish() };
}

Deno.test("a body read a byte at a time does not keep alive the 64 KiB buffer each byte came in", async () => {
  // Node's trick, supported by Deno: V8's gc() at run time, without a command-line flag.
  v8.setFlagsFromString("--expose-gc");
  const forceGc = vm.runInNewContext("gc") as () => void;
  const sent = crypto.getRandomValues(new Uint8Array(256));
  const source = oneByteReads(sent);
  const reading = readBoundedBody(
    { headers: new Headers(), body: source.body },
    1 << 20,
    (size) => new Error(`too large: ${size}`),
  );
  await source.stalled; // every byte read, the sender silent: what is held now stays held
  await delay(0); // a WeakRef keeps its target alive until the current job ends
  forceGc();
  const pinned = source.buffers.filter((b) => b.deref() !== undefined).length;
  source.finish();
  const got = await reading;
  // 256 bytes arrived; keeping each read as it came held 256 × 64 KiB = 16 MiB for them (at
  // the node's default 1 MiB request limit, 64 GiB for a body a client sends in 6 MB).
  assert.ok(pinned <= 1, `${pinned} read buffers of ${READ_BUFFER_BYTES} bytes kept alive`);
  assert.deepEqual(got, sent);
});

Deno.test("a request body sent in one-byte HTTP chunks to a local server is held as its bytes, not as its reads", async () => {
  v8.setFlagsFromString("--expose-gc");
  const forceGc = vm.runInNewContext("gc") as () => void;
  const count = 64;
  const buffers: WeakRef<ArrayBufferLike>[] = [];
  let allArrived = () => {};
  const arrived = new Promise<void>((resolve) => allArrived = resolve);
  const controller = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: controller.signal, onListen() {} },
    async (request) => {
      // The very chunks Deno reads, passed on as they are, each noted by its buffer.
      const spy = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, out) {
          buffers.push(new WeakRef(chunk.buffer));
          out.enqueue(chunk);
          if (buffers.length === count) allArrived();
        },
      });
      const bytes = await readBoundedBody(
        { headers: request.headers, body: request.body!.pipeThrough(spy) },
        1 << 20,
        (size) => new Error(`too large: ${size}`),
      );
      return new Response(String(bytes.byteLength));
    },
  );
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  try {
    const ascii = new TextEncoder();
    await conn.write(
      ascii.encode("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
    );
    await conn.write(ascii.encode("1\r\nx\r\n".repeat(count)));
    await arrived; // the client stalls here, mid-body
    await delay(0);
    forceGc();
    const readSizes = buffers.map((b) => b.deref()?.byteLength ?? 0);
    const pinned = readSizes.filter((n) => n >= 1024).length;
    await conn.write(ascii.encode("0\r\n\r\n"));
    const reply = new Uint8Array(1024);
    const n = await conn.read(reply);
    const text = new TextDecoder().decode(reply.subarray(0, n ?? 0));
    assert.match(text, new RegExp(`\\r\\n\\r\\n${count}$`));
    assert.ok(pinned <= 1, `${pinned} of ${count} one-byte reads keep a buffer of ≥ 1 KiB alive`);
  } finally {
    conn.close();
    controller.abort();
    await server.finished;
  }
});

Deno.test("a bounded body comes back whole and exact for any cut of its reads, up to and including the limit", async () => {
  const limit = 10_000;
  const sent = crypto.getRandomValues(new Uint8Array(limit));
  for (const piece of [1, 7, 4095, 4096, 4097, limit]) {
    const pieces: Uint8Array[] = [];
    for (let at = 0; at < sent.byteLength; at += piece) pieces.push(sent.slice(at, at + piece));
    const got = await readBoundedBody(
      { headers: new Headers(), body: ReadableStream.from(pieces) },
      limit,
      (size) => new Error(`too large: ${size}`),
    );
    assert.deepEqual(got, sent, `pieces of ${piece}`);
    assert.equal(got.buffer.byteLength, sent.byteLength, `pieces of ${piece}: no slack kept`);
    await assert.rejects(
      readBoundedBody(
        { headers: new Headers(), body: ReadableStream.from([...pieces, new Uint8Array(1)]) },
        limit,
        (size) => new RangeError(`too large: ${size}`),
      ),
      (e: unknown) => e instanceof RangeError && e.message === `too large: ${limit + 1}`,
      `pieces of ${piece}: one byte over`,
    );
  }
});
