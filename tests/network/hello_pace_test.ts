/**
 * The pace of a peer's hellos (`network/_peer_hellos.ts`): `HELLO_BURST` at once, then
 * `HELLO_PACE_HEADROOM` per hello interval per connection. A faster hello is held (the newest only)
 * until the pace allows it, and refused, counted toward the connection's refusal limit: a flood
 * with a rising `seq` is cut off with `too_many_refusals` (review s76 F5: 7,000 a second were each
 * verified and each a peer-table change), while a peer refreshing at the interval is never refused,
 * and the last hello of a burst (a change of roles) is taken within one interval.
 *
 * The node's clock and its connections' timers are hand-moved (`ManualTimers`): the pace, the
 * held hello's wait and the refusal window read them, so no test waits on the wall clock.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { HELLO_BURST } from "../../network/_peer_hellos.ts";
import { DEFAULT_HELLO_INTERVAL_MS } from "../../network/network_actor.ts";
import { DEFAULT_MAX_REFUSALS } from "../../protocols/connection.ts";
import { PeerHelloMessage } from "../../protocols/peer_hello.ts";
import { settle } from "../protocols/_helpers.ts";
import { eventually } from "../_helpers/wait.ts";
import { node, peerOf } from "./_hello_pace_node.ts";

const INTERVAL = DEFAULT_HELLO_INTERVAL_MS;
/** More hellos than the refusal limit: counted as refusals, they would have cut the peer off. */
const HONEST_HELLOS = DEFAULT_MAX_REFUSALS + HELLO_BURST + 1;

Deno.test("a hello flood with a rising seq is cut off with too_many_refusals; a peer refreshing at the hello interval beside it is never refused", async () => {
  const system = new ActorSystem({ name: "hello-pace-flood" });
  try {
    const { net, timers, updated, row } = await node(system);
    const liar = await peerOf(net, timers);
    const honest = await peerOf(net, timers);
    // The flood: 3 × the refusal limit of changed hellos, pre-signed, sent at once.
    const flood = Array.from({ length: 3 * DEFAULT_MAX_REFUSALS }, () => liar.hello());
    // Sent until the node cuts it off (its close reaches this end during the flood).
    for (const hello of flood) {
      if (liar.peer.isClosed) break;
      await liar.peer.notify(PeerHelloMessage, { hello }).catch(() => {});
    }
    await eventually(() => liar.nodeSide.isClosed || undefined, "the flooding connection cut");
    assert.equal(
      (liar.nodeSide.closeReason as { code?: string } | null)?.code,
      "too_many_refusals",
      String(liar.nodeSide.closeReason),
    );
    // Only the burst was checked and kept: the rest never became peer-table changes.
    assert.ok(
      (updated.get(liar.key) ?? 0) <= HELLO_BURST,
      `${updated.get(liar.key)} updates for ${flood.length} hellos`,
    );
    // The honest peer sends a changed hello every interval (its hello loop's pace): each is
    // taken at once, and its connection is never refused.
    for (let i = 0; i < HONEST_HELLOS; i++) {
      const hello = honest.hello();
      await honest.peer.notify(PeerHelloMessage, { hello });
      await eventually(
        async () => (await row(honest.key))?.version === hello.version,
        hello.version,
      );
      await timers.advance(INTERVAL);
    }
    assert.equal(honest.nodeSide.isClosed, false);
    assert.equal(honest.nodeSide.stats().refused, 0);
    assert.equal(updated.get(honest.key), HONEST_HELLOS);
  } finally {
    await system.shutdown();
  }
});

Deno.test("hellos past the burst are held, not checked, and the last of them, a change of roles, is taken within one interval", async () => {
  const system = new ActorSystem({ name: "hello-pace-burst" });
  try {
    const { net, timers, row } = await node(system);
    const peer = await peerOf(net, timers);
    const burst = Array.from({ length: HELLO_BURST }, () => peer.hello());
    // Load changes past the burst, then the change that matters: it serves inference now.
    const extra = [peer.hello(), peer.hello()];
    const change = peer.hello({ roles: ["storage", "inference"] });
    for (const hello of [...burst, ...extra, change]) {
      await peer.peer.notify(PeerHelloMessage, { hello });
    }
    await eventually(
      async () => (await row(peer.key))?.version === burst.at(-1)!.version,
      "the burst taken",
    );
    await settle();
    const held = await row(peer.key);
    assert.equal(held?.version, burst.at(-1)!.version, "past the burst: held, not taken");
    assert.deepEqual(held?.roles, ["storage"]);
    // One interval later the newest held hello is taken; the ones it replaced never are.
    await timers.advance(INTERVAL);
    const taken = await eventually(async () => {
      const r = await row(peer.key);
      return r?.version === change.version ? r : undefined;
    }, "the change of roles");
    assert.deepEqual(taken.roles, ["storage", "inference"]);
    assert.equal(peer.nodeSide.isClosed, false);
    assert.equal(peer.nodeSide.stats().refused, extra.length + 1);
  } finally {
    await system.shutdown();
  }
});
