/**
 * Watch the delays code asks `setTimeout` for, so a test can pin a timeout's value without
 * waiting for it to run out.
 *
 * @module
 */

/**
 * Record the delay of every `setTimeout` call until `restore` (the timers still run); `restore`
 * puts the real `setTimeout` back and returns the delays.
 */
export function recordTimeouts(): { delays: unknown[]; restore(): unknown[] } {
  const real = globalThis.setTimeout;
  const delays: unknown[] = [];
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    delays.push(args[1]);
    return real(...args);
  }) as typeof setTimeout;
  return {
    delays,
    restore() {
      globalThis.setTimeout = real;
      return delays;
    },
  };
}
