/**
 * The first line of a node's heartbeat (`node/heartbeat.ts`) over a network actor alone (no
 * prover, no validator, no port), for the tests that read what it says of the peers
 * (`peer_count_by_key_test.ts`, `node_metrics_test.ts`, `../network/self_peer_address_test.ts`).
 *
 * @module
 */
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { startHeartbeat } from "../../node/heartbeat.ts";

/** A beat every ms: the first line comes at once, and the heartbeat is stopped after it. */
const EVERY_MS = 1;

/** The first line a heartbeat over `network` logs; the heartbeat is stopped once it has. */
export async function firstHeartbeat(network: ActorRef<NetworkMessage>): Promise<string> {
  const logged = Promise.withResolvers<string>();
  const heartbeat = startHeartbeat({
    everyMs: EVERY_MS,
    publicKey: new Uint8Array(32),
    validator: () => undefined,
    network: () => network,
    log: (line) => logged.resolve(line),
  });
  try {
    return await logged.promise;
  } finally {
    heartbeat.stop();
  }
}
