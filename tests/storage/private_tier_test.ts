import assert from "node:assert/strict";
import { decodeManifest } from "../../protocols/manifest.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { AuthenticationError, KeyRequiredError } from "../../storage/errors.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { filesUnder, flipObjectBit, streamOf } from "./_helpers.ts";

const PATTERN = "VERIFLOW-SECRET-PLAINTEXT-PATTERN-7f3a";

function secretFile(repeats: number): Uint8Array {
  return new TextEncoder().encode(`${PATTERN} line of private text\n`.repeat(repeats));
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test("a private file's plaintext, name and size appear in no stored byte", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 4096 });
  const key = await OwnerKey.fromSecret(crypto.getRandomValues(new Uint8Array(32)));
  const data = secretFile(500);
  const { cid, tier } = await files.put(streamOf(data), { key, name: `${PATTERN}.txt` });
  assert.equal(tier, "private");
  const needle = new TextEncoder().encode(PATTERN.slice(0, 16));
  const stored = await filesUnder(dir);
  let scanned = 0;
  for (const path of stored) {
    const bytes = await Deno.readFile(path);
    scanned += bytes.length;
    assert.equal(contains(bytes, needle), false, `plaintext found in ${path}`);
  }
  assert.ok(scanned >= data.length, "every stored byte was scanned, ciphertext included");
  // The scan can fail: the same file stored publicly does leak the pattern.
  const { cid: publicCid } = await files.put(streamOf(data));
  const leaks = await Promise.all(
    (await filesUnder(dir)).map(async (p) => contains(await Deno.readFile(p), needle)),
  );
  assert.ok(leaks.some(Boolean));
  assert.notEqual(publicCid, cid);
  // The owner reads it back; the sealed metadata opens.
  assert.deepEqual(await files.bytes(cid, { key }), data);
  const info = await files.stat(cid, { key });
  assert.equal(info.size, data.length);
  assert.equal(info.name, `${PATTERN}.txt`);
  // Without a key, a storage node sees only the chunk list.
  const blind = await files.stat(cid);
  assert.equal(blind.size, null);
  assert.equal(blind.name, undefined);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a wrong key is a typed authentication error, never garbage", async () => {
  const dir = await Deno.makeTempDir();
  const files = new FileStore(await ChunkStore.open(dir), { chunkSize: 4096 });
  const key = await OwnerKey.fromSecret(new Uint8Array(32).fill(1));
  const wrong = await OwnerKey.fromSecret(new Uint8Array(32).fill(2));
  const { cid } = await files.put(streamOf(secretFile(100)), { key });
  await assert.rejects(
    files.get(cid, { key: wrong }),
    (e: AuthenticationError) => e.code === "authentication_failed",
  );
  await assert.rejects(files.get(cid), KeyRequiredError);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ciphertext chunks cannot be swapped within a file without failing authentication", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 1024 });
  const key = await OwnerKey.fromSecret(new Uint8Array(32).fill(3));
  const { cid } = await files.put(streamOf(secretFile(200)), { key });
  const manifest = decodeManifest(await store.get(cid));
  // Overwrite chunk 1's file with chunk 0's bytes: the CID check catches it first...
  await flipObjectBit(dir, manifest.chunks[0], 5);
  await assert.rejects(
    files.bytes(cid, { key }),
    (e: { code: string }) => e.code === "corrupt_chunk",
  );
  // ...and decryption is bound to the chunk index too (AAD), independently of the CID check.
  const fileCipher = await key.newFile();
  const sealed = await fileCipher.encryptChunk(0, new Uint8Array([1, 2, 3]));
  await assert.rejects(fileCipher.decryptChunk(1, sealed), AuthenticationError);
  assert.deepEqual(await fileCipher.decryptChunk(0, sealed), new Uint8Array([1, 2, 3]));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("each private put uses a fresh salt, so equal files give different ciphertext", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 4096 });
  const key = await OwnerKey.fromSecret(new Uint8Array(32).fill(4));
  const a = await files.put(streamOf(secretFile(50)), { key });
  const b = await files.put(streamOf(secretFile(50)), { key });
  assert.notEqual(a.cid, b.cid);
  const ma = decodeManifest(await store.get(a.cid));
  const mb = decodeManifest(await store.get(b.cid));
  assert.notDeepEqual(ma.chunks, mb.chunks);
  await Deno.remove(dir, { recursive: true });
});
