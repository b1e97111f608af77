/**
 * A clock for the backoff tests: `setTimeout` (and `performance.now`) stand still until the test
 * fires the next timer, so a restart's delay is read, not waited for.
 */
import assert from "node:assert/strict";

export const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;

/** Event-loop turns a step may take before the test calls it stuck (a liveness guard). */
const MAX_TURNS = 1_000;

/** A clock stuck until the test moves it; `setTimeout`s wait for {@link FakeClock.fireNext}. */
export class FakeClock {
  now = 1_000_000;
  readonly #timers = new Map<number, { due: number; callback: () => void }>();
  #next = 1;

  get pending(): number {
    return this.#timers.size;
  }

  /** Moves the clock to the earliest timer, fires it, and returns the wait it stood for. */
  fireNext(): number {
    let first: [number, { due: number; callback: () => void }] | undefined;
    for (const entry of this.#timers) {
      if (first === undefined || entry[1].due < first[1].due) first = entry;
    }
    assert.ok(first !== undefined, "no timer to fire");
    const [handle, { due, callback }] = first;
    this.#timers.delete(handle);
    const waited = due - this.now;
    this.now = Math.max(this.now, due);
    callback();
    return waited;
  }

  install(): () => void {
    // deno-lint-ignore no-explicit-any
    const g = globalThis as any;
    g.setTimeout = (callback: () => void, ms = 0) => {
      const handle = this.#next++;
      this.#timers.set(handle, { due: this.now + ms, callback });
      return handle;
    };
    g.clearTimeout = (handle: number) => void this.#timers.delete(handle);
    Object.defineProperty(performance, "now", { value: () => this.now, configurable: true });
    return () => {
      g.setTimeout = realSetTimeout;
      g.clearTimeout = realClearTimeout;
      delete (performance as { now?: unknown }).now;
    };
  }
}

/** Lets real event-loop turns pass until `done()`; fails after {@link MAX_TURNS}. */
export async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < MAX_TURNS; i++) {
    if (done()) return;
    await new Promise((resolve) => realSetTimeout(resolve, 0));
  }
  assert.fail(`stuck waiting for ${what}`);
}
