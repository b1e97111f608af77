/**
 * A thread that hangs as one stuck in a graph that never ends would: it answers nothing again.
 *
 * @module
 */

/**
 * Block the calling thread for ever, without using a core. Not a busy loop: Deno's
 * `Worker.terminate()` does not stop a worker spinning in JavaScript (measured with Deno 2.9.6:
 * the thread kept a core busy after it, for as long as the process lived), so a test's spinning
 * "hung" worker slowed every test module after it in the same `deno test` process — three of
 * them, about threefold on two cores.
 */
export function hangForever(): never {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  throw new Error("unreachable: Atomics.wait on a value nobody changes returned");
}
