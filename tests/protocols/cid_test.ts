/**
 * Content ids (`protocols/cid.ts`): how a CID is made from bytes and which codecs a peer may name.
 */
import assert from "node:assert/strict";
import { CID } from "multiformats/cid";
import * as Digest from "multiformats/hashes/digest";
import { identity } from "multiformats/hashes/identity";
import {
  cidCodec,
  cidDigest,
  cidOf,
  DAG_CBOR_CODEC,
  DAG_PB_CODEC,
  isCid,
  RAW_CODEC,
  SHA2_256_CODE,
  storageKey,
} from "../../protocols/cid.ts";
import { sha256 } from "../../protocols/hash.ts";
import { GetChunkMessage, PutChunkMessage } from "../../protocols/storage_messages.ts";

Deno.test("isCid accepts the CIDv1 sha2-256 strings cidOf produces", () => {
  const cid = cidOf(new TextEncoder().encode("hello"));
  assert.equal(isCid(cid), true);
  assert.equal(cidDigest(cid).length, 32);
});

Deno.test("isCid returns false, without throwing, for every string cidDigest rejects", () => {
  const v0 = CID.createV0(Digest.create(SHA2_256_CODE, sha256(new Uint8Array([1]))))
    .toString();
  const identityHashed = CID.createV1(RAW_CODEC, identity.digest(new Uint8Array([1]))).toString();
  for (const bad of ["", "not a cid", "bafkrei", v0, identityHashed]) {
    assert.throws(() => cidDigest(bad), { code: "invalid_cid" });
    assert.equal(isCid(bad), false, bad);
  }
});

Deno.test("dag-pb and dag-cbor CIDs are accepted and share the raw storage key of the same digest", () => {
  const bytes = new TextEncoder().encode("node");
  const raw = cidOf(bytes);
  const pb = cidOf(bytes, DAG_PB_CODEC);
  const cbor = cidOf(bytes, DAG_CBOR_CODEC);
  assert.match(pb, /^bafybei/);
  assert.match(cbor, /^bafyrei/);
  for (
    const [cid, codec] of [[raw, RAW_CODEC], [pb, DAG_PB_CODEC], [cbor, DAG_CBOR_CODEC]] as const
  ) {
    assert.equal(isCid(cid), true);
    assert.equal(cidCodec(cid), codec);
    assert.equal(storageKey(cid), raw);
    assert.deepEqual(cidDigest(cid), cidDigest(raw));
  }
  const dagJson = CID.createV1(0x0129, CID.parse(raw).multihash).toString();
  assert.equal(isCid(dagJson), false);
  assert.throws(() => storageKey(dagJson), { code: "invalid_cid" });
});

Deno.test("storage wire messages carry dag-pb CIDs (so UnixFS nodes replicate and repair as blocks)", () => {
  const pb = cidOf(new Uint8Array([7]), DAG_PB_CODEC);
  assert.equal(GetChunkMessage.schema.safeParse({ cid: pb }).success, true);
  const bytes = new Uint8Array([7]);
  assert.equal(PutChunkMessage.schema.safeParse({ cid: pb, bytes }).success, true);
  assert.equal(GetChunkMessage.schema.safeParse({ cid: "bafk-not-a-cid" }).success, false);
});
