/**
 * Review s61 (ops2, S5): `peer down KEY` named neither the address nor why. A peer killed and a
 * peer stopped gracefully both logged `peer down cfb2ea56c5f002b4` with nothing after it, so an
 * operator with several peers could not tell which `--peer` it was, or that the connection had
 * only closed. The line now carries the peer's address, and a reason (`connection closed` when
 * the connection recorded none).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";

Deno.test({
  name:
    "review s61 ops2: 'peer down' names the peer's address and why, when the peer goes away without a reason",
  sanitizeResources: false,
  fn: async () => {
    const b = new ActorSystem({ name: "review-s61-ops2-b" });
    const bIdentity = Identity.generate();
    const bNet = await b.spawn<NetworkMessage>({
      name: "b/network",
      factory: () =>
        new NetworkActor({
          identity: bIdentity,
          services: {},
          listen: { hostname: "127.0.0.1", port: 0 },
        }),
    });
    const { port } = await bNet.ask<Deno.NetAddr>({ type: "listening" });
    const lines: string[] = [];
    const a = new ActorSystem({ name: "review-s61-ops2-a" });
    const aNet = await a.spawn<NetworkMessage>({
      name: "a/network",
      factory: () =>
        new NetworkActor({
          identity: Identity.generate(),
          services: {},
          peers: [{ hostname: "127.0.0.1", port }],
          // Not redialled within the test: only the `peer down` line is looked at.
          redialMs: 60_000,
          log: (line) => lines.push(line),
        }),
    });
    const key = toHex(bIdentity.publicKey).slice(0, 16);
    try {
      await eventually(
        async () => (await aNet.ask<PeerInfo[]>({ type: "peers" })).length === 1 || undefined,
        "A connected to B",
      );
      await b.shutdown();
      const down = await eventually(
        () => lines.find((l) => l.startsWith("peer down")),
        "A's peer down line",
      );
      assert.match(down, new RegExp(`^peer down ${key} 127\\.0\\.0\\.1:${port}: \\S`));
      assert.match(down, /connection closed/);
    } finally {
      await a.shutdown();
      await b.shutdown().catch(() => {});
    }
  },
});
