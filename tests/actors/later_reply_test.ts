/**
 * `LaterReply`: an ask answered when its work settles, while the actor goes on with its next
 * messages (the gen_server `noreply` shape the StorageActor's long asks use).
 */
import assert from "node:assert/strict";
import { LaterReply } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";

type Msg = { type: "slow"; fail?: boolean } | { type: "ping" };

Deno.test("a later reply lets the next message in, answers its ask when its work settles, and a failed one crashes nothing", async () => {
  const system = new ActorSystem({ name: "later-reply-test" });
  const gate = Promise.withResolvers<void>();
  let starts = 0;
  try {
    const ref = await system.spawn<Msg>({
      name: "later",
      factory: () => {
        starts++;
        return {
          receive: (msg: Msg) => {
            if (msg.type === "ping") return "pong";
            return new LaterReply(
              gate.promise.then(() => {
                if (msg.fail) throw new Error("the work failed");
                return "slow done";
              }),
            );
          },
        };
      },
    });
    const slow = ref.ask<string>({ type: "slow" });
    const failing = ref.ask<string>({ type: "slow", fail: true });
    // Answered while both slow asks wait on the gate.
    assert.equal(await ref.ask<string>({ type: "ping" }), "pong");
    gate.resolve();
    assert.equal(await slow, "slow done");
    await assert.rejects(failing, /the work failed/);
    assert.equal(await ref.ask<string>({ type: "ping" }), "pong");
    assert.equal(starts, 1, "the failed answer is the asker's, not a crash");
  } finally {
    gate.resolve();
    await system.shutdown();
  }
});
