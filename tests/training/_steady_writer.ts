/**
 * Test fixture, run as a worker: a peer that writes to a TCP port without a pause, on a thread of
 * its own, so that bytes wait in the socket whenever the test's thread is busy. Its name is the
 * port; it stops when the other end closes.
 *
 * @module
 */
const port = Number((globalThis as unknown as { name: string }).name);
const conn = await Deno.connect({ hostname: "127.0.0.1", port });
const byte = new Uint8Array([1]);
try {
  for (;;) await conn.write(byte);
} catch {
  // The test closed its end: done.
}
