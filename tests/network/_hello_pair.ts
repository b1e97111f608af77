/**
 * Two NetworkActors A and B joined by an in-memory duplex, B sending hellos from `describe`: the
 * setting of the hello tests. A's log lines are kept.
 *
 * @module
 */
import type { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import type { PeerHelloBody } from "../../protocols/peer_hello.ts";

/** A and B in `system`, connected; B describes itself with `describe` every `helloIntervalMs`. */
export async function helloPair(
  system: ActorSystem,
  describe: () => Promise<PeerHelloBody>,
  helloIntervalMs: number,
) {
  const [a, b] = [Identity.generate(), Identity.generate()];
  const lines: string[] = [];
  const na = await system.spawn<NetworkMessage>({
    name: "a/network",
    factory: () => new NetworkActor({ identity: a, services: {}, log: (l) => lines.push(l) }),
  });
  const nb = await system.spawn<NetworkMessage>({
    name: "b/network",
    factory: () => new NetworkActor({ identity: b, services: {}, describe, helloIntervalMs }),
  });
  const [da, db] = memoryDuplexPair();
  const [toB] = await Promise.all([
    na.ask<Connection>({ type: "attach", duplex: da, address: "mem:b", outbound: true }),
    nb.ask<Connection>({ type: "attach", duplex: db, address: "mem:a", outbound: false }),
  ]);
  return { a, b, na, nb, toB, lines };
}
