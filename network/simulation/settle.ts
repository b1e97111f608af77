/**
 * Waiting for a simulated network to go quiet: the end of a flood has no single event (the
 * last duplicate copy of a verdict arrives somewhere, is found known, and is dropped).
 * {@link settle} waits until nothing is on the wire — every frame sent received, every request
 * answered — and nothing new was sent for several polls in a row. That is not enough when work
 * queues in mailboxes (a thousand ledgers each writing its peers' pledges), so {@link quiesce}
 * also drains the actors: an `ask` to each is answered only after everything queued before it,
 * and the network is quiet when a drain and a settle in a row see no new frame.
 *
 * @module
 */
import { type TrafficMeter, wireIdle } from "./traffic_meter.ts";

/** Between two looks at the wire. */
const SETTLE_POLL_MS = 20;
/**
 * Quiet polls in a row that count as settled: long enough that a message sitting in a mailbox
 * or behind a ledger write (each well under a millisecond on the simulation's RAM disk) has
 * gone out, short enough not to dominate a run.
 */
const SETTLE_QUIET_POLLS = 5;

/**
 * Resolves once `meter` has seen no traffic and nothing in flight for several polls, or as soon
 * as `signal` aborts (a caller that learned of the end otherwise).
 */
export async function settle(meter: TrafficMeter, signal?: AbortSignal): Promise<void> {
  let last = meter.snapshot();
  let quiet = 0;
  while (quiet < SETTLE_QUIET_POLLS && !signal?.aborted) {
    await pause(SETTLE_POLL_MS, signal);
    const now = meter.snapshot();
    const unchanged = now.framesSent === last.framesSent && now.bytes === last.bytes;
    quiet = unchanged && wireIdle(now) ? quiet + 1 : 0;
    last = now;
  }
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Resolves once the wire is settled and draining every mailbox (`drain`) caused no new traffic;
 * or as soon as `signal` aborts.
 */
export async function quiesce(
  meter: TrafficMeter,
  drain: () => Promise<unknown>,
  signal?: AbortSignal,
): Promise<void> {
  while (!signal?.aborted) {
    await settle(meter, signal);
    const before = meter.snapshot();
    await drain();
    await settle(meter, signal);
    const after = meter.snapshot();
    if (after.framesSent === before.framesSent && after.bytes === before.bytes) return;
  }
}
