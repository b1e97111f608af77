/**
 * Review (stop 52) of an audit round over a large file (`storage/audit_round.ts`): the round
 * gathered the blocks of the files it sampled with `chunks.push(...blocks)`, one argument per
 * block. Past about 125,000 blocks (a 32 GB file at 256 KiB chunks: a model's weights) that call
 * overflows the stack, the round counted the file as "not reached" and went on — every round, so
 * the holders of a large file were never challenged: one that dropped it kept its pay.
 *
 * And it planned in one go: ranking the peers for every block of the sampled files (a hash per
 * peer per block, for the audits, then again for the placement checks) without letting the event
 * loop turn — 20,000 blocks (a 5 GB file) among 10 peers held it for ~7 s here, every round, while
 * the node's HTTP, actors and token streams waited.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cidFromDigest, storageKey } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import { type AuditAssignment, runAuditRound } from "../../storage/audit_round.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { LocalStoragePeer, type StoragePeer } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";

/** Blocks of the large file: 200,000 (a 52 GB file at 256 KiB chunks). */
const BLOCKS = 200_000;

/**
 * `n` distinct well-formed raw CIDs, cheaply: a CID of a zero digest with 8 of its base32 digest
 * characters replaced by a counter (hashing or encoding 200,000 CIDs takes seconds).
 */
function cheapCids(n: number): string[] {
  const template = cidFromDigest(new Uint8Array(32));
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let counter = "";
    for (let k = 0, rest = i; k < 8; k++, rest = Math.floor(rest / 32)) {
      counter += alphabet[rest % 32];
    }
    out.push(template.slice(0, 10) + counter + template.slice(18));
  }
  return out;
}

Deno.test("an audit round over a file of 200,000 blocks audits its holder: one that dropped the file gets a missing_chunk verdict", async () => {
  const ownerDir = await Deno.makeTempDir();
  const holderDir = await Deno.makeTempDir();
  try {
    // The file's first blocks are real (the owner keeps them: the reference copies); the rest are
    // listed by the round, never read by it.
    const owner = await ChunkStore.open(ownerDir, { durable: false });
    const files = new FileStore(owner, { chunkSize: 1024 });
    const { cid: root } = await files.put(streamOf(pseudoRandomBytes(4 * 1024, 52)));
    const first = (await files.blocks(root)).map(storageKey);
    const blocks = [...first, ...cheapCids(BLOCKS - first.length)];
    // A holder that was given every block and has dropped them all.
    const holder = new LocalStoragePeer(
      await ChunkStore.open(holderDir, { durable: false }),
      Identity.generate().publicKey,
    );
    const verdicts: Verdict[] = [];
    const auditor = new StorageAuditor({
      identity: Identity.generate(),
      reference: (cid) => owner.get(cid), // verified
      onVerdict: (v) => void verdicts.push(v),
    });
    const repaired: string[] = [];
    const report = await runAuditRound({
      roots: [root],
      blocksOf: () => Promise.resolve(blocks),
      holders: () => [holder],
      wasGiven: () => true,
      randomBelow: () => 0, // the first blocks: the real ones
      audit: (peer, cids) => auditor.audit(peer, cids),
      repair: (cids) => {
        repaired.push(...cids);
        return Promise.resolve({ checked: cids.length, repaired: 0, lost: [], failedChecks: 0 });
      },
    });
    assert.equal(report.errors, 0, "the file was listed");
    assert.equal(report.files, 1);
    assert.equal(report.holders, 1, "its holder was audited");
    assert.equal(report.failedHolders, 1);
    assert.equal(verdicts.length, 1, "the holder that dropped the file pays");
    assert.equal(verdicts[0].reason, "missing_chunk");
    assert.deepEqual(verdicts[0].target, holder.publicKey);
    assert.ok(repaired.includes(storageKey(root)), "what it lost is repaired");
  } finally {
    await Deno.remove(ownerDir, { recursive: true });
    await Deno.remove(holderDir, { recursive: true });
  }
});

Deno.test("an audit round over 5,000 blocks among 10 peers ranks each block once, and lets the event loop turn while it plans", async () => {
  const peers: StoragePeer[] = Array.from({ length: 10 }, () => {
    const publicKey = Identity.generate().publicKey;
    const id = Array.from(publicKey, (b) => b.toString(16).padStart(2, "0")).join("");
    return {
      id,
      publicKey,
      putChunk: () => Promise.resolve(),
      getChunk: (cid: string) => Promise.reject(new Error(`no ${cid} here`)),
      hasChunk: () => Promise.resolve(true),
      proveChunks: (_: Uint8Array, cids: readonly string[]) =>
        Promise.resolve(cids.map(() => null)),
    };
  });
  const blocks = cheapCids(5_000);
  // A timer that re-arms itself: each firing is a turn of the event loop. Counted: the rankings
  // done since the last turn (the longest stretch the round held the loop, in blocks ranked).
  let rankedSinceTurn = 0;
  let mostRankedBetweenTurns = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    rankedSinceTurn = 0;
    timer = setTimeout(tick, 0);
  };
  timer = setTimeout(tick, 0);
  let rankings = 0;
  const audited: AuditAssignment[] = [];
  try {
    const report = await runAuditRound({
      roots: ["root"],
      blocksOf: () => Promise.resolve(blocks),
      holders: (cid) => {
        rankings++;
        mostRankedBetweenTurns = Math.max(mostRankedBetweenTurns, ++rankedSinceTurn);
        return rankPeers(cid, peers).slice(0, 3);
      },
      wasGiven: (peerId, cid) => cid.charCodeAt(12) % 2 === peerId.length % 2, // half of them
      audit: (peer, cids) => {
        audited.push({ peer, cids });
        return Promise.resolve({
          passed: true,
          holderId: peer.id,
          roundId: "0",
          sampled: cids,
          failures: [],
          unjudged: [],
        });
      },
      repair: (cids) =>
        Promise.resolve({ checked: cids.length, repaired: 0, lost: [], failedChecks: 0 }),
    });
    assert.equal(report.files, 1);
    assert.equal(report.holders, peers.length, "every peer holds some: every one audited");
    for (const { cids } of audited) assert.equal(cids.length, 4);
    assert.ok(report.unplaced > 0, "the blocks never given were checked");
  } finally {
    clearTimeout(timer);
  }
  assert.ok(
    mostRankedBetweenTurns <= 1024,
    `${mostRankedBetweenTurns} blocks ranked without a turn of the event loop`,
  );
  assert.equal(rankings, blocks.length, "each block ranked once");
});
