/**
 * LogLimiter (`network/log_limiter.ts`): each kind writes a few lines per window, the rest are
 * counted and summarized with the last of them; kinds are independent; flush summarizes.
 */
import assert from "node:assert/strict";
import { LogLimiter } from "../../network/log_limiter.ts";

Deno.test("LogLimiter writes a burst per kind and window, then counts, and says how many it left out", () => {
  const lines: string[] = [];
  let t = 0;
  const limiter = new LogLimiter((line) => lines.push(line), {
    burst: 2,
    windowMs: 10_000,
    now: () => t,
  });
  for (let i = 0; i < 1_000; i++) limiter.line("handshake failed", `peer ${i}: handshake failed`);
  limiter.line("hello refused", "peer x: hello refused");
  assert.deepEqual(lines, [
    "peer 0: handshake failed",
    "peer 1: handshake failed",
    "peer x: hello refused",
  ]);
  t = 9_999;
  limiter.line("handshake failed", "peer late: handshake failed");
  assert.equal(lines.length, 3, "still the same window");
  t = 10_000;
  limiter.line("handshake failed", "peer next: handshake failed");
  assert.deepEqual(lines.slice(3), [
    "handshake failed: 999 more line(s) left out in 10 s (last: peer late: handshake failed)",
    "peer next: handshake failed",
  ]);
  limiter.line("handshake failed", "a");
  limiter.line("handshake failed", "b");
  t = 12_500;
  limiter.flush();
  assert.deepEqual(lines.slice(5), [
    "a",
    "handshake failed: 1 more line(s) left out in 3 s (last: b)",
  ]);
  limiter.flush();
  assert.equal(lines.length, 7, "nothing more to say");
});
