import assert from "node:assert/strict";
import { isAdmitted, Mailbox } from "../../actors/mailbox.ts";
import { MailboxFullError } from "../../actors/errors.ts";
import { isPending } from "./_helpers.ts";

Deno.test("mailbox delivers messages in FIFO order across ring wrap-around", async () => {
  const box = new Mailbox<number, string>("m", { capacity: 3 });
  const out: number[] = [];
  for (let round = 0; round < 5; round++) {
    await box.push(round * 2, undefined);
    await box.push(round * 2 + 1, "reply");
    out.push(box.shift());
    assert.equal(box.lastReply, undefined);
    out.push(box.shift());
    assert.equal(box.lastReply, "reply");
  }
  assert.deepEqual(out, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(box.size, 0);
});

Deno.test("mailbox admits without allocating a promise while there is space", () => {
  const box = new Mailbox<number, never>("m", { capacity: 2 });
  const a = box.push(1, undefined);
  const b = box.push(2, undefined);
  assert.ok(isAdmitted(a) && isAdmitted(b));
  assert.equal(a, b, "the fast path returns one shared resolved promise");
});

Deno.test("backpressure push stays pending until a slot frees, then waiters enter in order", async () => {
  const box = new Mailbox<string, never>("m", { capacity: 1 });
  await box.push("a", undefined);
  const b = box.push("b", undefined);
  const c = box.push("c", undefined);
  assert.equal(await isPending(b), true);
  assert.equal(box.waiting, 2);
  assert.equal(box.size, 1, "the ring never exceeds capacity");
  assert.equal(box.shift(), "a");
  await b;
  assert.equal(await isPending(c), true);
  assert.equal(box.shift(), "b");
  await c;
  assert.equal(box.shift(), "c");
  assert.equal(box.size, 0);
});

Deno.test("drop policy discards tells, counts them, and rejects asks", async () => {
  const box = new Mailbox<number, string>("m", { capacity: 1, overflow: "drop" });
  await box.push(1, undefined);
  await box.push(2, undefined);
  assert.equal(box.dropped, 1);
  await assert.rejects(box.push(3, "ask"), MailboxFullError);
  assert.equal(box.size, 1);
  assert.equal(box.shift(), 1);
});

Deno.test("fail policy rejects with MailboxFullError carrying the capacity", async () => {
  const box = new Mailbox<number, never>("owner", { capacity: 2, overflow: "fail" });
  await box.push(1, undefined);
  await box.push(2, undefined);
  const error = await box.push(3, undefined).catch((e) => e);
  assert.ok(error instanceof MailboxFullError);
  assert.equal(error.code, "mailbox_full");
  assert.equal(error.capacity, 2);
  assert.equal(error.actor, "owner");
});

Deno.test("clear hands every queued and waiting message to discard, close rejects waiters", async () => {
  const box = new Mailbox<number, string>("m", { capacity: 2 });
  await box.push(1, "r1");
  await box.push(2, undefined);
  const waiting = box.push(3, "r3");
  const seen: Array<[number, string | undefined]> = [];
  assert.equal(box.clear((m, r) => seen.push([m, r])), 3);
  assert.deepEqual(seen, [[1, "r1"], [2, undefined], [3, "r3"]]);
  await waiting;
  await box.push(4, undefined);
  await box.push(5, undefined);
  const blocked = box.push(6, undefined);
  box.close(new Error("closed"));
  await assert.rejects(blocked, /closed/);
  await assert.rejects(box.push(7, undefined), /closed/);
  assert.equal(box.size, 2, "close leaves queued messages for clear");
});

Deno.test("mailbox rejects invalid capacities and policies", () => {
  assert.throws(() => new Mailbox("m", { capacity: 0 }), RangeError);
  assert.throws(() => new Mailbox("m", { capacity: 1.5 }), RangeError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => new Mailbox("m", { overflow: "spill" as any }), RangeError);
});
