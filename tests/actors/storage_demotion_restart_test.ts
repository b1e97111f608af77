/**
 * A holder this node's audits demoted stays demoted across a restart of the node (stop 75 left
 * it open: the demotion lived in the StorageActor's memory only, so a holder that had failed its
 * audits in three rounds was given its share of the very next put after a restart). The demotion
 * is kept in `<store>/audit-penalties.json` (`storage/audit_penalties.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { StorageActor, type StorageActorOptions } from "../../actors/storage_actor.ts";
import {
  type AuditRoundHandle,
  type PutHandle,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { DEMOTION_ROUNDS } from "../../storage/replicated_store.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { MemoryPeer } from "../storage/_memory_peer.ts";

/** Chunk size of the test files: small, so a file is many chunks. */
const CHUNK = 1024;

/** A holder that counts the copies it is sent and, once told, keeps none of them. */
class Cheat extends MemoryPeer {
  /** Copies it was sent, by storage key. */
  readonly sent: string[] = [];
  keepsNothing = false;

  override putChunk(cid: string, bytes: Uint8Array, options?: PeerCallOptions): Promise<void> {
    this.sent.push(storageKey(cid));
    return this.keepsNothing ? Promise.resolve() : super.putChunk(cid, bytes, options);
  }
}

/** A node's StorageActor over `peers` in `dir`, started. */
async function startNode(options: StorageActorOptions): Promise<StorageActor> {
  const actor = new StorageActor(options);
  await actor.preStart();
  return actor;
}

async function put(actor: StorageActor, size: number, seed: number): Promise<string> {
  const handle = await actor.receive({
    type: "put",
    source: streamOf(pseudoRandomBytes(size, seed)),
  }) as PutHandle;
  return (await handle.done).cid;
}

async function round(actor: StorageActor): Promise<void> {
  await unwrapReply<AuditRoundHandle>(await actor.receive({ type: "audit_round" })).done;
}

/** A node over three honest holders and a cheat, and the cheat demoted by three failed rounds. */
async function demotedCheat(log?: (line: string) => void) {
  const dir = await Deno.makeTempDir();
  const cheat = new Cheat();
  const peers = [new MemoryPeer(), new MemoryPeer(), new MemoryPeer(), cheat];
  const verdicts: Verdict[] = [];
  const options: StorageActorOptions = {
    dir,
    chunkSize: CHUNK,
    store: { durable: false },
    peers,
    replication: { replicas: 2, writeQuorum: 2 },
    identity: Identity.generate(),
    onVerdict: (v) => {
      verdicts.push(v);
    },
    log,
  };
  const actor = await startNode(options);
  try {
    await put(actor, 48 * CHUNK, 1);
    cheat.keepsNothing = true;
    cheat.chunks.clear();
    // Three rounds with a failure each: a new file before each (the first failure's sweep
    // re-places all it was given, so it fails again only on what it is given after).
    const cheatVerdicts = () => verdicts.filter((v) => toHex(v.target) === cheat.id).length;
    for (let seed = 2; seed < 5; seed++) {
      if (seed > 2) await put(actor, 24 * CHUNK, seed);
      const before = cheatVerdicts();
      await round(actor);
      assert.ok(cheatVerdicts() > before, "it fails in each round");
    }
  } catch (error) {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  /** Copies sent to the cheat by a put of a new file. */
  const sentByPut = async (node: StorageActor, seed: number) => {
    const before = cheat.sent.length;
    await put(node, 24 * CHUNK, seed);
    return cheat.sent.slice(before);
  };
  return { dir, options, actor, sentByPut };
}

Deno.test("a holder demoted by this node's audits is given none of a new file after the node restarts", async () => {
  const { dir, options, actor: first, sentByPut } = await demotedCheat();
  let actor = first;
  try {
    await actor.postStop();
    actor = await startNode(options); // the node restarts over the same directory

    assert.deepEqual(
      await sentByPut(actor, 10),
      [],
      "the demoted holder was given its share of a new file after the restart",
    );
  } finally {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a demotion ends after its rounds, counted across a restart: the rounds before it and after it add up, the time down adds none", async () => {
  const { dir, options, actor: first, sentByPut } = await demotedCheat();
  let actor = first;
  try {
    // Its last strike was in round 2 (rounds 0, 1 and 2 failed; 3 rounds ended): placed last
    // until DEMOTION_ROUNDS rounds after that one have ended.
    const left = DEMOTION_ROUNDS - 1;
    const before = 50;
    for (let i = 0; i < before; i++) await round(actor);
    await actor.postStop();
    actor = await startNode(options);
    for (let i = 0; i < left - before; i++) await round(actor);
    assert.deepEqual(await sentByPut(actor, 10), [], "still demoted in its last round");
    await round(actor);
    assert.notDeepEqual(await sentByPut(actor, 11), [], "given its share once its rounds ended");
  } finally {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a damaged penalties file is set aside, said in the log, and the node starts with no penalty", async () => {
  const lines: string[] = [];
  const { dir, options, actor: first, sentByPut } = await demotedCheat((l) => lines.push(l));
  let actor = first;
  try {
    await actor.postStop();
    const path = join(dir, "audit-penalties.json");
    const bytes = await Deno.readFile(path);
    bytes[bytes.length >> 1] ^= 0x01; // one bit of the state flipped
    await Deno.writeFile(path, bytes);
    actor = await startNode(options);
    const said = lines.filter((l) =>
      l.includes("audit-penalties.json") && l.includes("set it aside")
    );
    assert.equal(said.length, 1, lines.join("\n"));
    const aside = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name)
      .filter((name) => name.startsWith("audit-penalties.json.rejected-"));
    assert.equal(aside.length, 1, "the damaged file kept aside, once");
    assert.deepEqual(await Deno.readFile(join(dir, aside[0])), bytes, "set aside untouched");
    // Not trusted: the holder is judged afresh, in rank, until it fails again.
    assert.notDeepEqual(await sentByPut(actor, 10), []);
  } finally {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  }
});
