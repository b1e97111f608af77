/**
 * LogLimiter (`network/log_limiter.ts`): each kind writes a few lines per window, the rest are
 * counted and their count written when the window ends, with the last of them; kinds are
 * independent; flush writes what is pending and stops the timers.
 */
import assert from "node:assert/strict";
import { LogLimiter } from "../../network/log_limiter.ts";
import { ManualTimers } from "../protocols/_helpers.ts";

Deno.test("LogLimiter writes a burst per kind and window, counts the rest, and writes the count when the window ends", async () => {
  const lines: string[] = [];
  const timers = new ManualTimers();
  const limiter = new LogLimiter((line) => lines.push(line), {
    burst: 2,
    windowMs: 10_000,
    now: () => timers.now(),
    timers,
  });
  for (let i = 0; i < 1_000; i++) limiter.line("handshake failed", `peer ${i}: handshake failed`);
  limiter.line("hello refused", "peer x: hello refused");
  assert.deepEqual(lines, [
    "peer 0: handshake failed",
    "peer 1: handshake failed",
    "peer x: hello refused",
  ]);
  assert.equal(timers.pending, 1, "one timer, for the kind that left lines out");
  await timers.advance(9_999);
  limiter.line("handshake failed", "peer late: handshake failed");
  assert.equal(lines.length, 3, "still the same window");
  await timers.advance(1); // the window ends: its count, with no further line needed
  assert.deepEqual(lines.slice(3), [
    "handshake failed: 999 more line(s) left out in 10 s (last: peer late: handshake failed)",
  ]);
  assert.equal(timers.pending, 0);
  limiter.line("handshake failed", "peer next: handshake failed");
  assert.equal(lines.at(-1), "peer next: handshake failed", "a new window");
  limiter.line("handshake failed", "a");
  limiter.line("handshake failed", "b");
  await timers.advance(2_500);
  limiter.flush(); // a node stopping: what is pending, now
  assert.deepEqual(lines.slice(5), [
    "a",
    "handshake failed: 1 more line(s) left out in 3 s (last: b)",
  ]);
  assert.equal(timers.pending, 0, "no timer left armed");
  limiter.flush();
  assert.equal(lines.length, 7, "nothing more to say");
});

Deno.test("LogLimiter forgets kinds whose window has ended: one kind per peer key does not grow it without end", async () => {
  const lines: string[] = [];
  const timers = new ManualTimers();
  const limiter = new LogLimiter((line) => lines.push(line), {
    windowMs: 10_000,
    now: () => timers.now(),
    timers,
  });
  // Keys are free: a kind per failing peer (`storage: peer <key>`), each one line and gone.
  for (let i = 0; i < 5_000; i++) limiter.line(`peer ${i}`, `peer ${i}: failed`);
  assert.equal(limiter.kinds, 5_000, "all inside their window");
  await timers.advance(10_000);
  limiter.line("peer next", "peer next: failed");
  assert.equal(limiter.kinds, 1, "the ended windows are gone, their lines all written");
  assert.equal(lines.length, 5_001);
  // A kind that left lines out still has its count written when its window ends.
  for (let i = 0; i < 7; i++) limiter.line("peer busy", `peer busy: failed ${i}`);
  await timers.advance(10_000);
  assert.equal(
    lines.at(-1),
    "peer busy: 2 more line(s) left out in 10 s (last: peer busy: failed 6)",
  );
  assert.equal(limiter.kinds, 1, "'peer next' stays until a later line sweeps it");
});
