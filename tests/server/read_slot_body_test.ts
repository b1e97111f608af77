/**
 * The body of a read holding a read slot (`server/read_slot_body.ts`): its slot given back at its
 * end, and once its client has taken nothing for the idle time; pieces handed over small, so a
 * client that reads slowly but steadily is never taken for one that stopped. Time is fake.
 */
import assert from "node:assert/strict";
import {
  READ_IDLE_TIMEOUT_MS,
  READ_PIECE_BYTES,
  slotHeldBody,
} from "../../server/read_slot_body.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { FakeTimers, turns } from "../_helpers/fake_timers.ts";

/** A store read of `pieces` (each its own chunk), counting cancels. */
function storeRead(pieces: Uint8Array[]) {
  const state = { cancelled: 0 };
  let at = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at < pieces.length) controller.enqueue(pieces[at++]);
      else controller.close();
    },
    cancel() {
      state.cancelled++;
    },
  }, { highWaterMark: 0 });
  return { body, state };
}

function armedIdle(timers: FakeTimers): number {
  return [...timers.armed.values()].filter((t) => t.ms === READ_IDLE_TIMEOUT_MS).length;
}

Deno.test("a store chunk is handed over in pieces of at most READ_PIECE_BYTES, bytes unchanged, and the slot comes back at the end with no timer left", async () => {
  const timers = new FakeTimers();
  const chunk = new Uint8Array(4 * READ_PIECE_BYTES + 100).map((_, i) => i % 251);
  const { body } = storeRead([chunk]);
  let released = 0;
  const reader = slotHeldBody(body, () => released++, { timers }).getReader();
  const sizes: number[] = [];
  const got: number[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    sizes.push(value.byteLength);
    got.push(...value);
    // Each piece handed over arms the wait for the client's next pull, one at a time.
    assert.equal(armedIdle(timers), 1);
  }
  assert.deepEqual(sizes, [...Array(4).fill(READ_PIECE_BYTES), 100]);
  assert.deepEqual(new Uint8Array(got), chunk);
  assert.equal(released, 1);
  assert.equal(armedIdle(timers), 0);
});

Deno.test("a client that takes nothing for READ_IDLE_TIMEOUT_MS is cut: the slot is given back once, the store's read cancelled, the body errors with client_idle", async () => {
  const timers = new FakeTimers();
  const { body, state } = storeRead([new Uint8Array(100), new Uint8Array(100)]);
  let released = 0;
  const reader = slotHeldBody(body, () => released++, { timers }).getReader();
  await reader.read();
  timers.fireFor(READ_IDLE_TIMEOUT_MS);
  assert.equal(released, 1);
  await assert.rejects(reader.read(), (error: Error & { code?: string }) => {
    assert.equal(error.code, "client_idle");
    return true;
  });
  await turns(1);
  assert.equal(state.cancelled, 1);
  await reader.cancel().catch(() => {});
  assert.equal(released, 1, "the slot was given back twice");
});

Deno.test("a body never pulled at all is cut at the idle time too", () => {
  const timers = new FakeTimers();
  const { body } = storeRead([new Uint8Array(100)]);
  let released = 0;
  slotHeldBody(body, () => released++, { timers });
  assert.equal(armedIdle(timers), 1);
  timers.fireFor(READ_IDLE_TIMEOUT_MS);
  assert.equal(released, 1);
});

Deno.test("a read cut for idleness counts once in the edge's idleTimeouts; one read whole or cancelled does not", async () => {
  const timers = new FakeTimers();
  const stats = new EdgeStats();
  const cut = storeRead([new Uint8Array(100), new Uint8Array(100)]);
  const reader = slotHeldBody(cut.body, () => {}, { timers, stats }).getReader();
  await reader.read();
  timers.fireFor(READ_IDLE_TIMEOUT_MS);
  assert.equal(stats.idleTimeouts, 1);
  await assert.rejects(reader.read());
  const whole = slotHeldBody(storeRead([new Uint8Array(100)]).body, () => {}, { timers, stats });
  await new Response(whole).arrayBuffer();
  const cancelled = slotHeldBody(storeRead([new Uint8Array(100)]).body, () => {}, {
    timers,
    stats,
  });
  await cancelled.cancel();
  assert.equal(stats.idleTimeouts, 1);
  assert.equal(armedIdle(timers), 0);
});

Deno.test("with a wanted-slot list, a client that pulls only every 256 s (16 KiB/s through 4 MiB of socket buffers) is never cut while nobody calls its cut; it is told early only when cut or cancelled", async () => {
  const timers = new FakeTimers();
  const stats = new EdgeStats();
  const overdue = new Set<() => void>();
  const idle = {
    timers,
    stats,
    overdue: (cut: () => void) => {
      overdue.add(cut);
      return () => overdue.delete(cut);
    },
  };
  const ends: boolean[] = [];
  const slow = storeRead([new Uint8Array(3 * READ_PIECE_BYTES)]);
  const reader = slotHeldBody(slow.body, (early) => ends.push(early), idle).getReader();
  let received = 0;
  for (;;) {
    // The idle time passes between every two pulls: the read goes on the list, nobody cuts it.
    timers.fireFor(READ_IDLE_TIMEOUT_MS);
    assert.equal(overdue.size, 1);
    const { done, value } = await reader.read();
    if (done) break;
    received += value.byteLength;
    assert.equal(overdue.size, 0, "a pull left the read on the wanted-slot list");
  }
  assert.equal(received, 3 * READ_PIECE_BYTES);
  assert.deepEqual(ends, [false]);
  assert.equal(stats.idleTimeouts, 0);
  // A stalled one is cut once its cut is called: the slot back, told early, counted.
  const stalled = storeRead([new Uint8Array(100), new Uint8Array(100)]);
  const stalledReader = slotHeldBody(stalled.body, (early) => ends.push(early), idle).getReader();
  await stalledReader.read();
  timers.fireFor(READ_IDLE_TIMEOUT_MS);
  assert.deepEqual(ends, [false]);
  [...overdue][0]();
  assert.deepEqual(ends, [false, true]);
  assert.equal(stats.idleTimeouts, 1);
  assert.equal(overdue.size, 0);
  await assert.rejects(stalledReader.read(), /read nothing/);
  // A client that goes away is told early too.
  const left = slotHeldBody(storeRead([new Uint8Array(100)]).body, (e) => ends.push(e), idle);
  await left.cancel();
  assert.deepEqual(ends, [false, true, true]);
});
