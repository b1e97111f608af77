/**
 * Test fixture: the real step re-run worker (`training/_step_rerun_worker.ts`, imported: it answers
 * as it does), whose tfjs-wasm engine runs out of wasm memory once, just before its first re-run,
 * when its worker `name` is `abort`: as under memory pressure, or a step larger than the wasm heap.
 * The engine then answers `Aborted()` (or "memory access out of bounds") to every later call, for
 * good (review s77 vtrain F2). Any other name: the real worker, untouched.
 *
 * @module
 */
import "../../training/_step_rerun_worker.ts";
import { tf, useTrainingBackend } from "../../training/tf_backend.ts";

/**
 * Floats per tensor filled to exhaust the wasm heap: 2^29 (2 GiB each), so the second does not
 * fit the 4 GiB a wasm32 heap can reach. Measured: the engine aborted after 2 fills, 2.2 GB RSS,
 * 2.4 s (`tmp/s77/trainfix2/abort_probe.ts`); 1 GiB tensors took 4 fills and 3.2 GB.
 */
const EXHAUSTING_FLOATS = 2 ** 29;
/** Tensors tried: more than the heap holds, so the fill fails before the loop ends. */
const EXHAUSTING_TENSORS = 3;

const port = globalThis as unknown as {
  name: string;
  onmessage: ((event: MessageEvent) => void) | null;
};
const real = port.onmessage!;
let poison = port.name === "abort";

port.onmessage = async (event) => {
  if (poison) {
    poison = false;
    await useTrainingBackend("wasm");
    const filled: tf.Tensor[] = [];
    try {
      for (let i = 0; i < EXHAUSTING_TENSORS; i++) filled.push(tf.fill([EXHAUSTING_FLOATS], 1));
    } catch { /* the wasm heap is exhausted: the engine has aborted */ }
    for (const t of filled) {
      try {
        t.dispose();
      } catch { /* aborted engines throw on dispose too */ }
    }
  }
  real(event);
};
