/**
 * One ask in flight per question (`actors/pending_asks.ts`), the mechanism the dashboard, the
 * heartbeat and `/metrics` share (review s74 F1: timed-out asks piled up in the storage actor's
 * mailbox, one more every second).
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { AskTimeoutError } from "../../actors/errors.ts";
import { PendingAsks } from "../../actors/pending_asks.ts";
import { FakeTimers, turns } from "../_helpers/fake_timers.ts";

/** An actor whose asks are answered only by the test. */
function heldActor(name = "node/storage") {
  const sent: { message: string; timeoutMs?: number; answer: (v: unknown) => void }[] = [];
  const ref = {
    name,
    ask: (message: string, options?: { timeoutMs?: number }) =>
      new Promise((resolve) =>
        sent.push({ message, timeoutMs: options?.timeoutMs, answer: resolve })
      ),
  } as unknown as ActorRef<string>;
  return { ref, sent };
}

Deno.test("pending asks: a caller timed out leaves its ask in flight, and the next caller waits on it", async () => {
  const timers = new FakeTimers();
  const asks = new PendingAsks({ timers, inFlightLimitMs: 30_000 });
  const actor = heldActor();
  const first = asks.ask(actor.ref, "counts", "counts", 1_000);
  timers.fireAll(); // the first caller's second passes
  await assert.rejects(first, (e) => e instanceof AskTimeoutError && e.code === "ask_timeout");
  const second = asks.ask(actor.ref, "counts", "counts", 1_000);
  assert.equal(actor.sent.length, 1, "not sent again while unanswered");
  assert.equal(actor.sent[0].timeoutMs, 30_000);
  assert.equal(asks.inFlight, 1);
  actor.sent[0].answer(7);
  assert.equal(await second, 7);
  await turns(1);
  assert.equal(asks.inFlight, 0);
  assert.equal(timers.armed.size, 0, "each caller's timer cleared");
  const third = asks.ask(actor.ref, "counts", "counts", 1_000);
  assert.equal(actor.sent.length, 2, "answered: asked afresh");
  actor.sent[1].answer(8);
  assert.equal(await third, 8);
});

Deno.test("pending asks: questions and actors are kept apart", async () => {
  const asks = new PendingAsks({ timers: new FakeTimers() });
  const storage = heldActor("node/storage");
  const other = heldActor("node/validator");
  const a = asks.ask(storage.ref, "stats", "stats", 1_000);
  const b = asks.ask(storage.ref, "capacity", "capacity", 1_000);
  const c = asks.ask(other.ref, "stats", "stats", 1_000);
  assert.equal(storage.sent.length, 2);
  assert.equal(other.sent.length, 1);
  for (const s of [...storage.sent, ...other.sent]) s.answer(s.message);
  assert.deepEqual(await Promise.all([a, b, c]), ["stats", "capacity", "stats"]);
});

Deno.test("pending asks: a failed ask fails its callers and is asked again next time", async () => {
  const asks = new PendingAsks({ timers: new FakeTimers() });
  let sent = 0;
  const ref = {
    name: "node/storage",
    ask: () => {
      sent++;
      return Promise.reject(new Error("actor stopped"));
    },
  } as unknown as ActorRef<string>;
  await assert.rejects(asks.ask(ref, "q", "q", 1_000), /actor stopped/);
  await turns(1);
  await assert.rejects(asks.ask(ref, "q", "q", 1_000), /actor stopped/);
  assert.equal(sent, 2);
});

Deno.test("pending asks: two refs without a name are two actors, not one", async () => {
  const asks = new PendingAsks({ timers: new FakeTimers() });
  const prover = { ask: () => Promise.resolve("prover's stats") } as unknown as ActorRef<string>;
  const validator = { ask: () => Promise.resolve("validator's stats") } as unknown as ActorRef<
    string
  >;
  const [a, b] = await Promise.all([
    asks.ask(prover, "stats", "stats", 1_000),
    asks.ask(validator, "stats", "stats", 1_000),
  ]);
  assert.deepEqual([a, b], ["prover's stats", "validator's stats"]);
});
