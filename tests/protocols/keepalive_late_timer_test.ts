/**
 * A keepalive timer that fires late because this node's own event loop was held (tfjs on the main
 * thread, a loaded machine) must not judge the peer before the bytes that arrived meanwhile are
 * read (stop 76, training under load): in Deno a timer that came due during a block runs before
 * the reads that completed during it (measured: a 6 s block, a peer writing every 100 ms, the
 * timer saw 6092 ms of silence; one timer turn later, 6 ms). The idle verdict was "nothing
 * received from the peer for 5000 ms" for a peer that never went quiet, and a trainer dropped
 * so had its challenge answer lost (`opening_missing`, slashed 40000).
 */
import assert from "node:assert/strict";
import { Keepalive, LATE_FIRE_SLACK_MS } from "../../protocols/_connection_keepalive.ts";
import type { ConnectionTimers } from "../../protocols/connection_timers.ts";
import type { PeerTimeoutError } from "../../protocols/protocol_errors.ts";

const KEEPALIVE_MS = 1_500;
const IDLE_TIMEOUT_MS = 5_000;

/** One-shot timers on a clock the test sets; a timer fires only when the test says, at `now`. */
class HeldLoopTimers implements ConnectionTimers {
  at = 0;
  readonly armed = new Map<number, { due: number; callback: () => void }>();
  #next = 1;
  now(): number {
    return this.at;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    const handle = this.#next++;
    this.armed.set(handle, { due: this.at + ms, callback });
    return handle;
  }
  clearTimeout(handle: unknown): void {
    this.armed.delete(handle as number);
  }
  /** The one armed timer's due time. */
  get due(): number {
    assert.equal(this.armed.size, 1, "one timer armed");
    return [...this.armed.values()][0].due;
  }
  /** Fire the one armed timer with the clock at `at` (later than its due time: a held loop). */
  fireAt(at: number): void {
    const [[handle, timer]] = [...this.armed];
    this.armed.delete(handle);
    this.at = at;
    timer.callback();
  }
}

function keepalive(timers: HeldLoopTimers) {
  const timeouts: PeerTimeoutError[] = [];
  let pings = 0;
  const alive = new Keepalive({
    timers,
    keepaliveMs: KEEPALIVE_MS,
    idleTimeoutMs: IDLE_TIMEOUT_MS,
    stalledFor: () => 0,
    ping: () => void pings++,
    onTimeout: (error) => void timeouts.push(error),
  });
  return { alive, timeouts, pings: () => pings };
}

Deno.test("a keepalive timer fired late by a held event loop lets what arrived meanwhile be read before it judges the peer", () => {
  const timers = new HeldLoopTimers();
  const { alive, timeouts } = keepalive(timers);
  // The loop is held from just after 0 to 6000: the ping timer (due at 1500) fires then.
  timers.fireAt(IDLE_TIMEOUT_MS + 1_000);
  assert.equal(timeouts.length, 0, "not judged on a late fire");
  // The peer's pings, read as soon as the loop turns.
  alive.received();
  timers.fireAt(timers.due);
  assert.equal(timeouts.length, 0, "the peer was heard");
  alive.stop();
});

Deno.test("a peer silent through a held loop and after it is still dropped, one short turn later", () => {
  const timers = new HeldLoopTimers();
  const { alive, timeouts } = keepalive(timers);
  timers.fireAt(IDLE_TIMEOUT_MS + 1_000);
  assert.equal(timeouts.length, 0);
  const recheck = timers.due;
  assert.ok(recheck - timers.at <= LATE_FIRE_SLACK_MS, "rechecked within a short turn");
  // Nothing read in that turn, and the recheck fires late too: the peer is gone all the same
  // (one deferral per verdict, so a loop that is always late still drops dead peers).
  timers.fireAt(recheck + 10 * LATE_FIRE_SLACK_MS);
  assert.equal(timeouts.length, 1);
  assert.match(timeouts[0].message, /nothing received from the peer for 5000 ms/);
  alive.stop();
});

Deno.test("an idle timer that fires on time drops a silent peer at once, as before", () => {
  const timers = new HeldLoopTimers();
  const { alive, timeouts, pings } = keepalive(timers);
  // Pings go out on time while the peer says nothing.
  while (timers.due < IDLE_TIMEOUT_MS) timers.fireAt(timers.due);
  assert.ok(pings() >= 3, `pinged ${pings()} times`);
  timers.fireAt(timers.due);
  assert.equal(timeouts.length, 1, "dropped on the on-time idle deadline");
  assert.equal(timers.at, IDLE_TIMEOUT_MS);
  alive.stop();
});
