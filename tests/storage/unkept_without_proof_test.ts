/**
 * "Unkept" counts only next to a proof of the bytes (review s82 vstore, F2). A holder names a chunk
 * unkept when it proves it but keeps it for no one on the asker's behalf; before, a placement check
 * forgot the given record on the word alone, so a holder that dropped what it was given answered
 * one check with `null` and the word, and escaped every audit of those chunks. Now a word with no
 * proof (or a wrong one) is dropped, on the wire and in the repair, and the chunk is judged as any
 * missing one. A valid unkept proof of a pair the record counts as given is the holder's admitted
 * loss: the pair is forgotten, the holder placed last for the chunk (no strike) and the copy goes to
 * the next peer, once, instead of being re-sent to the holder on every pass.
 */
import assert from "node:assert/strict";
import { unwrapReply } from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  type ProveBody,
  ProveMessage,
  STORAGE_PROTOCOL,
} from "../../protocols/storage_messages.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { ConnectionStoragePeer } from "../../storage/connection_storage_peer.ts";
import { GIVEN_CHUNKS_FILE, GivenChunks } from "../../storage/given_chunks.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import type { RepairReport } from "../../storage/replicated_store.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { auditRounds, CHUNK, identityOf, putFile, TempDirs } from "./_audit_owner.ts";
import { auditOwner, chunksOf, givenTo, MemoryHolder, reasonsAgainst } from "./_unkept_fixture.ts";

/** An owner of a 16-chunk file, writing `replicas` copies: its verdicts and record. */
async function owner(dirs: TempDirs, replicas: number, seed: number) {
  const dir = await dirs.make();
  const verdicts: Verdict[] = [];
  const actor = auditOwner(dir, identityOf(1), replicas, verdicts);
  return { dir, actor, verdicts, bytes: pseudoRandomBytes(16 * CHUNK, seed) };
}

