/**
 * The shares of the validator inbox's hold (`network/_validator_inbox.ts`) by what a peer key is
 * known as (`network/_peer_origins.ts`): its address group and its standing in the ledger. Keys
 * are free, so shares per key alone let eight throwaway keys fill the hold (review s71, finding
 * 3); the network-level outcome is in `validator_inbox_sybil_test.ts`.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  MAX_HELD,
  MAX_HELD_NEWCOMERS,
  MAX_HELD_NEWCOMERS_PER_GROUP,
  MAX_HELD_PER_GROUP,
  MAX_HELD_PER_PEER,
  ValidatorInbox,
} from "../../network/_validator_inbox.ts";
import { PeerOrigins } from "../../network/_peer_origins.ts";
import { eventually } from "../_helpers/wait.ts";

interface Note {
  type: "note";
  from: string;
}

/** Run `test` on an inbox for a validator "v" that is not running, with its own origins. */
async function withInbox(
  name: string,
  test: (inbox: ValidatorInbox<Note>, origins: PeerOrigins, system: ActorSystem) => Promise<void>,
): Promise<void> {
  const system = new ActorSystem({ name });
  const origins = new PeerOrigins();
  try {
    await test(new ValidatorInbox<Note>(system, "v", { origins }), origins, system);
  } finally {
    await system.shutdown();
  }
}

/** `peer` connected from `group`, with standing in the ledger or not (answered at once). */
async function connected(
  origins: PeerOrigins,
  peer: string,
  group: string | undefined,
  standing: boolean,
): Promise<void> {
  origins.connected(peer, group, () => Promise.resolve(standing));
  await origins.recheck(peer);
}

/** `peer` hands over `n` notes; how many more the inbox holds after. */
async function flood(inbox: ValidatorInbox<Note>, peer: string, n: number): Promise<number> {
  const before = inbox.held;
  for (let i = 0; i < n; i++) await inbox.deliver(peer, { type: "note", from: peer });
  return inbox.held - before;
}

Deno.test("keys with no standing take at most half the hold together, however many; a key with standing still finds room", async () => {
  await withInbox("s71-inbox-newcomers", async (inbox, origins) => {
    for (let k = 0; k < MAX_HELD / MAX_HELD_PER_PEER; k++) {
      await connected(origins, `new${k}`, undefined, false);
      await flood(inbox, `new${k}`, MAX_HELD_PER_PEER);
    }
    assert.equal(inbox.held, MAX_HELD_NEWCOMERS, "newcomers past their part are dropped");
    await connected(origins, "known", undefined, true);
    assert.equal(await flood(inbox, "known", MAX_HELD_PER_PEER + 1), MAX_HELD_PER_PEER);
    assert.equal(await flood(inbox, "stranger", 1), 0, "a key never connected is a newcomer");
  });
});

Deno.test("newcomers from one address group take one key's share together, however many keys; another group's newcomer and a known key of that group still find room", async () => {
  await withInbox("s71-inbox-groups", async (inbox, origins) => {
    let held = 0;
    for (let k = 0; k < 8; k++) {
      await connected(origins, `host-key${k}`, "198.51.100.7", false);
      held += await flood(inbox, `host-key${k}`, MAX_HELD_PER_PEER);
    }
    assert.equal(held, MAX_HELD_NEWCOMERS_PER_GROUP);
    await connected(origins, "elsewhere", "203.0.113.9", false);
    assert.equal(await flood(inbox, "elsewhere", 1), 1);
    await connected(origins, "known-there", "198.51.100.7", true);
    assert.equal(await flood(inbox, "known-there", 1), 1);
  });
});

Deno.test("one address group takes at most half the hold, keys with standing included", async () => {
  await withInbox("s71-inbox-group-bound", async (inbox, origins) => {
    let held = 0;
    for (let k = 0; k < 6; k++) {
      await connected(origins, `staked${k}`, "2001:db8:1:2::/64", true);
      held += await flood(inbox, `staked${k}`, MAX_HELD_PER_PEER);
    }
    assert.equal(held, MAX_HELD_PER_GROUP);
    await connected(origins, "other", "192.0.2.1", true);
    assert.equal(await flood(inbox, "other", 1), 1);
  });
});

Deno.test("a key's standing is asked again once the validator took its evidence, and kept while the validator is down", async () => {
  await withInbox("s71-inbox-recheck", async (inbox, origins, system) => {
    let staked = false;
    let asks = 0;
    origins.connected("peer", undefined, () => {
      asks++;
      return Promise.resolve(staked);
    });
    await origins.recheck("peer");
    assert.deepEqual([asks, origins.of("peer").standing], [1, false]);
    const taken: Note[] = [];
    await system.spawn<Note>({
      name: "v",
      factory: () => ({
        receive(message: Note) {
          taken.push(message);
          staked = true; // its own pledge, say: recorded
        },
      }),
    });
    await inbox.deliver("peer", { type: "note", from: "peer" });
    await eventually(() => origins.of("peer").standing, "the standing asked again");
    assert.deepEqual([taken.length, asks, origins.of("peer").standing], [1, 2, true]);
    await system.stop("v");
    assert.equal(await flood(inbox, "peer", 1), 1);
    assert.equal(origins.of("peer").standing, true);
    assert.equal(asks, 2, "a key with standing is not asked again");
  });
});
