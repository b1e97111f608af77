/**
 * Review s61 (ops2, S5): `peer down KEY` named neither the address nor why. A peer killed and a
 * peer stopped gracefully both logged `peer down cfb2ea56c5f002b4` with nothing after it, so an
 * operator with several peers could not tell which `--peer` it was, or that the connection had
 * only closed. The line now carries the peer's address, and a reason (`connection closed` when
 * the connection recorded none). B is a bare connection, not a node: a node stopped cleanly says
 * goodbye since review s62 (`peer KEY ADDR stopped (stopping)`), and this is the line of a peer that
 * went away without one (killed, or older than goodbyes).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Connection } from "../../protocols/connection.ts";
import { PEER_PROTOCOL } from "../../protocols/peer_hello.ts";
import { tcpDuplex } from "../../protocols/tcp_transport.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";

Deno.test({
  name:
    "review s61 ops2: 'peer down' names the peer's address and why, when the peer goes away without a reason",
  sanitizeResources: false,
  fn: async () => {
    // B: a bare connection on a TCP listener that speaks only the peer protocol (no goodbye).
    const bIdentity = Identity.generate();
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr as Deno.NetAddr;
    const bConnection = (async () => {
      const conn = await listener.accept();
      return await Connection.open(tcpDuplex(conn), {
        identity: bIdentity,
        protocols: [PEER_PROTOCOL],
      });
    })();
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
      await (await bConnection).close();
      const down = await eventually(
        () => lines.find((l) => l.startsWith("peer down")),
        "A's peer down line",
      );
      assert.match(down, new RegExp(`^peer down ${key} 127\\.0\\.0\\.1:${port}: \\S`));
      assert.match(down, /connection closed/);
    } finally {
      listener.close();
      await a.shutdown();
      await (await bConnection.catch(() => undefined))?.close();
    }
  },
});
