/**
 * The actor event feed (`actors/events.ts`): what it reports, and that each subscription's
 * unsubscribe removes that subscription only.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type ActorEvent, EventFeed, formatEvent } from "../../actors/events.ts";
import { HookTimeoutError } from "../../actors/errors.ts";

Deno.test("event feed delivers to every subscriber until it unsubscribes", () => {
  const feed = new EventFeed();
  const a: string[] = [];
  const b: string[] = [];
  const stopA = feed.subscribe((e) => a.push(e.name));
  feed.subscribe((e) => b.push(e.name));
  const event: ActorEvent = { type: "started", kind: "actor", name: "x", time: 0 };
  feed.emit(event);
  stopA();
  stopA();
  feed.emit({ ...event, name: "y" });
  assert.deepEqual(a, ["x"]);
  assert.deepEqual(b, ["x", "y"]);
  assert.equal(feed.size, 1);
});

Deno.test("formatEvent renders one readable line per event type", () => {
  const time = 0;
  assert.equal(
    formatEvent({
      type: "crashed",
      kind: "actor",
      name: "node/storage",
      time,
      reason: new Error("disk full"),
      discarded: 2,
    }),
    'crashed actor "node/storage": Error: disk full (2 queued messages discarded)',
  );
  assert.equal(
    formatEvent({ type: "restarted", kind: "actor", name: "a", time, incarnation: 3, delayMs: 40 }),
    'restarted actor "a" (incarnation 3, after 40 ms backoff)',
  );
  assert.equal(
    formatEvent({ type: "stopped", kind: "supervisor", name: "s", time, reason: "shutdown" }),
    'stopped supervisor "s" (shutdown)',
  );
  assert.match(
    formatEvent({
      type: "escalated",
      kind: "supervisor",
      name: "s",
      time,
      reason: "loop",
      restarts: 3,
    }),
    /^escalated from supervisor "s" after 3 restarts: loop$/,
  );
  assert.match(formatEvent({ type: "fatal", name: "node", time, reason: "x" }), /^fatal: /);
  assert.equal(
    formatEvent({
      type: "hook_failed",
      hook: "preStart",
      name: "a",
      time,
      reason: new HookTimeoutError("a", "preStart", 5_000),
    }),
    'preStart of "a" did not finish within 5000 ms',
  );
});

// -------------------------------------------------------------------------------------------------
// Each subscription's unsubscribe removes that subscription only. Failed before its fix.

const EVENT: ActorEvent = { type: "started", kind: "actor", name: "x", time: 0 };

Deno.test("unsubscribing one of two subscriptions of the same listener keeps the other", () => {
  const feed = new EventFeed();
  const seen: string[] = [];
  const listener = (e: ActorEvent) => void seen.push(e.name);
  // Two parts of a program that happen to share one (module-level) listener.
  const first = feed.subscribe(listener);
  const second = feed.subscribe(listener);
  feed.emit(EVENT);
  assert.deepEqual(seen, ["x", "x"]);
  first();
  assert.equal(feed.size, 1, "the second subscription was removed with the first");
  feed.emit({ ...EVENT, name: "y" });
  assert.deepEqual(seen, ["x", "x", "y"]);
  // Idempotent: calling the same unsubscribe again must not take the other copy.
  first();
  assert.equal(feed.size, 1);
  second();
  assert.equal(feed.size, 0);
  feed.emit({ ...EVENT, name: "z" });
  assert.deepEqual(seen, ["x", "x", "y"]);
});
