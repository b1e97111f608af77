/**
 * Review s53 of the actor runtime: senders that do not wait for backpressure. A `tell` that is
 * not awaited (a timer, a stream callback, a self-tell with `.catch(() => {})`) cannot be slowed
 * down by a full mailbox; each one parked a message in the waiting-senders queue, which had no
 * bound, so a stuck actor's memory grew with every such send. Each test failed before its fix.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { MailboxFullError } from "../../actors/errors.ts";
import { Mailbox } from "../../actors/mailbox.ts";
import { deferred } from "./_helpers.ts";

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
