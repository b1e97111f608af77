/**
 * A peer key's pledge budget is the key's, not one connection's: it does not start full again
 * when the key reconnects. Made per connection, one key that connected, sent its 128 pledges of
 * fresh keys, hung up and did it again put any number of pledges in every ledger for good (a
 * review measured 5,120 in 9.5 s at stop 33). The budget's clock stands still here: no room
 * comes back.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  StakeAnnouncementMessage,
  VALIDATION_PROTOCOL,
} from "../../protocols/inference_messages.ts";
import {
  PLEDGE_RECEIVE_BURST,
  signStakePledge,
  type StakePledge,
} from "../../protocols/stake_pledge.ts";
import { spawnLedgerNode } from "./_ledger_node.ts";

const MODELS = { has: () => true, get: () => Promise.resolve(undefined) };
const now = () => 1_000_000; // the budgets' clock never moves: no room comes back

Deno.test("a key that reconnects draws on the pledge budget it left: past it, its pledges are refused and it is cut off, whatever its connection", async () => {
  const system = new ActorSystem({ name: "pledge-reconnect" });
  const dir = await Deno.makeTempDir();
  try {
    const identity = Identity.generate();
    const a = await spawnLedgerNode(system, dir, "a", {
      identity,
      pledge: signStakePledge(identity, 5_000, 1),
      models: MODELS,
      now,
    });
    const mallory = Identity.generate(); // one key, one "address", throughout
    const rounds = 4;
    let refused = 0;
    for (let r = 0; r < rounds; r++) {
      const [dx, dy] = memoryDuplexPair();
      const [, far] = await Promise.all([
        a.network.ask<Connection>({
          type: "attach",
          duplex: dy,
          address: "mem:mallory",
          outbound: false,
        }),
        Connection.open(dx, {
          identity: mallory,
          protocols: [VALIDATION_PROTOCOL],
          onRemoteError: () => refused++,
        }),
      ]);
      try {
        for (let i = 0; i < PLEDGE_RECEIVE_BURST; i++) {
          await far.notify(StakeAnnouncementMessage, {
            pledge: signStakePledge(Identity.generate(), 1_000, 2),
          });
        }
        await far.ping();
      } catch {
        // Cut off past the budget (too many refusals): the next round connects again.
      }
      await far.close();
    }
    const recorded = await a.validator.ask<StakePledge[]>({ type: "pledges" });
    // One burst of the peer's (and the node's own pledge), whatever the number of connections.
    assert.ok(recorded.length <= 1 + PLEDGE_RECEIVE_BURST, `${recorded.length} recorded`);
    assert.ok(refused > 0, "past the budget the peer is told so");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
