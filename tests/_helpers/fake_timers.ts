/**
 * Timers a test fires by hand (the `DrainTimers` / `ConnectionTimers` shape, with a clock stuck
 * at 0), and two small waits that go with them.
 *
 * @module
 */

/** Timers that fire only when the test says so. */
export class FakeTimers {
  readonly armed = new Map<number, { callback: () => void; ms: number }>();
  #next = 1;

  now(): number {
    return 0;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const handle = this.#next++;
    this.armed.set(handle, { callback, ms });
    return handle;
  }

  clearTimeout(handle: unknown): void {
    this.armed.delete(handle as number);
  }

  /** Fire every armed timer. */
  fireAll(): void {
    const due = [...this.armed.values()];
    this.armed.clear();
    for (const { callback } of due) callback();
  }

  /** Fire the timers armed for `ms`, and only those (one kind of timer among others). */
  fireFor(ms: number): void {
    for (const [handle, timer] of [...this.armed]) {
      if (timer.ms !== ms) continue;
      this.armed.delete(handle);
      timer.callback();
    }
  }
}

/** Let the event loop turn `n` times (I/O and timers included), so pending work can run. */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Whether `promise` has settled, without waiting for it. */
export function tracker(promise: Promise<unknown>): () => boolean {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  return () => settled;
}
