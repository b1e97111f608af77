/**
 * The hello pace (`network/_peer_hellos.ts`) has headroom over an honest sender (review s76 vstore
 * F6): hellos sent one per interval, arriving in order but up to 4 s late (queued behind a large
 * chunk on a slow uplink, still under the 5 s idle timeout), are never refused. With the bucket
 * refilled at exactly the honest rate, 70 of 300 such hellos were refused `hello_too_soon`, each
 * counted toward the connection's refusal limit. (A flood is still cut off:
 * `hello_pace_test.ts`.)
 *
 * The node's clock and its connections' timers are hand-moved (`ManualTimers`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { DEFAULT_HELLO_INTERVAL_MS, type PeerInfo } from "../../network/network_actor.ts";
import { type PeerHelloBody, PeerHelloMessage } from "../../protocols/peer_hello.ts";
import { settle } from "../protocols/_helpers.ts";
import { eventually } from "../_helpers/wait.ts";
import { node, peerOf } from "./_hello_pace_node.ts";

const INTERVAL = DEFAULT_HELLO_INTERVAL_MS;
/** Hellos the honest peer sends, one per interval. */
const HELLOS = 200;
/** The most a hello is late on the way (in order): under the default 5 s idle timeout. */
const JITTER_MS = 4_000;
/** Connections that never time out on their own: only the pace is under test. */
const NO_TIMEOUTS = { idleTimeoutMs: 1e9, keepaliveMs: 1e9 };

/** When `n` hellos sent one per interval arrive, each up to `jitter` late, in order (seeded). */
function arrivals(n: number, jitter: number): number[] {
  let seed = 7;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const times: number[] = [];
  let last = 0;
  for (let i = 0; i < n; i++) {
    last = Math.max(last, i * INTERVAL + Math.floor(random() * jitter));
    times.push(last);
  }
  return times;
}

Deno.test("an honest peer whose hellos arrive up to 4 s late, in order, is never refused, and its last hello (a change of roles) is taken", async () => {
  const system = new ActorSystem({ name: "hello-pace-jitter" });
  try {
    const { net, timers } = await node(system, NO_TIMEOUTS);
    const { key, nodeSide, peer, hello } = await peerOf(net, timers, NO_TIMEOUTS);
    const start = timers.now();
    const times = arrivals(HELLOS, JITTER_MS);
    for (let i = 0; i < HELLOS; i++) {
      const at = start + times[i];
      if (at > timers.now()) await timers.advance(at - timers.now());
      // The i-th hello (seq and version i + 1); the last one changes the roles.
      const roles: PeerHelloBody["roles"] = i === HELLOS - 1
        ? ["storage", "inference"]
        : ["storage"];
      await peer.notify(PeerHelloMessage, { hello: hello({ roles }) });
      await settle();
    }
    const last = await eventually(async () => {
      const row = (await net.ask<PeerInfo[]>({ type: "peers" })).find((p) => p.key === key);
      return row?.version === `v${HELLOS}` ? row : undefined;
    }, "the last hello taken");
    assert.deepEqual(last.roles, ["storage", "inference"]);
    assert.equal(nodeSide.stats().refused, 0, `${nodeSide.stats().refused} hellos refused`);
    assert.equal(nodeSide.isClosed, false);
    await Promise.all([peer.close(), nodeSide.close()]);
  } finally {
    await system.shutdown();
  }
});
