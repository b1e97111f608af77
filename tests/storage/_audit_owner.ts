/**
 * An owner node for the storage audit tests: fixed identities, a `StorageActor` that holds here
 * and audits only when asked (`audit_round`), what another node's key reaches of it over a
 * connection, its audit rounds run one after another, and temporary directories removed after.
 *
 * @module
 */
import type { StorageActor } from "../../actors/storage_actor.ts";
import { StorageActorPeer } from "../../actors/storage_actor_peer.ts";
import {
  type AuditRoundHandle,
  type PutHandle,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { STORAGE_PROTOCOL } from "../../protocols/storage_messages.ts";
import type { AuditRoundReport } from "../../storage/audit_round.ts";
import { ConnectionStoragePeer, serveStoragePeer } from "../../storage/connection_storage_peer.ts";
import { streamOf } from "./_helpers.ts";

/** The chunk size of every node here. */
export const CHUNK = 1024;

/** A fixed identity per `n`: placements and rendezvous ranks are the same on every run. */
export const identityOf = (n: number): Identity =>
  Identity.fromSecretKey(new Uint8Array(32).fill(n));

/**
 * The options of a node `identity` in `dir`: chunks of {@link CHUNK}, a non-durable store,
 * holding here, writing `replicas` copies (all of them its quorum), auditing only when asked.
 */
export function auditNodeOptions(dir: string, identity: Identity, replicas: number) {
  return {
    dir,
    chunkSize: CHUNK,
    identity,
    store: { durable: false },
    holdHere: true,
    auditIntervalMs: 0,
    replication: { replicas, writeQuorum: replicas },
  };
}

/**
 * What a node reaches of `target` over a connection: its peer, the asker's end of the connection
 * (to send it messages as the peer would not), and the connection's close.
 */
export interface Reach {
  peer: ConnectionStoragePeer;
  client: Connection;
  close(): Promise<void>;
}

/** `target` served over a connection to the node with identity `asker`: what that key reaches. */
export async function reach(
  target: StorageActor,
  targetId: Identity,
  asker: Identity,
): Promise<Reach> {
  const [a, b] = memoryDuplexPair();
  const [client, server] = await Promise.all([
    Connection.open(a, { identity: asker, protocols: [STORAGE_PROTOCOL] }),
    Connection.open(b, { identity: targetId, protocols: [STORAGE_PROTOCOL] }),
  ]);
  const ref = { ask: (m: never) => target.receive(m) as never };
  serveStoragePeer(server, new StorageActorPeer(ref, asker.publicKey));
  return {
    peer: new ConnectionStoragePeer(client, targetId.publicKey),
    client,
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}

/** `bytes` put as a file on `actor`: its CID once the put is done. */
export async function putFile(actor: StorageActor, bytes: Uint8Array): Promise<string> {
  const handle = await actor.receive({ type: "put", source: streamOf(bytes) }) as PutHandle;
  return (await handle.done).cid;
}

/** `n` audit rounds of `actor`, each followed by its repairs: the rounds' reports. */
export async function auditRounds(actor: StorageActor, n: number): Promise<AuditRoundReport[]> {
  const rounds: AuditRoundReport[] = [];
  for (let i = 0; i < n; i++) {
    rounds.push(
      await unwrapReply<AuditRoundHandle>(await actor.receive({ type: "audit_round" })).done,
    );
    await actor.repairIdle();
  }
  return rounds;
}

/** Temporary directories made for one test, removed together at its end. */
export class TempDirs {
  readonly #dirs: string[] = [];
  /** @param prefix Each directory's name prefix. */
  constructor(readonly prefix?: string) {}
  /** A new empty directory. */
  async make(): Promise<string> {
    const dir = await Deno.makeTempDir({ prefix: this.prefix });
    this.#dirs.push(dir);
    return dir;
  }
  /** Remove every directory made. */
  async removeAll(): Promise<void> {
    for (const dir of this.#dirs) await Deno.remove(dir, { recursive: true });
  }
}
