/**
 * A node on hand-moved timers and peers attached to it over in-memory duplexes, each signing its
 * own hellos with a rising `seq`: the setting of the hello pace tests (`hello_pace_test.ts`,
 * `hello_pace_jitter_test.ts`).
 *
 * @module
 */
import type { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { PeerChanges } from "../../network/peer_changes.ts";
import { Connection, type ConnectionOptions } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { PEER_PROTOCOL, type PeerHelloBody, signPeerHello } from "../../protocols/peer_hello.ts";
import { ManualTimers } from "../protocols/_helpers.ts";

/** Connection timing both ends use besides the hand-moved timers (default: the defaults). */
export type HelloPaceTiming = Pick<ConnectionOptions, "idleTimeoutMs" | "keepaliveMs">;

/** A node on hand-moved timers, its peer-table changes counted per peer key. */
export async function node(system: ActorSystem, timing: HelloPaceTiming = {}) {
  const timers = new ManualTimers();
  const changes = new PeerChanges();
  const updated = new Map<string, number>();
  changes.subscribe((c) => {
    if (c.type === "updated") updated.set(c.peer.key, (updated.get(c.peer.key) ?? 0) + 1);
  });
  const net = await system.spawn<NetworkMessage>({
    name: "n/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        services: {},
        peerChanges: changes,
        now: () => timers.now(),
        connection: { timers, ...timing },
      }),
  });
  const row = async (key: string) =>
    (await net.ask<PeerInfo[]>({ type: "peers" })).find((p) => p.key === key);
  return { net, timers, updated, row };
}

/**
 * A peer attached to `net`: its own end of the connection, and the node's; `hello` signs its next
 * hello (`seq` one more than the last, version `v<seq>`), `body` overriding what it says.
 */
export async function peerOf(
  net: Awaited<ReturnType<typeof node>>["net"],
  timers: ManualTimers,
  timing: HelloPaceTiming = {},
) {
  const identity = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const [nodeSide, peer] = await Promise.all([
    net.ask<Connection>({ type: "attach", duplex: a, address: "mem", outbound: false }),
    Connection.open(b, { identity, protocols: [PEER_PROTOCOL], timers, ...timing }),
  ]);
  let seq = 0;
  const hello = (body: Partial<PeerHelloBody> = {}) =>
    signPeerHello(
      identity,
      {
        version: `v${seq + 1}`,
        roles: ["storage"],
        models: [],
        ...body,
      },
      ++seq,
      0,
    );
  return { key: toHex(identity.publicKey), nodeSide, peer, hello };
}
