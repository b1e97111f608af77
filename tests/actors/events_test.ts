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
