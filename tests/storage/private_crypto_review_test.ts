/**
 * The private tier and share links read as a cryptographer would: a nonce never repeats under a
 * file key, whatever the caller does; ciphertext moved between files, positions or owners never
 * opens; a share's expiry is a time, never silently "until revoked".
 */
import assert from "node:assert/strict";
import { cidDigest, cidFromDigest, DAG_CBOR_CODEC } from "../../protocols/cid.ts";
import { decodeManifest, encodeManifest, type PrivateManifest } from "../../protocols/manifest.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { exportFileKeys, FileCipher, OwnerKey } from "../../storage/private_tier.ts";
import { ShareStore } from "../../storage/share_links.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("a file cipher never encrypts twice under one nonce: a reused or earlier chunk index, a second seal, and a reading cipher are refused", async () => {
  const owner = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));
  const writer = await owner.newFile();
  const first = await writer.encryptChunk(0, text("attack at dawn"));
  // GCM under a repeated (key, nonce) leaks the XOR of the plaintexts and the tag key.
  await assert.rejects(writer.encryptChunk(0, text("attack at dusk")), { code: "nonce_reuse" });
  await writer.encryptChunk(2, text("gaps are fine"));
  await assert.rejects(writer.encryptChunk(1, text("but never back")), { code: "nonce_reuse" });
  await writer.sealInfo({ size: 1, chunkSize: 1 });
  await assert.rejects(writer.sealInfo({ size: 2, chunkSize: 1 }), { code: "nonce_reuse" });

  // A cipher rebuilt from a stored salt (the owner's, or a share link's keys) only reads: its
  // nonces were spent when the file was put, in another process perhaps.
  const reader = await owner.file(writer.salt);
  assert.deepEqual(await reader.decryptChunk(0, first), text("attack at dawn"));
  await assert.rejects(reader.encryptChunk(0, text("attack at dusk")), { code: "nonce_reuse" });
  await assert.rejects(reader.sealInfo({ size: 1, chunkSize: 1 }), { code: "nonce_reuse" });
  const shared = await FileCipher.fromFileKeys(
    writer.salt,
    await exportFileKeys(owner, writer.salt),
  );
  assert.deepEqual(await shared.decryptChunk(0, first), text("attack at dawn"));
  await assert.rejects(shared.encryptChunk(5, text("x")), { code: "nonce_reuse" });

  // The put path still writes and reads, with many chunks in flight.
  const files = new FileStore(await ChunkStore.open(await Deno.makeTempDir()), {
    chunkSize: 1024,
    concurrency: 4,
  });
  const data = pseudoRandomBytes(20_000, 9);
  const { cid } = await files.put(streamOf(data, 777), { key: owner });
  assert.deepEqual(await files.bytes(cid, { key: owner }), data);
});

Deno.test("a manifest a storage peer rebuilds from ciphertext of another position, file or owner never opens", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 1024 });
  const owner = await OwnerKey.fromSecret(new Uint8Array(32).fill(1));
  const other = await OwnerKey.fromSecret(new Uint8Array(32).fill(2));
  const data = pseudoRandomBytes(3 * 1024, 3);
  const a = await files.put(streamOf(data), { key: owner });
  const b = await files.put(streamOf(data), { key: owner }); // same plaintext, same owner
  const c = await files.put(streamOf(data), { key: other });
  const manifest = async (cid: string) => decodeManifest(await store.get(cid)) as PrivateManifest;
  const [ma, mb, mc] = [await manifest(a.cid), await manifest(b.cid), await manifest(c.cid)];
  assert.ok(ma.chunks.every((chunk) => !mb.chunks.includes(chunk)), "equal files look unrelated");
  const forged = async (chunks: string[]) => {
    const key = await store.put(encodeManifest({ ...ma, chunks }));
    return cidFromDigest(cidDigest(key), DAG_CBOR_CODEC);
  };
  const swapped = [ma.chunks[1], ma.chunks[0], ma.chunks[2]];
  for (
    const chunks of [swapped, [mb.chunks[0], ma.chunks[1], ma.chunks[2]], [...mc.chunks]]
  ) {
    const cid = await forged(chunks);
    await assert.rejects(files.bytes(cid, { key: owner }), { code: "authentication_failed" });
  }
  // Truncated or extended: the sealed size no longer matches the chunk count.
  for (const chunks of [ma.chunks.slice(0, 2), [...ma.chunks, ma.chunks[2]]]) {
    await assert.rejects(files.bytes(await forged(chunks), { key: owner }), {
      code: "invalid_manifest",
    });
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a share whose expiry is not a time (NaN, Infinity) is refused, not recorded as open until revoked", async () => {
  const dir = await Deno.makeTempDir();
  const shares = new ShareStore(dir);
  const cid = "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
  const now = 1_700_000_000_000;
  // `now + parseDuration("99…9d")` is Infinity; a date parsed wrong is NaN. JSON writes both as
  // `null`, the record's "until revoked".
  for (const expiresAt of [Number.NaN, Number.POSITIVE_INFINITY]) {
    await assert.rejects(shares.create(cid, { expiresAt, now }), RangeError);
  }
  const listed = [];
  try {
    for await (const entry of Deno.readDir(`${dir}/shares`)) listed.push(entry.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  assert.deepEqual(listed, [], "no record was written");
  const record = await shares.create(cid, { expiresAt: now + 1000, now });
  await shares.valid(record.id, now + 999);
  await assert.rejects(shares.valid(record.id, now + 1000), { code: "share_expired" });
  await Deno.remove(dir, { recursive: true });
});
