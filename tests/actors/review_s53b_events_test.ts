/**
 * Review s53b of the actor event feed: each subscription's unsubscribe removes that
 * subscription only. Failed before its fix.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ActorEvent, EventFeed } from "../../actors/events.ts";

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
