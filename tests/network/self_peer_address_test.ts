/**
 * Review s78 F3: one peer list copied to every node names each node's own address. A node whose
 * `--peer` reached its own listener dialled itself for as long as it ran (`the peer claims our own
 * key`), and `/healthz` said `degraded` (`peer_unreachable`), `veriflow_static_peer_up` 0, though
 * nothing was wrong. The dial now stops at the first answer with our own key on our own listener:
 * the address is marked `self`, said once, and left out of the health conditions and the metric.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  NetworkActor,
  type NetworkMessage,
  type StaticPeerState,
} from "../../network/network_actor.ts";
import { peerConditions } from "../../network/peer_conditions.ts";
import { Identity } from "../../protocols/identity.ts";
import { parsePrometheusText } from "../server/_prometheus_text.ts";
import { delay, eventually } from "../_helpers/wait.ts";
import { firstHeartbeat } from "../node/_first_heartbeat.ts";
import { metricsOver } from "../node/_network_metrics.ts";

/** A free port on 127.0.0.1 (taken, then given back). */
function freePort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

/**
 * Long enough for many redials at `redialMs: 1` (the unfixed loop redialled within a few ms, its
 * backoff doubling from 1 ms): a window to see none come, not a deadline anything races.
 */
const QUIET_WINDOW_MS = 150;

Deno.test("a --peer that is this node's own address is dialled once, marked self and said once; the other peer connects; health and /metrics leave it out", async () => {
  const own = { hostname: "127.0.0.1", port: freePort() };
  const other = { hostname: "127.0.0.1", port: freePort() };
  const ownText = `${own.hostname}:${own.port}`;
  const otherText = `${other.hostname}:${other.port}`;
  const system = new ActorSystem({ name: "s78-self-peer" });
  const otherSystem = new ActorSystem({ name: "s78-self-peer-other" });
  const lines: string[] = [];
  try {
    await otherSystem.spawn<NetworkMessage>({
      name: "o/network",
      factory: () =>
        new NetworkActor({ identity: Identity.generate(), services: {}, listen: other }),
    });
    // One list for every node: the other node's address and this node's own.
    const network = await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () =>
        new NetworkActor({
          identity: Identity.generate(),
          services: {},
          listen: own,
          peers: [other, own],
          redialMs: 1,
          log: (line) => lines.push(line),
        }),
    });
    const states = () => network.ask<StaticPeerState[]>({ type: "static_peers" });
    const settled = await eventually(async () => {
      const all = await states();
      return all.every((s) => s.up || s.self) ? all : undefined;
    }, "the other peer up and the own address marked self");
    await delay(QUIET_WINDOW_MS);
    const [otherState, ownState] = await states();
    assert.deepEqual(settled.map((s) => s.address), [otherText, ownText]);
    assert.equal(otherState.up, true);
    assert.equal(ownState.self, true);
    assert.equal(ownState.up, false);
    assert.equal(ownState.failures, 0, "not counted as failed dials");
    assert.equal(ownState.lastError, undefined);
    const said = lines.filter((l) => l.includes(`${ownText} is this node itself`));
    assert.equal(said.length, 1, lines.join("\n"));
    assert.ok(!lines.some((l) => l.includes(`peer ${ownText}: `)), lines.join("\n"));
    // The listener's side of that one dial, once: not a line per redial.
    const refused = lines.filter((l) =>
      l.includes("handshake failed: the peer claims our own key")
    );
    assert.equal(refused.length, 1, lines.join("\n"));
    // /healthz's conditions: none.
    assert.deepEqual(await peerConditions(network), []);
    // /metrics: the other peer's static_peer_up only.
    const up = parsePrometheusText(await metricsOver(network).render())
      .filter((s) => s.name === "veriflow_static_peer_up");
    assert.deepEqual(up.map((s) => [s.labels.address, s.value]), [[otherText, 1]]);
    // The heartbeat: one peer, nothing unreachable.
    const text = await firstHeartbeat(network);
    assert.match(text, /peers 1 \(workers 0\)/, text);
    assert.doesNotMatch(text, /cannot be reached/, text);
  } finally {
    await system.shutdown();
    await otherSystem.shutdown();
  }
});