Deno.test("storage.proofs: an index named unkept next to a null proof does not reach the asker, and the asker says it reads unkept only where it does", async () => {
  const [a, b] = memoryDuplexPair();
  const [client, server] = await Promise.all([
    Connection.open(a, { identity: identityOf(1), protocols: [STORAGE_PROTOCOL] }),
    Connection.open(b, { identity: identityOf(2), protocols: [STORAGE_PROTOCOL] }),
  ]);
  const asked: ProveBody[] = [];
  server.handle(ProveMessage, (body) => {
    asked.push(body);
    return Promise.resolve({ proofs: [null, new Uint8Array(32)], unkept: [0, 1] });
  });
  const peer = new ConnectionStoragePeer(client, identityOf(2).publicKey);
  const cids = [
    "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
  ];
  try {
    let named: readonly string[] = [];
    await peer.proveChunks(new Uint8Array(32), cids, { onUnkept: (c) => void (named = c) });
    assert.deepEqual(named, [cids[1]], "only the chunk with a proof is named unkept");
    await peer.proveChunks(new Uint8Array(32), cids);
    assert.deepEqual(asked.map((body) => body.unkept), [true, undefined]);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("a holder that dropped the chunks it was given and answers a placement check with null, naming them unkept, keeps its record and is judged missing_chunk", async () => {
  const dirs = new TempDirs("unkept_null_");
  const o = await owner(dirs, 2, 9);
  await o.actor.preStart();
  const h = new MemoryHolder(identityOf(2).publicKey, { takesCopies: true, namesUnkept: "none" });
  const n = new MemoryHolder(identityOf(3).publicKey, { takesCopies: true, namesUnkept: "none" });
  let givenBefore: string[] = [];
  let givenAfter: string[] = [];
  try {
    await putFile(o.actor, o.bytes);
    unwrapReply(await o.actor.receive({ type: "set_peers", peers: [h, n] }));
    unwrapReply(await o.actor.receive({ type: "repair" }));
    await o.actor.repairIdle();
    givenBefore = await givenTo(o.dir, h);
    // H drops every copy it was given, refuses new ones, and names whatever it is asked unkept.
    h.chunks.clear();
    h.mode = { takesCopies: false, namesUnkept: "all" };
    unwrapReply(await o.actor.receive({ type: "repair" }));
    await o.actor.repairIdle();
    givenAfter = await givenTo(o.dir, h);
    await auditRounds(o.actor, 6);
  } finally {
    await o.actor.repairIdle();
    await o.actor.postStop();
    await dirs.removeAll();
  }
  assert.ok(givenBefore.length > 0);
  assert.deepEqual(givenAfter, givenBefore, "the word unkept with no proof erased the record");
  const against = reasonsAgainst(o.verdicts, h);
  assert.ok(against.length > 0, "a holder that lost what it was given is never judged for it");
  assert.ok(against.every((reason) => reason === "missing_chunk"), `${against}`);
  assert.deepEqual(reasonsAgainst(o.verdicts, n), []);
  assert.equal(n.chunks.size, 17, "every chunk (16 and the manifest) has its copy on N");
});

Deno.test("a holder that takes every copy and names every proof unkept sheds the copies once: forgotten, placed last, not re-sent on each pass", async () => {
  const dirs = new TempDirs("unkept_liar_");
  const o = await owner(dirs, 2, 7);
  await o.actor.preStart();
  const h = new MemoryHolder(identityOf(2).publicKey, { takesCopies: true, namesUnkept: "all" });
  const n = new MemoryHolder(identityOf(3).publicKey, { takesCopies: true, namesUnkept: "none" });
  const putsPerPass: number[] = [];
  const reports: RepairReport[] = [];
  let placedOnH = 0;
  let givenToH: string[] = [];
  try {
    await putFile(o.actor, o.bytes);
    unwrapReply(await o.actor.receive({ type: "set_peers", peers: [h, n] }));
    await o.actor.repairIdle();
    placedOnH = h.puts;
    for (let i = 0; i < 3; i++) {
      const before = h.puts;
      reports.push(unwrapReply<RepairReport>(await o.actor.receive({ type: "repair" })));
      await o.actor.repairIdle();
      putsPerPass.push(h.puts - before);
    }
    givenToH = await givenTo(o.dir, h);
    h.chunks.clear();
    await auditRounds(o.actor, 3);
  } finally {
    await o.actor.repairIdle();
    await o.actor.postStop();
    await dirs.removeAll();
  }
  assert.ok(placedOnH > 0, "H was placed copies when it joined");
  assert.deepEqual(putsPerPass, [0, 0, 0], "H is sent again every copy it named unkept");
  assert.deepEqual(givenToH, [], "the owner counts on copies H said it keeps for no one");
  assert.equal(n.chunks.size, 17);
  // Shed, not struck: no verdict when it drops them (the owner counts none on it).
  assert.deepEqual(reasonsAgainst(o.verdicts, h), []);
});

Deno.test("a valid unkept proof of a pair the record counts as given, in a repair: forgotten as an admitted loss, the holder placed last and the copy on the next peer in the same pass", async () => {
  const dirs = new TempDirs("unkept_admitted_");
  const o = await owner(dirs, 2, 13);
  await o.actor.preStart();
  const h = new MemoryHolder(identityOf(2).publicKey, { takesCopies: false, namesUnkept: "all" });
  const others = [3, 4, 5, 6].map((i) =>
    new MemoryHolder(identityOf(i).publicKey, { takesCopies: true, namesUnkept: "none" })
  );
  let secondPass: RepairReport | undefined;
  let provesToHInSecondPass = -1;
  let givenToH: string[] = [];
  let askedH: string[] = [];
  let keys: string[] = [];
  try {
    const file = await putFile(o.actor, o.bytes);
    const chunks = await chunksOf(o.actor, file);
    keys = [file, ...chunks].map(storageKey);
    // H holds every chunk (its own file's) and the record counts them as given to it, as older
    // code recorded such a proof.
    for (const cid of [file, ...chunks]) {
      h.chunks.set(
        storageKey(cid),
        unwrapReply<Uint8Array>(
          await o.actor.receive({ type: "get_block", cid, local: true } as never),
        ),
      );
    }
    const seeded = await GivenChunks.open(`${o.dir}/${GIVEN_CHUNKS_FILE}`);
    for (const key of keys) seeded.add(h.id, key);
    await seeded.close();
    await o.actor.postStop(); // restarted on the seeded record
    o.actor = auditOwner(o.dir, identityOf(1), 2, o.verdicts);
    await o.actor.preStart();
    unwrapReply(await o.actor.receive({ type: "set_peers", peers: [h, ...others] }));
    unwrapReply(await o.actor.receive({ type: "repair" }));
    await o.actor.repairIdle();
    askedH = [...h.asked];
    givenToH = await givenTo(o.dir, h);
    const before = h.proves;
    secondPass = unwrapReply<RepairReport>(await o.actor.receive({ type: "repair" }));
    await o.actor.repairIdle();
    provesToHInSecondPass = h.proves - before;
  } finally {
    await o.actor.repairIdle();
    await o.actor.postStop();
    await dirs.removeAll();
  }
  // Those it ranks among the holders of (r = 2 of the owner and 5 peers) are checked by the pass.
  assert.ok(askedH.length > 0 && askedH.length < keys.length, `${askedH.length}`);
  assert.deepEqual(
    givenToH.filter((key) => askedH.includes(key)),
    [],
    "the owner still counts H's own-file chunks as its copies",
  );
  assert.equal(provesToHInSecondPass, 0, "H kept its place for chunks it holds no copy of");
  assert.equal(secondPass?.repaired, 0, "the first pass left copies short or misplaced");
  assert.equal(secondPass?.failedChecks, 0);
  assert.deepEqual(o.verdicts, []);
  // Each chunk's copies are on its first 2 in rank with H past them, no more and no fewer.
  const self = { id: toHex(identityOf(1).publicKey) };
  for (const key of keys) {
    const holders = rankPeers(key, [h, ...others, self]).filter((p) => p.id !== h.id)
      .slice(0, 2).map((p) => p.id);
    assert.deepEqual(
      others.filter((peer) => peer.chunks.has(key)).map((peer) => peer.id).sort(),
      holders.filter((id) => id !== self.id).sort(),
      key,
    );
  }
});
