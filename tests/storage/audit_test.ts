/**
 * `StorageAuditor` (`storage/audit.ts`): challenges a holder answers with a proof of possession,
 * the signed verdicts they end in, and the auditor's own settings.
 */
import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { MAX_PROVE_CIDS } from "../../protocols/storage_messages.ts";
import { type Verdict, verifyVerdict } from "../../protocols/verdict.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import { FileStore } from "../../storage/file_store.ts";
import { LocalStoragePeer, type StoragePeer } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";

// ---- challenges and verdicts --------------------------------------------------------------------

async function setup() {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir, { durable: false });
  const holder = new LocalStoragePeer(store, Identity.generate().publicKey);
  const files = new FileStore(store, { chunkSize: 1024 });
  const { cid } = await files.put(streamOf(pseudoRandomBytes(16 * 1024)));
  const chunks = (await files.stat(cid)).chunks;
  // The validator's reference copies (in a real node: fetched from other replicas, verified).
  const reference = new Map<string, Uint8Array>();
  for (const c of chunks) reference.set(c, await store.get(c));
  const verdicts: Verdict[] = [];
  const validator = Identity.generate();
  const auditor = new StorageAuditor({
    identity: validator,
    reference: (c) => Promise.resolve(reference.get(c)!),
    sampleSize: chunks.length, // sample everything so the test is deterministic
    onVerdict: (v) => {
      verdicts.push(v);
    },
  });
  return { dir, store, holder, chunks, auditor, verdicts, validator, reference };
}

