/**
 * Test fixture: a stand-in for `_step_rerun_worker.ts` — the real worker (imported: it answers as
 * it does) wrapped the way its worker `name` (`MODE@RERUNS`) says:
 * - `slow`: each re-run first holds this thread, blocked, on the gate the test posts first
 *   (`{ gate: SharedArrayBuffer }`: this worker sets word 0 once it holds, and waits until the
 *   test sets word 1): a re-run as long as the test wants, and a thread as busy as tfjs keeps it.
 * - `throw@N`: re-runs N steps, then throws from a timer at the next (an uncaught error, as a
 *   tfjs async callback might).
 * - `exit@N`: re-runs N steps, then ends with `Deno.exit` at the next (no event reaches the
 *   main thread).
 * - `unseal-throw`: throws from a timer at the first answer it is asked to unseal (an uncaught
 *   error), and runs everything else as the real worker does.
 *
 * In the other modes an answer to open (`op: "open"` or `"unseal"`) goes to the real worker
 * untouched and is not counted among the N: the modes are about the steps' re-runs.
 *
 * @module
 */
import "../../training/_step_rerun_worker.ts";

/** Word of the gate this worker sets while it holds a re-run. */
const HOLDING = 0;
/** Word of the gate the test sets to let the re-runs go. */
const RELEASED = 1;

const port = globalThis as unknown as {
  name: string;
  onmessage: ((event: MessageEvent) => void) | null;
};
const real = port.onmessage!;
const [mode, reruns] = port.name.split("@");
let left = Number(reruns ?? 0);
let gate: Int32Array | undefined;
let broken = false;

port.onmessage = (event) => {
  if (event.data?.gate instanceof SharedArrayBuffer) {
    gate = new Int32Array(event.data.gate);
    return;
  }
  // An answer to open (`op: "open"`, or `"unseal"` alone): unsealing, not a step's re-run.
  if (event.data?.op !== undefined) {
    if (mode !== "unseal-throw" || broken) return real(event);
    broken = true;
    setTimeout(() => {
      throw new Error("the worker broke while it unsealed");
    }, 0);
    return;
  }
  if (mode === "unseal-throw") return real(event);
  if (mode === "slow") {
    Atomics.store(gate!, HOLDING, 1);
    Atomics.wait(gate!, RELEASED, 0);
    return real(event);
  }
  if (left-- > 0) return real(event);
  if (broken) return; // dead already: what else was sent goes unanswered
  broken = true;
  if (mode === "exit") Deno.exit(1);
  setTimeout(() => {
    throw new Error("the step re-run worker broke");
  }, 0);
};
