/**
 * Test fixture: the real step re-run worker (`training/_step_rerun_worker.ts`, imported: it
 * unseals as it does) that, asked to re-run a step, fills its JS heap with small objects instead:
 * a re-run that runs out of JS heap (review s77 vtrain F3). Start it with a heap limit
 * (`startHeapLimitedWorker`), or it takes the whole process down (exit 133).
 *
 * Its progress goes to the `{ progress: SharedArrayBuffer }` the test posts first: word
 * {@link ROUNDS} the rounds of the fill done, {@link HEAP_MB} its JS heap in use (MB) after the
 * last, {@link DONE} 1 once the whole fill ({@link FILL_ROUNDS}) fit.
 *
 * @module
 */
import "../../training/_step_rerun_worker.ts";
import { DONE, HEAP_MB, ROUNDS } from "./_heap_hog_progress.ts";
/** Objects added per round: a few MB of heap each. */
const OBJECTS_PER_ROUND = 100_000;
/** Rounds of the whole fill: well over a GiB, far past the test's limit. */
const FILL_ROUNDS = 300;

const port = globalThis as unknown as { onmessage: ((event: MessageEvent) => void) | null };
const real = port.onmessage!;
let progress: Int32Array | undefined;

port.onmessage = (event) => {
  if (event.data?.progress instanceof SharedArrayBuffer) {
    progress = new Int32Array(event.data.progress);
    return;
  }
  if (event.data?.op !== undefined) return real(event); // an answer to open or unseal
  const kept: { i: number; s: string }[][] = [];
  for (let r = 0; r < FILL_ROUNDS; r++) {
    const round = [];
    for (let i = 0; i < OBJECTS_PER_ROUND; i++) round.push({ i, s: `object ${i}` });
    kept.push(round);
    Atomics.store(progress!, HEAP_MB, Math.round(Deno.memoryUsage().heapUsed / 2 ** 20));
    Atomics.add(progress!, ROUNDS, 1);
  }
  Atomics.store(progress!, DONE, 1);
};