Deno.test("an honest holder passes an audit and no verdict is issued", async () => {
  const { dir, holder, chunks, auditor, verdicts } = await setup();
  const result = await auditor.audit(holder, chunks);
  assert.equal(result.passed, true);
  assert.equal(result.sampled.length, chunks.length);
  assert.equal(result.verdict, undefined);
  assert.equal(verdicts.length, 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a holder that dropped a chunk fails with a signed storage verdict", async () => {
  const { dir, store, holder, chunks, auditor, verdicts, validator } = await setup();
  await store.delete(chunks[5]); // the holder lost it
  const result = await auditor.audit(holder, chunks);
  assert.equal(result.passed, false);
  assert.deepEqual(result.failures, [{ cid: chunks[5], reason: "missing_chunk" }]);
  assert.equal(verdicts.length, 1);
  const v = verdicts[0];
  assert.equal(v, result.verdict);
  assert.equal(v.subject, "storage");
  assert.equal(v.outcome, "invalid");
  assert.equal(v.reason, "missing_chunk");
  assert.deepEqual(v.target, holder.publicKey);
  assert.deepEqual(v.validator, validator.publicKey);
  assert.equal(v.details?.firstFailedCid, chunks[5]);
  assert.equal(verifyVerdict(v), true);
  assert.equal(verifyVerdict({ ...v, reason: "ok" }), false, "the signature covers the verdict");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a holder that answers without the bytes (replayed or guessed proofs) fails", async () => {
  const { dir, holder, chunks, auditor } = await setup();
  // A cheat that kept proofs from an earlier round instead of the data.
  const oldNonce = new Uint8Array(32);
  const stale = await holder.proveChunks(oldNonce, chunks);
  const cheat: StoragePeer = {
    id: holder.id,
    publicKey: holder.publicKey,
    putChunk: () => Promise.resolve(),
    getChunk: () => Promise.reject(new Error("dropped")),
    hasChunk: () => Promise.resolve(true),
    proveChunks: (_nonce, cids) => Promise.resolve(cids.map((c) => stale[chunks.indexOf(c)])),
  };
  const result = await auditor.audit(cheat, chunks);
  assert.equal(result.passed, false);
  assert.ok(result.failures.every((f) => f.reason === "wrong_proof"));
  assert.equal(verifyVerdict(result.verdict), true);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a holder that threw its chunks away fails even when it passes the challenge on to a node that holds them", async () => {
  const { dir, store, holder, chunks, auditor } = await setup();
  // Another node holding the same chunks (another holder, or the auditor itself: any node that
  // serves `prove` for them), which answers under its own key.
  const other = new LocalStoragePeer(store, Identity.generate().publicKey);
  const relay: StoragePeer = {
    id: holder.id,
    publicKey: holder.publicKey,
    putChunk: () => Promise.resolve(),
    getChunk: () => Promise.reject(new Error("dropped")),
    hasChunk: () => Promise.resolve(true),
    proveChunks: (nonce, cids) => other.proveChunks(nonce, cids),
  };
  const result = await auditor.audit(relay, chunks);
  assert.equal(result.passed, false);
  assert.ok(result.failures.every((f) => f.reason === "wrong_proof"));
  // The same answers under the holder's own key pass: the proof is the holder's.
  assert.equal((await auditor.audit(holder, chunks)).passed, true);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a holder that does not answer fails with reason no_response", async () => {
  const { dir, holder, chunks, reference } = await setup();
  const silent: StoragePeer = {
    ...holder,
    id: holder.id,
    publicKey: holder.publicKey,
    putChunk: () => Promise.resolve(),
    getChunk: () => Promise.reject(new Error("x")),
    hasChunk: () => Promise.resolve(true),
    proveChunks: (_n, _c, o) =>
      new Promise((_, reject) =>
        o?.signal?.addEventListener("abort", () => reject(o.signal!.reason))
      ),
  };
  const auditor = new StorageAuditor({
    identity: Identity.generate(),
    reference: (c) => Promise.resolve(reference.get(c)!),
    timeoutMs: 50,
  });
  const result = await auditor.audit(silent, chunks);
  assert.equal(result.passed, false);
  assert.equal(result.verdict?.reason, "no_response");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the audit timeout holds for a holder that ignores the abort signal", async () => {
  const { dir, holder, chunks, reference } = await setup();
  const deaf: StoragePeer = {
    id: holder.id,
    publicKey: holder.publicKey,
    putChunk: () => Promise.resolve(),
    getChunk: () => Promise.reject(new Error("x")),
    hasChunk: () => Promise.resolve(true),
    proveChunks: () => new Promise(() => {}), // never answers, never looks at its signal
  };
  const auditor = new StorageAuditor({
    identity: Identity.generate(),
    reference: (c) => Promise.resolve(reference.get(c)!),
    timeoutMs: 20, // the holder never answers: the outcome does not depend on this value
  });
  const result = await auditor.audit(deaf, chunks);
  assert.equal(result.passed, false);
  assert.equal(result.verdict?.reason, "no_response");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("no verdict without a reference copy: a CID nobody stored blames no holder", async () => {
  const { dir, holder, chunks, reference } = await setup();
  const nobodys = cidOf(pseudoRandomBytes(1024, 99));
  const verdicts: Verdict[] = [];
  const auditor = new StorageAuditor({
    identity: Identity.generate(),
    reference: (c) =>
      reference.has(c)
        ? Promise.resolve(reference.get(c)!)
        : Promise.reject(new ChunkNotFoundError(c, "any storage peer")),
    sampleSize: chunks.length + 1,
    onVerdict: (v) => {
      verdicts.push(v);
    },
  });
  const result = await auditor.audit(holder, [...chunks, nobodys]);
  assert.equal(result.passed, true);
  assert.deepEqual(result.unjudged, [{ cid: nobodys, reason: "no_reference" }]);
  assert.equal(result.sampled.length, chunks.length + 1);
  const alone = await auditor.audit(holder, [nobodys]);
  assert.equal(alone.passed, true);
  assert.equal(alone.verdict, undefined);
  assert.deepEqual(verdicts, []);
  await Deno.remove(dir, { recursive: true });
});

/** A well-formed raw CID over a sha2-512 digest: a CID, but not one any store here accepts. */
const SHA512_CID =
  "bafkrgqhhyivzstcz3hhswshfjgy6ertgmnqeleynhwt4dlfsthi4hn7zgh4uvlsb5xncykzapi3ocd4lzogukir6ksdy6wzrnz6ohnv4aglcs";

Deno.test("a CID no store accepts is never sampled: it cannot turn an honest holder's audit into no_response", async () => {
  const { dir, holder, chunks, reference } = await setup();
  const verdicts: Verdict[] = [];
  const auditor = new StorageAuditor({
    identity: Identity.generate(),
    reference: (c) => Promise.resolve(reference.get(c)!),
    sampleSize: chunks.length + 1, // everything, the foreign CID included if it were eligible
    onVerdict: (v) => {
      verdicts.push(v);
    },
  });
  const result = await auditor.audit(holder, [...chunks, SHA512_CID]);
  assert.equal(result.sampled.includes(SHA512_CID), false);
  assert.equal(result.sampled.length, chunks.length);
  assert.deepEqual(result.failures, []);
  assert.deepEqual(result.unjudged, []);
  assert.equal(result.passed, true);
  assert.equal(verdicts.length, 0);
  await Deno.remove(dir, { recursive: true });
});

// ---- a sample size no challenge can carry -------------------------------------------------------
//
// A `StorageAuditor` whose `sampleSize` no challenge can carry (above `MAX_PROVE_CIDS`, the most a
// `storage.prove` names) is refused when it is made: before, each audit sent a challenge the
// holder's side refuses as malformed, and the auditor blamed the holder (`no_response`) for its own
// request.

const base = {
  identity: Identity.generate(),
  reference: () => Promise.reject(new Error("not read")),
};

Deno.test("a StorageAuditor is refused a sampleSize no challenge can carry, or that samples nothing", () => {
  for (const sampleSize of [MAX_PROVE_CIDS + 1, 0, -1, 1.5, NaN, Infinity]) {
    assert.throws(
      () => new StorageAuditor({ ...base, sampleSize }),
      (error: unknown) =>
        error instanceof RangeError && /sampleSize/.test(error.message) &&
        error.message.includes(String(MAX_PROVE_CIDS)),
      `sampleSize ${sampleSize}`,
    );
  }
  for (const sampleSize of [1, 4, MAX_PROVE_CIDS, undefined]) {
    new StorageAuditor({ ...base, sampleSize });
  }
});
