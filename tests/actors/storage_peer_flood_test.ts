/**
 * One storage peer's flood of chunk-reading requests (`prove`, `get_chunk`) must not make an
 * honest holder miss another auditor's deadline. Answered inside the StorageActor's mailbox, a
 * hostile key's proves queued in front of the auditor's challenge, and the holder was signed
 * `invalid/no_response` (review s71, finding 3: 400 proves of 64 chunks past the default 30 s).
 * Now they run outside the mailbox, at most a few per asking key at once, the rest refused
 * `busy`, so the auditor's challenge (its own key) is answered beside the flood.
 *
 * The flood's reads are held open (the store's `afterRead` hook) until the audit is over, so the
 * flood outlasts any deadline whatever the machine's speed: before the fix the audit could never
 * be answered in time, after it nothing of the audit waits for the flood.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import { StorageActorPeer } from "../../actors/storage_actor_peer.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import {
  MAX_PEER_CHUNK_READS_IN_FLIGHT,
  MAX_PEER_PROVES_IN_FLIGHT,
  MAX_STRANGER_PROVES_IN_FLIGHT,
} from "../../actors/_peer_request_budget.ts";
import { storageKey } from "../../protocols/cid.ts";
import { Connection } from "../../protocols/connection.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { STORAGE_PROTOCOL } from "../../protocols/storage_messages.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import { ConnectionStoragePeer, serveStoragePeer } from "../../storage/connection_storage_peer.ts";
import type { StoragePeer } from "../../storage/storage_peer.ts";
import { cidOfAsync } from "../../storage/_hash.ts";
import { eventually } from "../_helpers/wait.ts";

/** Small chunks: the test is about order and bounds, not bytes. */
const CHUNK_BYTES = 1024;
/** Chunks only the flood names (their reads are held open) and chunks the auditor samples. */
const FLOOD_CHUNKS = 4;
const AUDITED_CHUNKS = 4;
/**
 * The auditor's deadline. Not raced: with the fix the challenge is answered in milliseconds;
 * without it, it waits behind a read held open until after the audit, so it can never make it.
 */
const AUDIT_DEADLINE_MS = 2_000;
/** Requests past the budget the flood sends, each to be refused at once. */
const PAST_BUDGET = 5;

type Flood = "prove" | "get_chunk";

/**
 * How the askers reach the holder: `actor`, its StorageActor's ref with the asker's key as
 * `from` (what `serveStoragePeer` passes); `wire`, each asker on its own connection whose
 * handshake proves its key, served by `serveStoragePeer`, as on a network.
 */
type Via = "actor" | "wire";

