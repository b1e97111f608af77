/**
 * A forged private manifest: an attacker keeps a real file's public `salt` and `sealed` and puts
 * chunks of its own under them (review s76, finding 1). The sealed metadata opens with the owner's
 * key, so `createShareLink` used to hand out the real file's keys for the forged CID. It now
 * decrypts every chunk with those keys first and refuses (`manifest_mismatch`), recording nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { FILE_KEYS_BYTES, OwnerKey } from "../../storage/private_tier.ts";
import {
  createShareLink,
  parseShareLink,
  SHARES_DIR,
  ShareStore,
} from "../../storage/share_links.ts";
import { decodeManifest, encodeManifest, type PrivateManifest } from "../../protocols/manifest.ts";
import { cidOf, DAG_CBOR_CODEC, storageKey } from "../../protocols/cid.ts";
import { streamOf } from "./_helpers.ts";

/** Chunk size of the test files: small, so a few hundred bytes make several chunks. */
const CHUNK = 64;

async function forgedSetup() {
  const owner = await OwnerKey.fromSecret(new Uint8Array(32).fill(9));
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: CHUNK });
  const secret = new TextEncoder().encode("salary table: alice 180k, bob 95k ".repeat(6));
  const victim = await files.put(streamOf(secret), { key: owner, name: "salaries.txt" });
  // The attacker: the victim's public manifest, its own chunks (ciphertext-sized), no key.
  const real = decodeManifest(await store.get(storageKey(victim.cid))) as PrivateManifest;
  const mine: string[] = [];
  for (const _ of real.chunks) {
    const junk = crypto.getRandomValues(new Uint8Array(CHUNK + 16));
    await store.put(junk);
    mine.push(cidOf(junk));
  }
  const forgedBytes = encodeManifest({ ...real, chunks: mine });
  await store.put(forgedBytes);
  const forgedCid = cidOf(forgedBytes, DAG_CBOR_CODEC);
  return { owner, dir, files, victim, forgedCid };
}

Deno.test("s76: sharing a forged private manifest is refused with manifest_mismatch, and nothing is recorded", async () => {
  const { owner, dir, files, victim, forgedCid } = await forgedSetup();
  try {
    const shares = new ShareStore(dir);
    const share = (cid: string) =>
      createShareLink({
        cid,
        owner,
        files,
        shares,
        baseUrl: "http://127.0.0.1:1",
        expiresAt: null,
        now: 0,
      });
    const error = await share(forgedCid).then(() => undefined, (e) => e);
    assert.ok(error, "the forged share was refused");
    assert.equal((error as { code?: string }).code, "manifest_mismatch", String(error));
    const recorded = await Array.fromAsync(Deno.readDir(join(dir, SHARES_DIR))).catch(() => []);
    assert.deepEqual(recorded, [], "no share record was written");
    // The real file still shares, and its link carries its keys.
    const { link } = await share(victim.cid);
    assert.equal(parseShareLink(link).cid, victim.cid);
    assert.equal(parseShareLink(link).keys?.length, FILE_KEYS_BYTES);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("s76: a share checks every chunk and reports its progress up to the file's size", async () => {
  const { owner, dir, files, victim } = await forgedSetup();
  try {
    const seen: Array<[number, number]> = [];
    await createShareLink({
      cid: victim.cid,
      owner,
      files,
      shares: new ShareStore(dir),
      baseUrl: "http://127.0.0.1:1",
      expiresAt: null,
      now: 0,
      onProgress: (done, total) => seen.push([done, total]),
    });
    assert.ok(seen.length >= 2, "reported as it went, not once at the end");
    assert.deepEqual(seen.at(-1), [victim.size, victim.size]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
