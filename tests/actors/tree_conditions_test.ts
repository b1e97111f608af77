/**
 * `/healthz`'s conditions from the supervision tree (`actors/tree_conditions.ts`, review s71,
 * finding 3: a storage actor crash-looping until the node exited was `ok`): an actor that crashed
 * within the window, or that is down awaiting its restart, is `actor_restarting`, named; a crash
 * older than the window, or of an actor the tree no longer holds, is not; and the crashes kept are
 * bounded whatever names crash. The tree and its events are stand-ins, on the test's clock.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorTreeNode } from "../../actors/actor_system.ts";
import { type ActorEvent, EventFeed } from "../../actors/events.ts";
import {
  ACTOR_RESTARTING,
  DEFAULT_CRASH_WINDOW_MS,
  TreeConditions,
} from "../../actors/tree_conditions.ts";

/** A node's tree: the system, its supervisor, and `actors` under it, each `running` unless told. */
function treeOf(actors: Record<string, ActorTreeNode["status"]>): ActorTreeNode {
  const leaf = (name: string, status: ActorTreeNode["status"]): ActorTreeNode => ({
    kind: "actor",
    name,
    status,
    restarts: status === "down" ? 1 : 0,
    children: [],
  });
  return {
    kind: "system",
    name: "node",
    status: "running",
    restarts: 0,
    children: [{
      kind: "supervisor",
      name: "node/sup",
      status: "running",
      restarts: 0,
      children: Object.entries(actors).map(([name, status]) => leaf(name, status)),
    }],
  };
}

/** A stand-in system whose tree the test sets, on a clock it moves. */
function standIn() {
  const clock = { t: 1_000_000 };
  const events = new EventFeed<ActorEvent>();
  let tree = treeOf({ "node/storage": "running", "node/validator": "running" });
  const conditions = new TreeConditions({ events, tree: () => tree }, { now: () => clock.t });
  return {
    clock,
    conditions,
    setTree: (next: ActorTreeNode) => (tree = next),
    crash: (name: string, message = "boom") =>
      events.emit({
        type: "crashed",
        kind: "actor",
        name,
        time: clock.t,
        reason: new Error(message),
        discarded: 0,
      }),
  };
}

Deno.test("an actor that crashed within the window is actor_restarting until its crashes are older than the window", () => {
  const s = standIn();
  assert.deepEqual(s.conditions.conditions(), []);
  // Failed before the fix (nothing looked at the tree): `/healthz` said ok through a crash loop.
  s.crash("node/storage", "PermissionDenied: open '/data/store/pending/x'");
  const since = s.clock.t;
  s.clock.t += 1_000;
  s.crash("node/storage", "PermissionDenied: open '/data/store/pending/y'");
  const [condition, ...others] = s.conditions.conditions();
  assert.deepEqual(others, []);
  assert.equal(condition.component, "node/storage");
  assert.equal(condition.status, "degraded");
  assert.equal(condition.code, ACTOR_RESTARTING);
  assert.equal(condition.since, since);
  assert.match(
    condition.message,
    /^node\/storage crashed 2 times in the last 30 s \(last: .*y'\); now running/,
  );
  // The first crash leaves the window: one left, since the second.
  s.clock.t = since + DEFAULT_CRASH_WINDOW_MS;
  assert.match(s.conditions.conditions()[0].message, /crashed 1 time in/);
  assert.equal(s.conditions.conditions()[0].since, since + 1_000);
  s.clock.t += 1_000;
  assert.deepEqual(s.conditions.conditions(), []);
  s.conditions.close();
});

Deno.test("an actor down awaiting its restart is actor_restarting though no crash of it was heard; a crashed actor the tree no longer holds is not", () => {
  const s = standIn();
  s.setTree(treeOf({ "node/storage": "down", "node/validator": "running" }));
  const [down, ...others] = s.conditions.conditions();
  assert.deepEqual(others, []);
  assert.equal(down.component, "node/storage");
  assert.equal(down.code, ACTOR_RESTARTING);
  assert.match(down.message, /^node\/storage is down, awaiting its restart/);
  s.setTree(treeOf({ "node/storage": "running", "node/validator": "running" }));
  s.crash("node/inference/job-1"); // a job's child, gone with its job
  assert.deepEqual(s.conditions.conditions(), []);
  s.conditions.close();
  // Closed: crashes are no longer heard.
  s.crash("node/storage");
  assert.deepEqual(s.conditions.conditions(), []);
});

Deno.test("the crashes kept are bounded: a flood of crashing names pushes out the oldest", () => {
  const s = standIn();
  s.crash("node/storage");
  for (let i = 0; i < 1_000; i++) s.crash(`node/inference/job-${i}`);
  assert.deepEqual(s.conditions.conditions(), [], "node/storage's crash, the oldest, forgotten");
  s.crash("node/validator");
  assert.deepEqual(s.conditions.conditions().map((c) => c.component), ["node/validator"]);
  s.conditions.close();
});
