/**
 * Test fixture: the words of the progress buffer `_heap_hog_worker.ts` writes (kept apart: the
 * test must not import the worker's module, which takes this thread's `onmessage`).
 *
 * @module
 */

/** The rounds of the fill done. */
export const ROUNDS = 0;
/** The hog's JS heap in use after the last round, in MB. */
export const HEAP_MB = 1;
/** 1 once the whole fill fit. */
export const DONE = 2;
/** Bytes of the buffer. */
export const PROGRESS_BYTES = 12;
