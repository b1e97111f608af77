/**
 * The tensor engine of training: `@tensorflow/tfjs` (the union package, which registers the
 * gradients) on its wasm backend, falling back to the pure-JS cpu backend.
 *
 * Measured here (see `docs/TRAINING.md`): wasm (SIMD, one thread) runs the model's matmuls
 * several times faster than the cpu backend. The wasm binaries are loaded from
 * `node_modules`, since nothing can be fetched at run time.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";

/** The tfjs backends training may run on. */
export type TrainingBackend = "wasm" | "cpu";

const WASM_DIR = new URL("../node_modules/@tensorflow/tfjs-backend-wasm/dist/", import.meta.url);

let wasmPathsSet = false;

/**
 * Make `backend` the active tfjs backend (once initialised it stays registered). Returns the
 * backend actually in use: `cpu` when wasm cannot start.
 */
export async function useTrainingBackend(
  backend: TrainingBackend = "wasm",
): Promise<TrainingBackend> {
  if (backend === "wasm") {
    if (!wasmPathsSet) {
      // tfjs wants a path prefix (string) ending in "/"; a file URL string works in Deno.
      setWasmPaths(WASM_DIR.pathname);
      wasmPathsSet = true;
    }
    try {
      if (await tf.setBackend("wasm")) {
        await tf.ready();
        return "wasm";
      }
    } catch {
      // fall through to cpu
    }
  }
  await tf.setBackend("cpu");
  await tf.ready();
  return "cpu";
}

export { tf };
