/**
 * KeyDials (`network/dial_by_key.ts`): each key dialled once until its deadline, a later reach
 * extending it, undialled when it passes; at most MAX_DIALS keys at once; stop undials all.
 * On a fake clock.
 */
import assert from "node:assert/strict";
import { KeyDials, MAX_DIALS } from "../../network/dial_by_key.ts";
import { ManualTimers } from "../protocols/_helpers.ts";

function keyOf(n: number): Uint8Array {
  return new Uint8Array(32).fill(n);
}

function recorder() {
  const log: string[] = [];
  return {
    log,
    dialer: {
      dial: (key: Uint8Array) => log.push(`dial ${key[0]}`),
      undial: (key: Uint8Array) => log.push(`undial ${key[0]}`),
    },
  };
}

Deno.test("KeyDials: a key is dialled until its deadline, again at each reach; a later reach extends it, a shorter one does not", async () => {
  const timers = new ManualTimers();
  const { log, dialer } = recorder();
  const dials = new KeyDials(dialer, timers);
  assert.equal(dials.reach(keyOf(1), 1_000), true);
  assert.equal(dials.has(keyOf(1)), true);
  assert.equal(dials.reach(keyOf(1), 500), true, "already dialled: dialled again");
  assert.deepEqual(log, ["dial 1", "dial 1"]);
  await timers.advance(900);
  assert.equal(dials.reach(keyOf(1), 1_000), true); // now until 1,900
  await timers.advance(500); // 1,400: past the first deadline, inside the extended one
  assert.deepEqual(log, ["dial 1", "dial 1", "dial 1"]);
  assert.equal(dials.size, 1);
  await timers.advance(500); // 1,900
  assert.deepEqual(log, ["dial 1", "dial 1", "dial 1", "undial 1"]);
  assert.equal(dials.size, 0);
  assert.equal(dials.has(keyOf(1)), false);
  // Dialled again once it ended.
  dials.reach(keyOf(1), 100);
  assert.deepEqual(log.slice(4), ["dial 1"]);
});

Deno.test("KeyDials: at most MAX_DIALS keys at once; a slot frees when a dial ends; stop undials every key", async () => {
  const timers = new ManualTimers();
  const { log, dialer } = recorder();
  const dials = new KeyDials(dialer, timers);
  for (let i = 0; i < MAX_DIALS; i++) assert.equal(dials.reach(keyOf(i), 1_000 + i), true);
  assert.equal(dials.reach(keyOf(200), 1_000), false, "over the bound: not dialled");
  assert.equal(log.filter((line) => line.startsWith("dial")).length, MAX_DIALS);
  assert.ok(!log.includes("dial 200"));
  await timers.advance(1_000); // the first key's dial ends
  assert.deepEqual(log.filter((line) => line.startsWith("undial")), ["undial 0"]);
  assert.equal(dials.reach(keyOf(200), 1_000), true);
  dials.stop();
  assert.equal(dials.size, 0);
  assert.equal(log.filter((line) => line.startsWith("undial")).length, MAX_DIALS + 1);
  await timers.advance(10_000);
  assert.equal(
    log.filter((line) => line.startsWith("undial")).length,
    MAX_DIALS + 1,
    "no timer left",
  );
});

Deno.test("KeyDials: a dial lasts while any holder wants it; released by every holder it ends at once, released by one it keeps the others' time", async () => {
  const timers = new ManualTimers();
  const { log, dialer } = recorder();
  const dials = new KeyDials(dialer, timers);
  dials.reach(keyOf(1), 10_000, "receipt-a");
  dials.reach(keyOf(1), 1_000, "receipt-b");
  dials.release(keyOf(1), "receipt-a"); // b still wants it, until 1,000
  assert.equal(dials.has(keyOf(1)), true);
  await timers.advance(999);
  assert.equal(dials.has(keyOf(1)), true);
  await timers.advance(1); // b's time is up: a gave it back
  assert.equal(dials.has(keyOf(1)), false);
  assert.deepEqual(log, ["dial 1", "dial 1", "undial 1"]);
  // Both released before their time: undialled at once; a release after that changes nothing.
  dials.reach(keyOf(2), 60_000, "x");
  dials.reach(keyOf(2), 60_000, "y");
  dials.release(keyOf(2), "x");
  dials.release(keyOf(2), "y");
  dials.release(keyOf(2), "y");
  assert.equal(dials.size, 0);
  assert.deepEqual(log.slice(3), ["dial 2", "dial 2", "undial 2"]);
  assert.equal(timers.pending, 0, "no timer left armed");
});