/** The holder as `asker` reaches it, and how to hang up. */
async function askerView(
  via: Via,
  holder: StorageActorPeer,
  ref: { ask<R>(message: StorageMessage, options?: { signal?: AbortSignal }): Promise<R> },
  holderIdentity: Identity,
  asker: Identity,
): Promise<{ peer: StoragePeer; close(): Promise<void> }> {
  if (via === "actor") {
    const from = toHex(asker.publicKey);
    const peer: StoragePeer = {
      id: holder.id,
      publicKey: holder.publicKey,
      putChunk: (cid, bytes, options) => holder.putChunk(cid, bytes, options),
      getChunk: (cid, options) => holder.getChunk(cid, { ...options, from }),
      hasChunk: (cid, options) => holder.hasChunk(cid, options),
      proveChunks: (nonce, cids, options) => holder.proveChunks(nonce, cids, { ...options, from }),
    };
    return { peer, close: () => Promise.resolve() };
  }
  const [a, b] = memoryDuplexPair();
  const [client, server] = await Promise.all([
    Connection.open(a, { identity: asker, protocols: [STORAGE_PROTOCOL] }),
    Connection.open(b, { identity: holderIdentity, protocols: [STORAGE_PROTOCOL] }),
  ]);
  serveStoragePeer(server, new StorageActorPeer(ref, asker.publicKey));
  return {
    peer: new ConnectionStoragePeer(client, holderIdentity.publicKey),
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}

/**
 * Flood the holder with `budget` + {@link PAST_BUDGET} `flood` requests from each of `keys` keys
 * that gave it nothing, their reads held open, audit it meanwhile from the key that gave it its
 * chunks and assert it passed; then let the flood go. Returns the flood's refusals' codes, how
 * many were answered and how many reads were held at once.
 */
async function floodedAudit(flood: Flood, budget: number, via: Via = "actor", keys = 1) {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: `flood-${flood}-${via}` });
  const hangUps: (() => Promise<void>)[] = [];
  const identity = Identity.generate();
  let held = false;
  let openGate!: () => void;
  const gate = new Promise<void>((resolve) => openGate = resolve);
  const flooded = new Set<string>();
  let heldReads = 0;
  const ref = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () =>
      new StorageActor({
        dir,
        identity,
        store: {
          durable: false,
          faults: {
            afterRead: async (cid) => {
              if (!held || !flooded.has(storageKey(cid))) return;
              heldReads++;
              await gate;
            },
          },
        },
      }),
  });
  try {
    const holder = new StorageActorPeer(ref, identity.publicKey);
    // The owner: it placed the chunks here, and audits them.
    const owner = Identity.generate();
    const giver = toHex(owner.publicKey);
    const chunks = new Map<string, Uint8Array>();
    const floodCids: string[] = [];
    const auditedCids: string[] = [];
    for (let i = 0; i < FLOOD_CHUNKS + AUDITED_CHUNKS; i++) {
      const bytes = crypto.getRandomValues(new Uint8Array(CHUNK_BYTES));
      const cid = await cidOfAsync(bytes);
      await holder.putChunk(cid, bytes, { from: giver }); // held for the network
      chunks.set(cid, bytes);
      (i < FLOOD_CHUNKS ? floodCids : auditedCids).push(cid);
      if (i < FLOOD_CHUNKS) flooded.add(storageKey(cid));
    }
    held = true;

    // The flood: fresh keys, their requests not awaited (in flight, as on a connection).
    const refused: string[] = [];
    const answered: unknown[] = [];
    const requests: Promise<void>[] = [];
    for (let k = 0; k < keys; k++) {
      const attacker = await askerView(via, holder, ref, identity, Identity.generate());
      hangUps.push(attacker.close);
      requests.push(...Array.from({ length: budget + PAST_BUDGET }, (_, i) => {
        const cid = floodCids[i % FLOOD_CHUNKS];
        const request = flood === "prove"
          ? attacker.peer.proveChunks(crypto.getRandomValues(new Uint8Array(32)), [cid])
          : attacker.peer.getChunk(cid);
        return request.then(
          (value) => void answered.push(value),
          (error) => void refused.push(error instanceof VeriflowError ? error.code : String(error)),
        );
      }));
    }

    // The honest auditor's round right after, asking with its own key (the one that gave the
    // holder these chunks).
    const auditor = await askerView(via, holder, ref, identity, owner);
    hangUps.push(auditor.close);
    const verdicts: string[] = [];
    const auditing = new StorageAuditor({
      identity: Identity.generate(),
      reference: (cid) => Promise.resolve(chunks.get(cid)!),
      sampleSize: AUDITED_CHUNKS,
      timeoutMs: AUDIT_DEADLINE_MS,
      onVerdict: (v) => void verdicts.push(`${v.outcome}/${v.reason}`),
    });
    const result = await auditing.audit(auditor.peer, auditedCids);
    // First what the review saw: no `no_response` verdict against the honest holder.
    assert.deepEqual(
      { passed: result.passed, failures: result.failures.map((f) => f.reason), verdicts },
      { passed: true, failures: [], verdicts: [] },
    );
    // The requests past the flooder's budget were refused without being read, and the admitted
    // ones all reached their reads at once (queued, not all of them could while the reads are held).
    const admitted = flood === "prove"
      ? Math.min(budget * keys, MAX_STRANGER_PROVES_IN_FLIGHT)
      : budget * keys;
    const pastBudget = (budget + PAST_BUDGET) * keys - admitted;
    await eventually(() => refused.length === pastBudget, "the flood's requests past its budget");
    await eventually(() => heldReads >= admitted, `${admitted} of the flood's reads held at once`);
    const readsWhileHeld = heldReads;
    openGate();
    await Promise.all(requests);
    return { refused, answered: answered.length, readsWhileHeld };
  } finally {
    openGate();
    for (const hangUp of hangUps) await hangUp();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("storage peer flood: an honest holder passes another key's audit while one key floods prove", async () => {
  const { refused, answered, readsWhileHeld } = await floodedAudit(
    "prove",
    MAX_PEER_PROVES_IN_FLIGHT,
  );
  assert.deepEqual(refused, Array(PAST_BUDGET).fill("busy"));
  assert.equal(answered, MAX_PEER_PROVES_IN_FLIGHT); // the admitted ones, once let go
  assert.equal(readsWhileHeld, MAX_PEER_PROVES_IN_FLIGHT); // all ran at once, none queued
});

Deno.test("storage peer flood: an honest holder passes another key's audit while one key floods get_chunk", async () => {
  const { refused, answered, readsWhileHeld } = await floodedAudit(
    "get_chunk",
    MAX_PEER_CHUNK_READS_IN_FLIGHT,
  );
  assert.deepEqual(refused, Array(PAST_BUDGET).fill("busy"));
  assert.equal(answered, MAX_PEER_CHUNK_READS_IN_FLIGHT);
  assert.equal(readsWhileHeld, MAX_PEER_CHUNK_READS_IN_FLIGHT);
});

Deno.test("storage peer flood: over authenticated connections, the flooding key is refused busy and the auditor's key passes", async () => {
  const { refused, answered, readsWhileHeld } = await floodedAudit(
    "prove",
    MAX_PEER_PROVES_IN_FLIGHT,
    "wire",
  );
  assert.deepEqual(refused, Array(PAST_BUDGET).fill("busy")); // the remote code, as sent
  assert.equal(answered, MAX_PEER_PROVES_IN_FLIGHT);
  assert.equal(readsWhileHeld, MAX_PEER_PROVES_IN_FLIGHT);
});

Deno.test("storage peer flood: 32 keys that gave the holder nothing share one lane of 8 proves, and the owner's audit passes beside them (review s81 vaudit2, F2)", async () => {
  const keys = 32;
  const { refused, answered, readsWhileHeld } = await floodedAudit(
    "prove",
    MAX_PEER_PROVES_IN_FLIGHT,
    "actor",
    keys,
  );
  // Work, not time: of 32 × 13 proves asked at once, 8 read (and held), the rest refused at once.
  assert.equal(readsWhileHeld, MAX_STRANGER_PROVES_IN_FLIGHT);
  assert.equal(answered, MAX_STRANGER_PROVES_IN_FLIGHT);
  assert.equal(refused.length, keys * (MAX_PEER_PROVES_IN_FLIGHT + PAST_BUDGET) - answered);
  assert.ok(refused.every((code) => code === "busy"));
});
