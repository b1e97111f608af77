/**
 * The mailbox (`actors/mailbox.ts`) and its senders: capacity, overflow policies, and senders that
 * do not wait for backpressure (a `tell` that is not awaited), whose waiting queue is bounded.
 *
 * @module
 */
import assert from "node:assert/strict";
import { isAdmitted, Mailbox } from "../../actors/mailbox.ts";
import { MailboxFullError } from "../../actors/errors.ts";
import { deferred, isPending } from "./_helpers.ts";
import { ActorSystem } from "../../actors/actor_system.ts";

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

// -------------------------------------------------------------------------------------------------
// Senders that do not wait for backpressure. A `tell` that is not awaited (a timer, a stream
// callback, a self-tell with `.catch(() => {})`) cannot be slowed down by a full mailbox; each one
// parked a message in the waiting-senders queue, which had no bound, so a stuck actor's memory grew
// with every such send. Each test failed before its fix.

/**
 * More sends than a sane bound on waiting senders, few enough to run in about a second: a
 * fire-and-forget producer sending this much to a stuck actor must not park it all.
 */
const FLOOD = 100_000;

Deno.test("a full backpressure mailbox refuses fire-and-forget senders beyond a bound instead of parking them all", async () => {
  const box = new Mailbox<number, never>("m", { capacity: 1 });
  await box.push(0, undefined);
  let refused = 0;
  let other = 0;
  const sends: Promise<void>[] = [];
  for (let i = 1; i <= FLOOD; i++) {
    sends.push(
      box.push(i, undefined).catch((error) => {
        if (error instanceof MailboxFullError) refused++;
        else other++;
      }),
    );
  }
  // Let every rejection land.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(other, 0, "only MailboxFullError refuses a sender");
  assert.ok(
    box.waiting < FLOOD,
    `every one of ${FLOOD} senders is parked (waiting ${box.waiting})`,
  );
  assert.equal(box.waiting + refused, FLOOD, "each sender either waits or is refused at once");
  // Those that wait are still admitted in order as the consumer drains.
  const admitted: number[] = [];
  while (box.size > 0) admitted.push(box.shift());
  await Promise.all(sends);
  assert.equal(admitted.length, FLOOD - refused + 1);
  for (let i = 0; i < admitted.length; i++) assert.equal(admitted[i], i);
});

Deno.test("a stuck actor told a flood of fire-and-forget messages holds a bounded backlog and handles every accepted one", async () => {
  const system = new ActorSystem({ name: "t" });
  const gate = deferred();
  let handled = 0;
  const ref = await system.spawn<number>({
    name: "t/stuck",
    mailbox: { capacity: 4 },
    factory: () => ({
      receive(m: number) {
        handled++;
        // The first message holds the actor (a hung disk read, a model load).
        if (m === 0) return gate.promise;
      },
    }),
  });
  await ref.tell(0);
  let refused = 0;
  const sends: Promise<void>[] = [];
  for (let i = 1; i <= FLOOD; i++) {
    // As the domain actors' timers and callbacks do: nobody waits for the mailbox.
    sends.push(
      ref.tell(i).catch((error) => {
        assert.ok(error instanceof MailboxFullError, String(error));
        refused++;
      }),
    );
  }
  await new Promise((resolve) => setTimeout(resolve, 0));
  const mailbox = system.tree().children[0].mailbox!;
  assert.ok(
    mailbox.waiting < FLOOD - mailbox.capacity,
    `the backlog grows with every send (waiting ${mailbox.waiting})`,
  );
  assert.ok(refused > 0, "no sender was refused");
  gate.resolve();
  await Promise.all(sends);
  await ref.ask(-1);
  // Nothing accepted is lost: the message in hand, every accepted tell, and the final ask.
  assert.equal(handled, 1 + (FLOOD - refused) + 1);
  await system.shutdown();
});
